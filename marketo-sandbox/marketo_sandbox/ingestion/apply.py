"""Applying accepted Data Ingestion requests: at once, or after a delay that survives restarts.

Marketo applies ingested data asynchronously. With `ingestion_apply_delay_seconds` 0 (default)
the sandbox applies a request before its 202 goes out, so a test reading the data right after
sees it; with a delay, the request waits in SQLite and the bulk scheduler's driver applies it
once that much sandbox time has passed. Per-record problems found while applying (a lead id that
does not exist, an update of a missing company) are logged and skipped, as Marketo reports them
only through its Observability stream.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import orjson

from marketo_sandbox.bulk.jobs import fetch_all
from marketo_sandbox.ingestion.common import dumps, option
from marketo_sandbox.storage import register_schema

if TYPE_CHECKING:
    from collections.abc import Callable

    from marketo_sandbox.bulk.jobs import Scheduler

log = logging.getLogger("marketo_sandbox.ingestion")

PENDING = "ingestion_pending"
USAGE = "ingestion_usage"
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {PENDING} (
    request_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    plan TEXT NOT NULL,
    due_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS {USAGE} (day TEXT PRIMARY KEY, objects INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS companies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    external_company_id TEXT UNIQUE,
    data TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS custom_objects (
    marketo_guid TEXT PRIMARY KEY,
    api_name TEXT NOT NULL,
    dedupe_key TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (api_name, dedupe_key)
);
"""
register_schema(SCHEMA)


def ensure_schema(store: Any) -> None:
    """Create the ingestion tables in this store (idempotent)."""
    store.register_schema(SCHEMA)


def dump_rows(store: Any, sql: str, keys: Callable[[Any], dict]) -> list[dict]:
    """Admin dump of a JSON `data` table: the row's keys, its data, createdAt, updatedAt."""
    ensure_schema(store)
    with store.tx() as conn:
        rows = fetch_all(conn, sql)
    return [
        {
            **keys(r),
            **orjson.loads(r["data"]),
            "createdAt": r["created_at"],
            "updatedAt": r["updated_at"],
        }
        for r in rows
    ]


def _appliers() -> dict[str, Any]:
    from marketo_sandbox.ingestion import (  # noqa: PLC0415
        companies,
        custom_objects,
        persons,
        program_members,
    )

    return {
        "persons": persons.apply,
        "companies": companies.apply,
        "custom_objects": custom_objects.apply,
        "program_members": program_members.apply,
        "program_members_delete": program_members.apply_delete,
    }


def apply_now(store: Any, kind: str, plan: dict, request_id: str) -> None:
    """Apply one accepted request; a failure is logged, never raised to the client."""
    try:
        problems = _appliers()[kind](store, plan)
    except Exception:
        log.exception("ingestion request %s (%s) failed to apply", request_id, kind)
        return
    if problems:
        log.info(
            "ingestion request %s (%s): %d records skipped, first: %s",
            request_id,
            kind,
            len(problems),
            problems[0],
        )


def accept(app: Any, kind: str, plan: dict, request_id: str) -> None:
    """Apply now, or park the request until `ingestion_apply_delay_seconds` have passed."""
    store = app.state.store
    delay = float(option(app, "ingestion_apply_delay_seconds") or 0)
    if delay <= 0:
        apply_now(store, kind, plan, request_id)
        return
    from marketo_sandbox.bulk.common import scheduler  # noqa: PLC0415

    sched = scheduler(app)
    with store.tx() as conn:
        conn.execute(
            f"INSERT INTO {PENDING} (request_id, kind, plan, due_at) VALUES (?, ?, ?, ?)",  # noqa: S608
            (request_id, kind, dumps(plan), sched.now() + delay),
        )
    sched.wake()


def setup(app: Any, sched: Scheduler) -> None:
    """Apply parked requests from the scheduler's driver when they fall due."""
    store = app.state.store
    ensure_schema(store)

    def hook(now: float) -> None:
        due = fetch_all(
            store.conn(),
            f"SELECT * FROM {PENDING} WHERE due_at <= ? ORDER BY due_at",  # noqa: S608
            (now,),
        )
        for row in due:
            apply_now(store, row["kind"], orjson.loads(row["plan"]), row["request_id"])
            with store.tx() as conn:
                conn.execute(f"DELETE FROM {PENDING} WHERE request_id = ?", (row["request_id"],))  # noqa: S608

    sched.hooks.append(hook)
