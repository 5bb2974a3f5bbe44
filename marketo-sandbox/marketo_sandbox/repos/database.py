"""The connection manager: one SQLite file (WAL) under every repository and API family.

Values of custom fields (and of updateable standard program-member fields such as
registrationCode) live in one JSON column `data` per row rather than in a column each. Marketo
lets users create fields at any time through the schema API; with JSON a new field works at once
in describe, REST reads/writes, exports and imports, without ALTER TABLE on a table that may hold
millions of rows, and without rebuilding the prepared statements other threads hold. The fixed
standard fields keep real columns because exports filter and sort on them.

Datetimes are stored as Marketo writes them (`2024-01-02T03:04:05Z`), which sorts as text.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from typing import TYPE_CHECKING

from marketo_sandbox.clock import Clock, parse_datetime

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

CORE_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS fields (
    object TEXT NOT NULL,
    name TEXT NOT NULL,
    display_name TEXT NOT NULL,
    data_type TEXT NOT NULL,
    length INTEGER,
    updateable INTEGER NOT NULL,
    crm_managed INTEGER NOT NULL DEFAULT 0,
    is_custom INTEGER NOT NULL,
    is_hidden INTEGER NOT NULL DEFAULT 0,
    is_html_encoding INTEGER NOT NULL DEFAULT 0,
    is_sensitive INTEGER NOT NULL DEFAULT 0,
    is_api_created INTEGER NOT NULL DEFAULT 0,
    searchable INTEGER NOT NULL DEFAULT 0,
    description TEXT,
    column_name TEXT,
    position INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (object, name)
);
CREATE TABLE IF NOT EXISTS channels (
    name TEXT PRIMARY KEY,
    program_type TEXT NOT NULL,
    statuses TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS programs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT,
    type TEXT NOT NULL,
    channel TEXT NOT NULL,
    status TEXT,
    workspace TEXT NOT NULL DEFAULT 'Default',
    folder_id INTEGER,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS leads (
    id INTEGER PRIMARY KEY,
    email TEXT COLLATE NOCASE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS leads_email ON leads (email);
CREATE TABLE IF NOT EXISTS program_members (
    program_id INTEGER NOT NULL,
    lead_id INTEGER NOT NULL,
    status_name TEXT NOT NULL,
    reached_success INTEGER NOT NULL DEFAULT 0,
    reached_success_date TEXT,
    acquired_by INTEGER NOT NULL DEFAULT 0,
    is_exhausted INTEGER NOT NULL DEFAULT 0,
    nurture_cadence TEXT,
    membership_date TEXT NOT NULL,
    status_reason TEXT,
    track_name TEXT,
    waitlist_priority INTEGER,
    attendance_likelihood INTEGER,
    registration_likelihood INTEGER,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (program_id, lead_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS program_members_updated ON program_members (program_id, updated_at);
CREATE TABLE IF NOT EXISTS tokens (
    token TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    query TEXT NOT NULL,
    status INTEGER NOT NULL,
    code TEXT,
    client_id TEXT,
    duration_ms REAL NOT NULL
);
"""


class Database:
    """One SQLite file in WAL mode, one connection per thread; the repositories share it.

    `schemas` are the `CREATE TABLE IF NOT EXISTS ...` scripts of the API families (given by the
    composition root), created after the core tables and again after `reset`.
    """

    def __init__(self, path: str | Path, clock: Clock, schemas: Sequence[str] = ()) -> None:
        self.path = str(path)
        self.clock = clock
        self.schemas = tuple(schemas)
        self._local = threading.local()
        self.create_schema()

    def connect(self) -> sqlite3.Connection:
        """A new connection of its own (for a reader consumed in another thread)."""
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=60000")
        return conn

    def conn(self) -> sqlite3.Connection:
        """This thread's connection (autocommit; use `tx()` for writes)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.connect()
            self._local.conn = conn
            self._local.depth = 0
        return conn

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE); nested calls join the outer one."""
        conn = self.conn()
        if self._local.depth:
            self._local.depth += 1
            try:
                yield conn
            finally:
                self._local.depth -= 1
            return
        conn.execute("BEGIN IMMEDIATE")
        self._local.depth = 1
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")
        finally:
            self._local.depth = 0

    def create_schema(self) -> None:
        """The core tables and the families' (idempotent)."""
        conn = self.conn()
        for sql in (CORE_SCHEMA, *self.schemas):
            conn.executescript(sql)

    def drop_all(self) -> None:
        """Drop every table (`/_sandbox/reset`); `create_schema` makes them again."""
        conn = self.conn()
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        with self.tx():
            for table in tables:
                conn.execute(f'DROP TABLE IF EXISTS "{table}"')

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def get_meta(self, key: str) -> str | None:
        """A value of the key/value `meta` table."""
        row = self.conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        """Set a `meta` value."""
        with self.tx() as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def advance_clock_past_data(self) -> None:
        """After a restart sandbox time must not fall behind what was already written."""
        row = (
            self.conn()
            .execute(
                "SELECT MAX(m) FROM (SELECT MAX(updated_at) AS m FROM program_members "
                "UNION ALL SELECT MAX(updated_at) FROM leads)"
            )
            .fetchone()
        )
        high = self.get_meta("clock_high_water")
        for text in (row[0] if row else None, high):
            if text:
                self.clock.not_before(parse_datetime(text))

    def save_clock(self) -> None:
        """Remember sandbox time, so a restart continues from here."""
        self.set_meta("clock_high_water", self.clock.now_iso())
