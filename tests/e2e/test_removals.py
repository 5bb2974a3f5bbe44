"""detect_removals through Meltano into PostgreSQL: a member removed in Marketo is soft-deleted.

`meltano run tap-marketo-members target-postgres` twice with `detect_removals`; between the runs
one member is removed with Marketo's REST delete. SQL then shows exactly that row with
`_sdc_deleted_at` set and every other row byte for byte as the first run left it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from marketo_common import MarketoClient, MarketoSettings

from .test_round_trip import tap_env

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from marketo_sandbox.server import SandboxServer

    from .support import Meltano, Postgres


def _rows(postgres: Postgres, schema: str) -> dict[tuple[int, int], str]:
    """Each row's key and an md5 of the whole row (every column, metadata included)."""
    rows = postgres.query(
        f'SELECT "programId", "leadId", md5(t::text) FROM {schema}.program_members t'
    )
    return {(int(p), int(lead)): digest for p, lead, digest in rows}


def test_removed_member_is_soft_deleted_in_postgres(
    meltano: Meltano,
    pg_schema: tuple[Postgres, str],
    sandbox_factory: Callable[..., SandboxServer],
    tmp_path: Path,
    meltano_state: dict[str, str],
) -> None:
    sandbox = sandbox_factory(seed="demo", time_scale=60.0)
    postgres, schema = pg_schema
    env = {
        **tap_env(sandbox, tmp_path, meltano_state),
        **postgres.loader_env(schema),
        "TAP_MARKETO_MEMBERS_DETECT_REMOVALS": "true",
    }
    meltano("run", "tap-marketo-members", "target-postgres", env=env)
    before = _rows(postgres, schema)
    assert len(before) == len(sandbox.admin.dump("program_members")) > 1000
    assert (
        postgres.scalar(
            f"SELECT count(*) FROM {schema}.program_members WHERE _sdc_deleted_at IS NOT NULL"
        )
        == "0"
    )

    program_id, lead_id = sorted(before)[10]
    client = MarketoClient(MarketoSettings.from_config(sandbox.config), user_agent="e2e")
    reply = client.post(
        f"/rest/v1/programs/{program_id}/members/delete.json",
        json={"input": [{"leadId": lead_id}]},
    )
    assert reply["result"][0]["status"] == "deleted"

    meltano("run", "tap-marketo-members", "target-postgres", env=env)
    after = _rows(postgres, schema)
    assert set(after) == set(before)  # soft-deleted, not dropped
    deleted = postgres.query(
        f'SELECT "programId", "leadId" FROM {schema}.program_members '
        "WHERE _sdc_deleted_at IS NOT NULL"
    )
    assert deleted == [[str(program_id), str(lead_id)]]
    changed = {k for k in before if after[k] != before[k]}
    assert changed == {(program_id, lead_id)}  # every other row untouched
    # The trade-off the README states: target-postgres upserts every column of the schema, so
    # the removed row keeps its keys and _sdc_deleted_at, and its other columns become null.
    status, updated = postgres.query(
        f'SELECT "statusName", "updatedAt" FROM {schema}.program_members '
        "WHERE _sdc_deleted_at IS NOT NULL"
    )[0]
    assert (status, updated) == ("\\N", "\\N")
