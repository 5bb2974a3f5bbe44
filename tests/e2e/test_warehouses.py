"""Real warehouses: Marketo -> DuckDB and PostgreSQL checked with SQL, and PostgreSQL -> Marketo.

Every check counts rows against the sandbox's own dump, so a loader that creates tables and
loads nothing (target-duckdb 0.8.0 with duckdb 2.x did) fails here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import TYPE_CHECKING

import duckdb

from .support import Meltano, Postgres, read_jsonl, sandbox_env
from .test_round_trip import tap_env

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from marketo_sandbox.server import SandboxServer


def dump_facts(sandbox: SandboxServer) -> dict[str, int]:
    """Counts and sums from the sandbox that a warehouse copy must reproduce."""
    members = sandbox.admin.dump("program_members")
    return {
        "members": len(members),
        "vip": sum(1 for m in members if m["vipAttendee"]),
        "sessions": sum(m["sessionsAttended"] or 0 for m in members),
        "checked_in": sum(1 for m in members if m["checkedInAt"]),
        "program_1002": sum(1 for m in members if m["programId"] == 1002),
    }


def test_marketo_to_duckdb_checked_with_sql(
    meltano: Meltano,
    sandbox_factory: Callable[..., SandboxServer],
    tmp_path: Path,
    meltano_state: dict[str, str],
) -> None:
    sandbox = sandbox_factory(seed="demo", time_scale=60.0)
    env = tap_env(sandbox, tmp_path, meltano_state)
    meltano("run", "tap-marketo-members", "target-duckdb", env=env)
    facts = dump_facts(sandbox)
    fields = sandbox.admin.dump("fields")
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        # target-duckdb lower-cases column names.
        row = con.execute(
            "SELECT count(*), count(DISTINCT (programid, leadid)), "
            "count(*) FILTER (WHERE vipattendee), coalesce(sum(sessionsattended), 0), "
            "count(checkedinat), count(*) FILTER (WHERE programid = 1002) "
            "FROM marketo.program_members"
        ).fetchone()
        types = dict(
            con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'marketo' AND table_name = 'program_members'"
            ).fetchall()
        )
        programs = con.execute("SELECT count(*) FROM marketo.programs").fetchone()[0]
        pm_fields = con.execute("SELECT count(*) FROM marketo.program_member_fields").fetchone()
        lead_fields = con.execute("SELECT count(*) FROM marketo.lead_fields").fetchone()
    assert row == (
        facts["members"],
        facts["members"],
        facts["vip"],
        facts["sessions"],
        facts["checked_in"],
        facts["program_1002"],
    )
    assert facts["members"] > 1000
    assert types["programid"] in ("BIGINT", "HUGEINT", "INTEGER")
    assert types["sessionsattended"] in ("BIGINT", "HUGEINT", "INTEGER")
    assert types["vipattendee"] == "BOOLEAN"
    assert types["updatedat"].startswith("TIMESTAMP")
    assert types["checkedinat"].startswith("TIMESTAMP")
    assert types["feedbackscore"] in ("DOUBLE", "FLOAT") or types["feedbackscore"].startswith(
        "DECIMAL"
    )
    assert programs == 4
    assert pm_fields[0] == sum(1 for f in fields if f["object"] == "programMember")
    assert lead_fields[0] == sum(1 for f in fields if f["object"] == "lead")


def test_postgres_both_ways(
    meltano: Meltano,
    pg_schema: tuple[Postgres, str],
    sandbox_factory: Callable[..., SandboxServer],
    tmp_path: Path,
    meltano_state: dict[str, str],
) -> None:
    sandbox = sandbox_factory(seed="demo", time_scale=60.0)
    postgres, schema = pg_schema

    # Marketo -> PostgreSQL.
    env = {
        **tap_env(sandbox, tmp_path, meltano_state),
        **postgres.loader_env(schema),
    }
    meltano("run", "tap-marketo-members", "target-postgres", env=env)
    facts = dump_facts(sandbox)
    counts = postgres.query(
        f'SELECT count(*), count(DISTINCT ("programId", "leadId")), '
        f'count(*) FILTER (WHERE "vipAttendee"), coalesce(sum("sessionsAttended"), 0), '
        f'count("checkedInAt"), count(*) FILTER (WHERE "programId" = 1002) '
        f"FROM {schema}.program_members"
    )[0]
    assert [int(c) for c in counts] == [
        facts["members"],
        facts["members"],
        facts["vip"],
        facts["sessions"],
        facts["checked_in"],
        facts["program_1002"],
    ]
    types = dict(
        postgres.query(
            "SELECT column_name, data_type FROM information_schema.columns "
            f"WHERE table_schema = '{schema}' AND table_name = 'program_members'"
        )
    )
    assert types["programId"] in ("bigint", "integer")
    assert types["sessionsAttended"] in ("bigint", "integer")
    assert types["vipAttendee"] == "boolean"
    assert types["updatedAt"].startswith("timestamp")
    assert types["checkedInAt"].startswith("timestamp")
    assert types["myCustomField"] in ("text", "character varying")
    assert int(postgres.scalar(f"SELECT count(*) FROM {schema}.programs")) == 4

    # A warehouse table of status changes and one of new people -> Marketo.
    postgres.query(
        f'CREATE TABLE {schema}.member_updates AS SELECT "leadId", "programId", '
        f"'Influenced'::text AS \"statusName\" FROM {schema}.program_members "
        f'WHERE "programId" = 1002 AND "leadId" > 2 AND "statusName" <> \'Influenced\' '
        f'ORDER BY "leadId" LIMIT 40'
    )
    postgres.query(
        f"INSERT INTO {schema}.member_updates VALUES (1, 1002, 'Backstage Pass'), "
        "(2, 4242, 'Influenced')"
    )
    postgres.query(
        f'CREATE TABLE {schema}.new_people (email text PRIMARY KEY, "firstName" text, '
        f'"lastName" text, "accountTier" integer, "isPartner" boolean)'
    )
    postgres.query(
        f"INSERT INTO {schema}.new_people "
        "SELECT 'pg.person.' || i || '@example.net', 'Zoë ' || i, 'O''Neil, \"PG\"', "
        "1 + i % 3, i % 2 = 0 FROM generate_series(1, 15) AS i"
    )
    postgres.query(
        f"INSERT INTO {schema}.new_people VALUES ('no-at-sign', 'Bad', 'Email', 1, false)"
    )
    updates = postgres.query(f'SELECT "leadId" FROM {schema}.member_updates ORDER BY 1')
    update_ids = [int(r[0]) for r in updates if int(r[0]) > 2]
    assert len(update_ids) == 40

    rejects = tmp_path / "pg-rejects.jsonl"
    reverse_env = {
        **sandbox_env(sandbox.config),
        **meltano_state,
        **postgres.meltano_env("TAP_POSTGRES"),
        "TAP_POSTGRES_FILTER_SCHEMAS": json.dumps([schema]),
        "TAP_POSTGRES__SELECT": json.dumps(
            [f"{schema}-member_updates.*", f"{schema}-new_people.*"]
        ),
        "TARGET_MARKETO_INGEST_REJECTS_PATH": str(rejects),
        "TARGET_MARKETO_INGEST_STREAMS": json.dumps(
            {
                f"{schema}-member_updates": {"method": "ingest_program_members"},
                f"{schema}-new_people": {"method": "ingest_persons"},
            }
        ),
    }
    meltano("run", "tap-postgres", "target-marketo-ingest", env=reverse_env)
    sandbox.admin.wait_ingestion(60)  # Data Ingestion applies after its 202

    members = {m["leadId"]: m for m in sandbox.admin.dump("program_members", program_id=1002)}
    assert sum(members[i]["statusName"] == "Influenced" for i in update_ids) == len(update_ids)
    assert members.get(1, {}).get("statusName") != "Backstage Pass"
    leads = {str(lead["email"]).lower(): lead for lead in sandbox.admin.dump("leads")}
    people = [leads.get(f"pg.person.{i}@example.net") for i in range(1, 16)]
    assert sum(p is not None for p in people) == 15
    assert all(p["lastName"] == 'O\'Neil, "PG"' for p in people)
    assert [p["accountTier"] for p in people] == [1 + i % 3 for i in range(1, 16)]
    assert "no-at-sign" not in leads
    rejected = [r for r in read_jsonl(rejects) if r.get("kind", "reject") == "reject"]
    assert sorted(
        (r["stream"], r["record"].get("statusName") or r["record"].get("email")) for r in rejected
    ) == sorted(
        [
            (f"{schema}-member_updates", "Backstage Pass"),
            (f"{schema}-member_updates", "Influenced"),
            (f"{schema}-new_people", "no-at-sign"),
        ]
    )


def test_postgres_with_batch_every_member_checked_with_sql(
    meltano: Meltano,
    pg_schema: tuple[Postgres, str],
    sandbox_factory: Callable[..., SandboxServer],
    tmp_path: Path,
    meltano_state: dict[str, str],
) -> None:
    """`meltano run tap-marketo-members-batch target-postgres`: members travel as BATCH files
    (none as RECORD lines), every member's row equals the sandbox's, and the bookmark is saved."""
    sandbox = sandbox_factory(seed="demo", time_scale=60.0)
    postgres, schema = pg_schema
    batch_root = tmp_path / "batch"
    env = {
        **tap_env(sandbox, tmp_path, meltano_state),
        **postgres.loader_env(schema),
        "TAP_MARKETO_MEMBERS_BATCH_BATCH_CONFIG": json.dumps(
            {
                "encoding": {"format": "jsonl", "compression": "gzip"},
                "storage": {"root": batch_root.as_uri()},
                "batch_size": 2000,
            }
        ),
    }
    run = meltano("run", "tap-marketo-members-batch", "target-postgres", env=env)
    files = sorted(batch_root.glob("tap-marketo-members--program_members-*.json.gz"))
    assert len(files) >= 3  # 5,074 members in files of 2,000 rows
    assert "BATCH files (jsonl, gzip)" in run.stdout + run.stderr
    members = sandbox.admin.dump("program_members")
    rows = postgres.query(
        f'SELECT "programId", "leadId", "statusName", extract(epoch FROM "updatedAt")::bigint, '
        f'"sessionsAttended", "vipAttendee", md5("myCustomField"), "email" '  # values hold newlines
        f"FROM {schema}.program_members"
    )
    got = {(int(r[0]), int(r[1])): r[2:] for r in rows}
    assert len(got) == len(rows) == len(members)
    leads = {lead["id"]: lead for lead in sandbox.admin.dump("leads")}

    def text(value: object) -> str:
        if value is None or value == "":
            return "\\N"
        if isinstance(value, bool):
            return "t" if value else "f"
        return str(value)

    for member in members:
        row = got[(member["programId"], member["leadId"])]
        expected = [
            member["statusName"],
            int(dt.datetime.fromisoformat(member["updatedAt"].replace("Z", "+00:00")).timestamp()),
            member["sessionsAttended"],
            member["vipAttendee"],
            hashlib.md5(member["myCustomField"].encode()).hexdigest()
            if member["myCustomField"]
            else None,
            leads[member["leadId"]].get("email"),
        ]
        assert list(row) == [text(v) for v in expected], (member, row)
    state = meltano("state", "list", env=env).stdout
    assert "tap-marketo-members-batch-to-target-postgres" in state
