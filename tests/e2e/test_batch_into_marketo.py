"""`meltano run tap-postgres target-marketo-ingest` with the tap's batch_config on.

The tap sends BATCH messages (gzip JSONL files) instead of RECORD lines; every row must reach
Marketo or the rejects file, whose `line` names the batch file and row.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from .support import Meltano, Postgres, read_jsonl, sandbox_env

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from marketo_sandbox.server import SandboxServer

PEOPLE = 2500


def test_postgres_batch_files_into_marketo(
    meltano: Meltano,
    pg_schema: tuple[Postgres, str],
    sandbox_factory: Callable[..., SandboxServer],
    tmp_path: Path,
    meltano_state: dict[str, str],
) -> None:
    sandbox = sandbox_factory(seed="demo", time_scale=60.0)
    postgres, schema = pg_schema
    postgres.query(f"CREATE SCHEMA {schema}")
    postgres.query(
        f'CREATE TABLE {schema}.batch_people (email text PRIMARY KEY, "firstName" text, '
        f'"lastName" text, "accountTier" integer, "isPartner" boolean)'
    )
    postgres.query(
        f"INSERT INTO {schema}.batch_people "
        "SELECT 'batch.person.' || i || '@example.net', 'Zoë ' || i, 'O''Neil, \"B\"', "
        f"1 + i % 3, i % 2 = 0 FROM generate_series(1, {PEOPLE}) AS i"
    )
    postgres.query(
        f"INSERT INTO {schema}.batch_people VALUES ('no-at-sign', 'Bad', 'Email', 1, false)"
    )
    batch_root = tmp_path / "batch"
    rejects = tmp_path / "rejects.jsonl"
    stream = f"{schema}-batch_people"
    env = {
        **sandbox_env(sandbox.config),
        **meltano_state,
        **postgres.meltano_env("TAP_POSTGRES"),
        "TAP_POSTGRES_FILTER_SCHEMAS": json.dumps([schema]),
        "TAP_POSTGRES__SELECT": json.dumps([f"{stream}.*"]),
        "TAP_POSTGRES_BATCH_CONFIG": json.dumps(
            {
                "encoding": {"format": "jsonl", "compression": "gzip"},
                "storage": {"root": batch_root.as_uri()},
                "batch_size": 1000,
            }
        ),
        "TARGET_MARKETO_INGEST_REJECTS_PATH": str(rejects),
        "TARGET_MARKETO_INGEST_STREAMS": json.dumps({stream: {"method": "ingest_persons"}}),
    }
    run = meltano("run", "tap-postgres", "target-marketo-ingest", env=env)

    files = sorted(batch_root.glob("*.json.gz"))
    assert len(files) >= 3  # 2,501 rows in files of 1,000: they really travelled as BATCH
    log = run.stdout + run.stderr
    assert f"Summary for stream '{stream}' (ingest_persons): received {PEOPLE + 1}" in log
    # Verification is on by default (issue 17): every accepted record is read back as applied.
    assert f"accepted 0, applied {PEOPLE}," in log
    sandbox.admin.wait_ingestion(60)
    leads = {str(lead["email"]).lower(): lead for lead in sandbox.admin.dump("leads")}
    people = [leads.get(f"batch.person.{i}@example.net") for i in range(1, PEOPLE + 1)]
    assert sum(p is not None for p in people) == PEOPLE
    assert all(p["lastName"] == 'O\'Neil, "B"' for p in people if p)
    assert [p["accountTier"] for p in people if p][:6] == [1 + i % 3 for i in range(1, 7)]
    (reject,) = [r for r in read_jsonl(rejects) if r["kind"] == "reject"]
    assert reject["stream"] == stream
    assert reject["record"]["email"] == "no-at-sign"
    match = re.fullmatch(r"(file://.+\.json\.gz)#(\d+)", reject["line"])
    assert match, reject["line"]
    assert any(match.group(1) == f.resolve().as_uri() for f in files)
