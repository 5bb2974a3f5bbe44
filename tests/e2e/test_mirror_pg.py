"""PostgreSQL -> `meltano run tap-postgres target-marketo-ingest` with `mirror: true`.

A warehouse table is the whole desired membership of program 1003; after the run the
program's membership, read through Marketo's REST API, is exactly that table.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from marketo_common import MarketoClient, MarketoSettings

from .support import Meltano, Postgres, read_jsonl, sandbox_env

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from marketo_sandbox.server import SandboxServer

PROGRAM = 1003
STATUSES = ("Invited", "Registered", "Waitlisted", "No Show", "Attended")


def rest_membership(sandbox: SandboxServer) -> dict[int, str]:
    """leadId -> status of every member of PROGRAM, through the REST query the docs give."""
    settings = MarketoSettings.from_config(dict(sandbox.config))
    members: dict[int, str] = {}
    with MarketoClient(settings, user_agent="e2e-mirror-check") as client:
        for row in client.iter_pages(
            f"/rest/v1/programs/{PROGRAM}/members.json",
            {
                "filterType": "statusName",
                "filterValues": ",".join(STATUSES),
                "fields": "leadId,statusName",
            },
            batch_size=300,
        ):
            members[int(row["leadId"])] = row["statusName"]
    return members


def test_mirror_from_postgres_through_meltano_run(
    meltano: Meltano,
    sandbox_factory: Callable[..., SandboxServer],
    tmp_path: Path,
    meltano_state: dict[str, str],
    pg_schema: tuple[Postgres, str],
) -> None:
    sandbox = sandbox_factory(seed="demo", time_scale=60.0)
    postgres, schema = pg_schema
    before = rest_membership(sandbox)
    assert len(before) > 30
    kept = sorted(before)[:20]
    moved = [lead for lead in kept[:5] if before[lead] != "Attended"]
    outsiders = sorted({lead["id"] for lead in sandbox.admin.dump("leads")} - set(before))[:3]
    desired = {lead: before[lead] for lead in kept}
    desired |= dict.fromkeys(moved, "Attended")
    desired |= dict.fromkeys(outsiders, "Registered")
    rows = ", ".join(f"({lead}, {PROGRAM}, '{status}')" for lead, status in desired.items())
    postgres.query(f"CREATE SCHEMA {schema}")
    postgres.query(
        f'CREATE TABLE {schema}.conference_members ("leadId" bigint PRIMARY KEY, '
        f'"programId" integer, "statusName" text)'
    )
    postgres.query(f"INSERT INTO {schema}.conference_members VALUES {rows}")

    rejects = tmp_path / "mirror-rejects.jsonl"
    env = {
        **sandbox_env(sandbox.config),
        **meltano_state,
        **postgres.meltano_env("TAP_POSTGRES"),
        "TAP_POSTGRES_FILTER_SCHEMAS": json.dumps([schema]),
        "TAP_POSTGRES__SELECT": json.dumps([f"{schema}-conference_members.*"]),
        "TARGET_MARKETO_INGEST_REJECTS_PATH": str(rejects),
        "TARGET_MARKETO_INGEST_STREAMS": json.dumps(
            {
                f"{schema}-conference_members": {
                    "method": "ingest_program_members",
                    "mirror": True,
                    "max_removals": len(before) - len(kept),  # exactly the removals needed
                }
            }
        ),
    }
    meltano("run", "tap-postgres", "target-marketo-ingest", env=env)

    # Verified writes: the run ends after Marketo applied them, so REST shows them now.
    after = rest_membership(sandbox)
    assert set(after) == set(desired)
    assert all(after[lead] == "Attended" for lead in moved)
    assert all(after[lead] == "Registered" for lead in outsiders)
    rejected = read_jsonl(rejects) if rejects.exists() else []
    assert [r for r in rejected if r.get("kind") == "reject"] == []
