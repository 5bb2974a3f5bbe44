"""Data Ingestion tables: parked requests, daily usage, failures, companies, custom objects."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from marketo_sandbox.jobs import fetch_all

if TYPE_CHECKING:
    from collections.abc import Callable

    from marketo_sandbox.storage import Store

PENDING = "ingestion_pending"
USAGE = "ingestion_usage"
FAILURES = "ingestion_failures"
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {PENDING} (
    request_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    plan TEXT NOT NULL,
    due_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS {USAGE} (day TEXT PRIMARY KEY, objects INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS {FAILURES} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    record TEXT NOT NULL,
    reason TEXT NOT NULL,
    correlation_id TEXT,
    request_source TEXT,
    client_id TEXT,
    failed_at TEXT NOT NULL
);
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


def dump_rows(store: Store, sql: str, keys: Callable[[Any], dict]) -> list[dict]:
    """Admin dump of a JSON `data` table: the row's keys, its data, createdAt, updatedAt."""
    with store.db.tx() as conn:
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
