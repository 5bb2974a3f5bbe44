"""SQLite (WAL) state of the sandbox and the data access every API family shares.

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
import re
import sqlite3
import threading
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

import orjson

from marketo_sandbox.clock import Clock, parse_datetime
from marketo_sandbox.envelope import MarketoHTTPError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence
    from pathlib import Path

PROGRAM_MEMBER = "programMember"
LEAD = "lead"
NOT_IN_PROGRAM = "Not in Program"
MAX_CUSTOM_PM_FIELDS = 20

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

_EXTRA_SCHEMAS: list[str] = []


def register_schema(sql: str) -> None:
    """Add `CREATE TABLE IF NOT EXISTS ...` statements of an API family (bulk, ingestion).

    Call at import time of the family's module; every Store opened afterwards creates them, and
    `/_sandbox/reset` drops and recreates them with the core tables.
    """
    if sql not in _EXTRA_SCHEMAS:
        _EXTRA_SCHEMAS.append(sql)


# --- field definitions -------------------------------------------------------------------------

# Field tuples: API name, display name, data type, length, updateable, column, searchable.
STANDARD_PM_FIELDS: tuple[tuple[str, str, str, int | None, bool, str | None, bool], ...] = (
    ("acquiredBy", "Acquired By", "boolean", None, False, "acquired_by", False),
    ("attendanceLikelihood", "Attendance Likelihood", "integer", None, False,
     "attendance_likelihood", False),
    ("createdAt", "Created At", "datetime", None, False, "created_at", False),
    ("isExhausted", "Nurture Exhausted", "boolean", None, False, "is_exhausted", False),
    ("leadId", "Lead Id", "integer", None, False, "lead_id", True),
    ("membershipDate", "Member Date", "datetime", None, False, "membership_date", False),
    ("nurtureCadence", "Nurture Cadence", "string", 4, False, "nurture_cadence", False),
    ("program", "Program", "string", 255, False, None, False),
    ("programId", "Program Id", "integer", None, False, "program_id", False),
    ("reachedSuccess", "Success", "boolean", None, False, "reached_success", True),
    ("reachedSuccessDate", "Success Date", "datetime", None, False, "reached_success_date", False),
    ("registrationLikelihood", "Registration Likelihood", "integer", None, False,
     "registration_likelihood", False),
    ("statusName", "Status", "string", 255, False, "status_name", True),
    ("statusReason", "Status Reason", "string", 255, False, "status_reason", False),
    ("trackName", "Track Name", "string", 255, False, "track_name", False),
    ("updatedAt", "Updated At", "datetime", None, False, "updated_at", False),
    ("waitlistPriority", "Waitlist Priority", "integer", None, False, "waitlist_priority", False),
    ("registrationCode", "Registration Code", "string", 100, True, None, False),
    ("webinarUrl", "Webinar Url", "string", 2000, True, None, False),
)  # fmt: skip

# The standard lead fields of a fresh subscription (a realistic subset of Marketo's ~100).
STANDARD_LEAD_FIELDS: tuple[tuple[str, str, str, int | None, bool, str | None, bool], ...] = (
    ("id", "Id", "integer", None, False, "id", True),
    ("email", "Email Address", "email", 255, True, "email", True),
    ("firstName", "First Name", "string", 255, True, None, False),
    ("lastName", "Last Name", "string", 255, True, None, False),
    ("company", "Company Name", "string", 255, True, None, False),
    ("title", "Job Title", "string", 255, True, None, False),
    ("phone", "Phone Number", "phone", 255, True, None, False),
    ("website", "Website", "url", 255, True, None, False),
    ("city", "City", "string", 255, True, None, False),
    ("country", "Country", "string", 255, True, None, False),
    ("leadSource", "Lead Source", "string", 255, True, None, False),
    ("leadScore", "Lead Score", "score", None, True, None, False),
    ("annualRevenue", "Annual Revenue", "currency", None, True, None, False),
    ("numberOfEmployees", "Num Employees", "integer", None, True, None, False),
    ("unsubscribed", "Unsubscribed", "boolean", None, True, None, False),
    ("dateOfBirth", "Date of Birth", "date", None, True, None, False),
    ("createdAt", "Created At", "datetime", None, False, "created_at", False),
    ("updatedAt", "Updated At", "datetime", None, False, "updated_at", False),
)

_STRING_TYPES = frozenset({"string", "text", "email", "phone", "url", "reference"})
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f"})


def coerce(data_type: str, value: Any, length: int | None = None) -> Any:  # noqa: C901, PLR0911, PLR0912
    """Convert `value` (a JSON value or CSV text) to what the store keeps; ValueError if invalid.

    None and "" clear the value (None). Booleans stay bool, integer/score int, float/currency
    float, datetime an ISO-8601 `Z` string, date `YYYY-MM-DD`, everything else str.
    """
    if value is None or (isinstance(value, str) and value == ""):
        return None
    if data_type in _STRING_TYPES:
        if isinstance(value, (dict, list)):
            raise ValueError("a text value was expected")
        text = value if isinstance(value, str) else str(value)
        if length and len(text) > length:
            raise ValueError(f"value longer than {length} characters")
        if data_type == "email" and not _EMAIL.match(text):
            raise ValueError("Invalid email address")
        return text
    if data_type in ("integer", "score"):
        if isinstance(value, bool):
            raise ValueError("an integer was expected")
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError("an integer was expected")
            return int(value)
        return int(str(value).strip())
    if data_type in ("float", "currency"):
        if isinstance(value, bool):
            raise ValueError("a number was expected")
        return float(str(value).strip()) if isinstance(value, str) else float(value)
    if data_type == "percent":
        # field-types.md: "expressed as an integer"; real instances hold decimals, kept as given
        # (a documented deviation): 30 stays 30, 12.5 stays 12.5.
        if isinstance(value, bool):
            raise ValueError("a number was expected")
        number = float(str(value).strip()) if isinstance(value, str) else float(value)
        return int(number) if number.is_integer() else number
    if data_type == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError("a boolean (true/false) was expected")
    if data_type == "datetime":
        if isinstance(value, datetime):
            moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        else:
            moment = parse_datetime(str(value))
        return Clock.iso(moment)
    if data_type == "date":
        if isinstance(value, datetime):
            return value.date().isoformat()
        if isinstance(value, date):
            return value.isoformat()
        text = str(value).strip()
        return (
            parse_datetime(text).date() if "T" in text else date.fromisoformat(text)
        ).isoformat()
    raise ValueError(f"unsupported data type {data_type}")


def check_value(field: Mapping[str, Any], value: Any) -> Any:
    """`coerce` for a describe dict; the ValueError names the field, as Marketo's reasons do."""
    try:
        return coerce(field["dataType"], value, field.get("length"))
    except (ValueError, TypeError) as exc:
        detail = str(exc) if str(exc) and "invalid literal" not in str(exc) else "invalid value"
        raise ValueError(f"Invalid value '{value}' for field '{field['name']}': {detail}") from None


# --- the store ---------------------------------------------------------------------------------


class Store:
    """The sandbox database: one SQLite file in WAL mode, one connection per thread.

    `clock` gives the timestamps of writes (sandbox time). Other families add tables with
    `register_schema` and reach the database with `conn()` / `tx()`.
    """

    def __init__(
        self, path: str | Path, clock: Clock | None = None, *, family_schemas: bool = True
    ) -> None:
        self.path = str(path)
        self.clock = clock or Clock()
        self._local = threading.local()
        self._field_cache: dict[str, list[dict[str, Any]]] = {}
        self._cache_lock = threading.Lock()
        self._calls: list[tuple] = []
        self._calls_lock = threading.Lock()
        self._family_schemas = family_schemas
        self._create_schema()
        self._advance_clock_past_data()

    # connections and transactions

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=60000")
        return conn

    def conn(self) -> sqlite3.Connection:
        """This thread's connection (autocommit; use `tx()` for writes)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
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

    def register_schema(self, sql: str) -> None:
        """`register_schema(sql)` and create the tables in this store now."""
        register_schema(sql)
        self.conn().executescript(sql)

    def _create_schema(self) -> None:
        conn = self.conn()
        conn.executescript(CORE_SCHEMA)
        for sql in _EXTRA_SCHEMAS if self._family_schemas else ():
            conn.executescript(sql)
        if conn.execute("SELECT COUNT(*) FROM fields").fetchone()[0] == 0:
            self._insert_standard_fields()

    def _advance_clock_past_data(self) -> None:
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

    def reset(self) -> None:
        """Drop everything and recreate the empty schema (standard fields only)."""
        self.flush_calls()
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
        self._invalidate_fields()
        self._create_schema()

    def close(self) -> None:
        """Flush the call log and close this thread's connection."""
        self.flush_calls()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # meta

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

    # fields

    def _insert_standard_fields(self) -> None:
        now = self.clock.now_iso()
        rows = []
        for obj, defs in ((PROGRAM_MEMBER, STANDARD_PM_FIELDS), (LEAD, STANDARD_LEAD_FIELDS)):
            for pos, (name, display, dtype, length, upd, column, searchable) in enumerate(defs):
                html = 1 if dtype in _STRING_TYPES else 0
                rows.append(
                    (obj, name, display, dtype, length, int(upd), 0, 0, 0, html, 0, 0,
                     int(searchable), None, column, pos, now, now)
                )  # fmt: skip
        with self.tx() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO fields VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows
            )
        self._invalidate_fields()

    def _invalidate_fields(self) -> None:
        with self._cache_lock:
            self._field_cache.clear()

    def field_records(self, obj: str) -> list[dict[str, Any]]:
        """Full field metadata of `obj` ('programMember' or 'lead'), in schema order.

        Keys: name, displayName, dataType, length (None when not applicable), updateable,
        crmManaged, isCustom, isHidden, isHtmlEncodingInEmail, isSensitive, isApiCreated,
        searchable, description, column (None when the value lives in the row's JSON).
        """
        with self._cache_lock:
            cached = self._field_cache.get(obj)
        if cached is not None:
            return cached
        cur = self.conn().execute(
            "SELECT name, display_name, data_type, length, updateable, crm_managed, is_custom, "
            "is_hidden, is_html_encoding, is_sensitive, is_api_created, searchable, description, "
            "column_name, created_at, updated_at FROM fields WHERE object = ? "
            "ORDER BY is_custom, position",
            (obj,),
        )
        records = [
            {
                "name": r[0],
                "displayName": r[1],
                "dataType": r[2],
                "length": r[3],
                "updateable": bool(r[4]),
                "crmManaged": bool(r[5]),
                "isCustom": bool(r[6]),
                "isHidden": bool(r[7]),
                "isHtmlEncodingInEmail": bool(r[8]),
                "isSensitive": bool(r[9]),
                "isApiCreated": bool(r[10]),
                "searchable": bool(r[11]),
                "description": r[12],
                "column": r[13],
                "createdAt": r[14],
                "updatedAt": r[15],
            }
            for r in cur
        ]
        with self._cache_lock:
            self._field_cache[obj] = records
        return records

    def field_map(self, obj: str) -> dict[str, dict[str, Any]]:
        """`field_records` keyed by API name."""
        return {f["name"]: f for f in self.field_records(obj)}

    @staticmethod
    def describe_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Field records as describe dicts (see `describe_program_member_fields`)."""
        out = []
        for f in records:
            item = {
                "name": f["name"],
                "displayName": f["displayName"],
                "dataType": f["dataType"],
            }
            if f["length"] is not None:
                item["length"] = f["length"]
            item.update(
                updateable=f["updateable"], crmManaged=f["crmManaged"], isCustom=f["isCustom"]
            )
            out.append(item)
        return out

    def describe_program_member_fields(self) -> list[dict[str, Any]]:
        """Program member fields as describe dicts.

        Keys: name, displayName, dataType, length (only where Marketo gives one), updateable,
        crmManaged, isCustom.
        """
        return self.describe_records(self.field_records(PROGRAM_MEMBER))

    def describe_lead_fields(self) -> list[dict[str, Any]]:
        """Lead fields as describe dicts, like `describe_program_member_fields`."""
        return self.describe_records(self.field_records(LEAD))

    def create_field(self, obj: str, spec: Mapping[str, Any], *, api_created: bool = True) -> None:
        """Insert a custom field (validated by the caller); visible to every reader at once."""
        now = self.clock.now_iso()
        dtype = spec["dataType"]
        length = spec.get("length")
        if length is None and dtype in ("string", "email", "phone", "url", "reference"):
            length = 2000 if dtype == "url" else 255
        with self.tx() as conn:
            pos = conn.execute(
                "SELECT COALESCE(MAX(position), 0) + 1 FROM fields WHERE object = ?", (obj,)
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO fields VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    obj,
                    spec["name"],
                    spec["displayName"],
                    dtype,
                    length,
                    int(dtype != "formula"),  # a formula's value is computed, never written
                    0,
                    1,
                    int(bool(spec.get("isHidden", False))),
                    int(bool(spec.get("isHtmlEncodingInEmail", dtype in _STRING_TYPES))),
                    int(bool(spec.get("isSensitive", False))),
                    int(api_created),
                    int(dtype in ("string", "integer")),
                    spec.get("description"),
                    None,
                    pos,
                    now,
                    now,
                ),
            )
        self._invalidate_fields()

    def update_field(self, obj: str, name: str, changes: Mapping[str, Any]) -> None:
        """Update display attributes of a field (validated by the caller)."""
        columns = {
            "displayName": "display_name",
            "description": "description",
            "isHidden": "is_hidden",
            "isHtmlEncodingInEmail": "is_html_encoding",
            "isSensitive": "is_sensitive",
        }
        sets, params = [], []
        for key, value in changes.items():
            sets.append(f"{columns[key]} = ?")
            params.append(int(value) if isinstance(value, bool) else value)
        sets.append("updated_at = ?")
        params += [self.clock.now_iso(), obj, name]
        with self.tx() as conn:
            conn.execute(
                f"UPDATE fields SET {', '.join(sets)} WHERE object = ? AND name = ?",  # noqa: S608
                params,
            )
        self._invalidate_fields()

    # channels and programs

    def add_channel(self, name: str, program_type: str, statuses: Sequence[Mapping]) -> None:
        """Create or replace a channel; statuses: [{name, step, success, hidden?, description?}]."""
        with self.tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO channels VALUES (?, ?, ?)",
                (name, program_type, orjson.dumps(list(statuses)).decode()),
            )

    def channel(self, name: str) -> dict[str, Any] | None:
        """A channel with its progression statuses (ordered by step)."""
        row = (
            self.conn()
            .execute("SELECT name, program_type, statuses FROM channels WHERE name = ?", (name,))
            .fetchone()
        )
        if row is None:
            return None
        statuses = sorted(orjson.loads(row[2]), key=lambda s: s["step"])
        return {"name": row[0], "applicableProgramType": row[1], "progressionStatuses": statuses}

    def add_program(
        self,
        program_id: int,
        name: str,
        channel: str,
        *,
        program_type: str = "program",
        description: str = "",
        status: str = "",
        folder_id: int | None = None,
        created_at: str | None = None,
    ) -> None:
        """Create a program (its channel must exist); `created_at` for seeded history."""
        now = created_at or self.clock.now_iso()
        with self.tx() as conn:
            conn.execute(
                "INSERT INTO programs (id, name, description, type, channel, status, folder_id, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (program_id, name, description, program_type, channel, status, folder_id, now, now),
            )

    _PROGRAM_SQL = (
        "SELECT id, name, description, type, channel, status, workspace, folder_id, "
        "created_at, updated_at FROM programs"
    )

    def _program_dict(self, row: Sequence[Any]) -> dict[str, Any]:
        channel = self.channel(row[4]) or {"progressionStatuses": []}
        progression = channel["progressionStatuses"]
        return {
            "id": row[0],
            "name": row[1],
            "description": row[2] or "",
            "type": row[3],
            "channel": row[4],
            "status": row[5] or "",
            "workspace": row[6],
            "folderId": row[7],
            "createdAt": row[8],
            "updatedAt": row[9],
            "statuses": [NOT_IN_PROGRAM] + [s["name"] for s in progression],
            "progressionStatuses": progression,
        }

    def program(self, program_id: int) -> dict[str, Any] | None:
        """A program, or None.

        `statuses` lists the status names incl. "Not in Program"; `progressionStatuses` the
        channel's statuses as dicts with name, step and success.
        """
        row = self.conn().execute(self._PROGRAM_SQL + " WHERE id = ?", (program_id,)).fetchone()
        return self._program_dict(row) if row else None

    def programs(self) -> list[dict[str, Any]]:
        """Every program, by id."""
        rows = self.conn().execute(self._PROGRAM_SQL + " ORDER BY id").fetchall()
        return [self._program_dict(r) for r in rows]

    def _require_program(self, program_id: int) -> dict[str, Any]:
        program = self.program(program_id)
        if program is None:
            raise MarketoHTTPError(1013, f"Program '{program_id}' not found")
        return program

    @staticmethod
    def status_step(program: Mapping[str, Any], status_name: str) -> dict[str, Any] | None:
        """The progression status of `program` named `status_name` (case-insensitive), or None."""
        wanted = status_name.strip().lower()
        for status in program["progressionStatuses"]:
            if status["name"].lower() == wanted:
                return status
        return None

    # program members: reads

    def _pm_plan(
        self, fields: Sequence[str]
    ) -> tuple[list[str], list[tuple[str, str, Any, str]], bool, bool]:
        """Columns to select and per-field extraction steps for `fields`.

        Program member fields win over lead fields of the same name (createdAt, updatedAt), as
        in Marketo's exports. Unknown names raise MarketoHTTPError 1006.
        """
        pm = self.field_map(PROGRAM_MEMBER)
        lead = self.field_map(LEAD)
        columns: list[str] = ["pm.data", "l.data"]
        steps: list[tuple[str, str, Any, str]] = []
        need_pm_json = need_lead_json = False
        for name in fields:
            if name in pm:
                f = pm[name]
                if name == "program":
                    columns.append("p.name")
                    steps.append((name, "col", len(columns) - 1, "string"))
                elif f["column"]:
                    columns.append(f"pm.{f['column']}")
                    steps.append((name, "col", len(columns) - 1, f["dataType"]))
                else:
                    need_pm_json = True
                    steps.append((name, "pm", name, f["dataType"]))
            elif name in lead:
                f = lead[name]
                if f["column"]:
                    columns.append(f"l.{f['column']}")
                    steps.append((name, "col", len(columns) - 1, f["dataType"]))
                else:
                    need_lead_json = True
                    steps.append((name, "lead", name, f["dataType"]))
            else:
                raise MarketoHTTPError(1006, f"Field '{name}' not found")
        return columns, steps, need_pm_json, need_lead_json

    @staticmethod
    def _rows_to_dicts(
        cursor: Iterable[Sequence[Any]],
        steps: list[tuple[str, str, Any, str]],
        need_pm_json: bool,
        need_lead_json: bool,
    ) -> Iterator[dict[str, Any]]:
        loads = orjson.loads
        empty: dict[str, Any] = {}
        for row in cursor:
            pm_data = loads(row[0]) if need_pm_json else empty
            lead_data = loads(row[1]) if need_lead_json and row[1] else empty
            out = {}
            for name, source, key, dtype in steps:
                if source == "col":
                    value = row[key]
                    if dtype == "boolean" and value is not None:
                        value = bool(value)
                elif source == "pm":
                    value = pm_data.get(key)
                else:
                    value = lead_data.get(key)
                out[name] = value
            yield out

    def iter_program_members(
        self,
        program_ids: Iterable[int],
        fields: Sequence[str],
        updated_from: datetime | str | None = None,
        updated_to: datetime | str | None = None,
        *,
        status_names: Sequence[str] = (),
        is_exhausted: bool | None = None,
        nurture_cadence: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Members of `program_ids` as dicts of the requested API names (lead fields joined).

        Values: bool for booleans, int for integers/scores, float for float/currency, ISO-8601
        `Z` strings for datetimes, `YYYY-MM-DD` for dates, str otherwise, None when empty.
        `updated_from`/`updated_to` bound the member's updatedAt (both inclusive); the extract's
        other filters (status names ORed, case-insensitive; isExhausted; nurtureCadence) are ANDed.
        Ordered by program and lead id. Uses its own connection, so it may be consumed in any
        thread.
        """
        ids = [int(p) for p in program_ids]
        if not ids:
            return
        columns, steps, need_pm, need_lead = self._pm_plan(fields)
        where = [f"pm.program_id IN ({','.join('?' * len(ids))})"]
        params: list[Any] = list(ids)
        if updated_from is not None:
            where.append("pm.updated_at >= ?")
            params.append(_iso(updated_from))
        if updated_to is not None:
            where.append("pm.updated_at <= ?")
            params.append(_iso(updated_to))
        if status_names:
            where.append(f"lower(pm.status_name) IN ({','.join('?' * len(status_names))})")
            params.extend(name.lower() for name in status_names)
        if is_exhausted is not None:
            where.append("pm.is_exhausted = ?")
            params.append(int(is_exhausted))
        if nurture_cadence is not None:
            where.append("pm.nurture_cadence = ?")
            params.append(nurture_cadence)
        sql = (
            f"SELECT {', '.join(columns)} FROM program_members pm "  # noqa: S608
            "JOIN programs p ON p.id = pm.program_id LEFT JOIN leads l ON l.id = pm.lead_id "
            f"WHERE {' AND '.join(where)} ORDER BY pm.program_id, pm.lead_id"
        )
        conn = self._connect()
        try:
            cursor = conn.execute(sql, params)
            cursor.arraysize = 2000
            while True:
                chunk = cursor.fetchmany()
                if not chunk:
                    break
                yield from self._rows_to_dicts(chunk, steps, need_pm, need_lead)
        finally:
            conn.close()

    def count_program_members(
        self, program_id: int, where: str = "", params: Sequence[Any] = ()
    ) -> int:
        """Members of a program, optionally narrowed by an SQL condition on `pm`."""
        sql = "SELECT COUNT(*) FROM program_members pm WHERE pm.program_id = ?"
        if where:
            sql += f" AND ({where})"
        return self.conn().execute(sql, (program_id, *params)).fetchone()[0]

    def query_program_members(
        self,
        program_id: int,
        fields: Sequence[str],
        *,
        where: str = "",
        params: Sequence[Any] = (),
        after_lead_id: int = 0,
        limit: int = 300,
    ) -> list[dict[str, Any]]:
        """A page of members ordered by leadId (> `after_lead_id`), for the REST query."""
        columns, steps, need_pm, need_lead = self._pm_plan(["leadId", *fields])
        sql = (
            f"SELECT {', '.join(columns)} FROM program_members pm "  # noqa: S608
            "JOIN programs p ON p.id = pm.program_id LEFT JOIN leads l ON l.id = pm.lead_id "
            "WHERE pm.program_id = ? AND pm.lead_id > ?"
            + (f" AND ({where})" if where else "")
            + " ORDER BY pm.lead_id LIMIT ?"
        )
        rows = self.conn().execute(sql, (program_id, after_lead_id, *params, limit)).fetchall()
        return list(self._rows_to_dicts(rows, steps, need_pm, need_lead))

    # program members: writes

    def _member_row(self, conn: sqlite3.Connection, program_id: int, lead_id: int) -> Any:
        return conn.execute(
            "SELECT status_name, data FROM program_members WHERE program_id = ? AND lead_id = ?",
            (program_id, lead_id),
        ).fetchone()

    def _apply_status(
        self,
        conn: sqlite3.Connection,
        program: Mapping[str, Any],
        lead_id: int,
        status: Mapping[str, Any],
        now: str,
        *,
        acquired: bool = False,
    ) -> tuple[str, str | None]:
        """Create the membership or move it forward; ('created'|'updated'|'skipped', reason)."""
        pid = program["id"]
        current = self._member_row(conn, pid, lead_id)
        success = bool(status.get("success"))
        if current is None:
            conn.execute(
                "INSERT INTO program_members (program_id, lead_id, status_name, reached_success, "
                "reached_success_date, acquired_by, membership_date, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (pid, lead_id, status["name"], int(success), now if success else None,
                 int(acquired), now, now, now),
            )  # fmt: skip
            return "created", None
        current_step = self.status_step(program, current[0])
        if current_step is not None and current_step["step"] >= status["step"]:
            return "skipped", "Lead skipped because it is already in or past this status"
        conn.execute(
            "UPDATE program_members SET status_name = ?, updated_at = ?, "
            "reached_success = MAX(reached_success, ?), "
            "reached_success_date = COALESCE(reached_success_date, ?) "
            "WHERE program_id = ? AND lead_id = ?",
            (status["name"], now, int(success), now if success else None, pid, lead_id),
        )
        return "updated", None

    def _require_status(self, program: Mapping[str, Any], status_name: str) -> dict[str, Any]:
        status = self.status_step(program, status_name or "")
        if status is None:
            # "Not in Program" is not a progression status: it cannot be assigned.
            raise MarketoHTTPError(
                1003,
                f"Invalid status '{status_name}' for program {program['id']}; valid: "
                + ", ".join(s["name"] for s in program["progressionStatuses"]),
            )
        return status

    def sync_member_status(
        self, program_id: int, status_name: str, lead_ids: Sequence[int]
    ) -> list[tuple[str, int | None, str | None, str | None]]:
        """REST sync status: per lead (status, leadId, reason code, reason message)."""
        program = self._require_program(program_id)
        status = self._require_status(program, status_name)
        now = self.clock.now_iso()
        out: list[tuple[str, int | None, str | None, str | None]] = []
        with self.tx() as conn:
            for lead_id in lead_ids:
                if not conn.execute("SELECT 1 FROM leads WHERE id = ?", (lead_id,)).fetchone():
                    out.append(("skipped", None, "1004", "Lead not found"))
                    continue
                result, why = self._apply_status(conn, program, lead_id, status, now)
                if result == "skipped":
                    out.append(("skipped", None, "1037", why))
                else:
                    out.append((result, lead_id, None, None))
        return out

    def update_member_data(
        self, program_id: int, rows: Sequence[Mapping[str, Any]]
    ) -> list[tuple[str, int | None, str | None, str | None]]:
        """REST sync data: per row (status, leadId, reason code, reason message)."""
        self._require_program(program_id)
        pm = self.field_map(PROGRAM_MEMBER)
        now = self.clock.now_iso()
        out: list[tuple[str, int | None, str | None, str | None]] = []
        with self.tx() as conn:
            for row in rows:
                lead_id = row.get("leadId")
                if not isinstance(lead_id, int) or isinstance(lead_id, bool):
                    out.append(("skipped", None, "1003", "leadId must be an integer"))
                    continue
                try:
                    changes = self._pm_changes(pm, row, skip=("leadId",))
                except ValueError as exc:
                    code, _, message = str(exc).partition("|")
                    out.append(("skipped", None, code, message))
                    continue
                if not changes:
                    # "a leadId and one or more fields to update": the code is our choice.
                    out.append(("skipped", None, "1003", "No field to update"))
                    continue
                current = self._member_row(conn, program_id, lead_id)
                if current is None:
                    out.append(("skipped", None, "1013", "Membership not found"))
                    continue
                data = orjson.loads(current[1])
                data.update(changes)
                conn.execute(
                    "UPDATE program_members SET data = ?, updated_at = ? "
                    "WHERE program_id = ? AND lead_id = ?",
                    (orjson.dumps(data).decode(), now, program_id, lead_id),
                )
                out.append(("updated", lead_id, None, None))
        return out

    @staticmethod
    def _pm_changes(
        pm: Mapping[str, Mapping[str, Any]], row: Mapping[str, Any], skip: Sequence[str]
    ) -> dict[str, Any]:
        """Validated updateable PM values of `row`; ValueError('code|message') otherwise."""
        changes = {}
        for key, value in row.items():
            if key in skip:
                continue
            field = pm.get(key)
            if field is None:
                raise ValueError(f"1006|Field '{key}' not found")
            if not field["updateable"]:
                raise ValueError(f"1003|Field '{key}' is not updateable")
            try:
                changes[key] = check_value(field, value)
            except ValueError as exc:
                raise ValueError(f"1003|{exc}") from None
        return changes

    def delete_program_members(
        self, program_id: int, lead_ids: Sequence[int]
    ) -> list[tuple[str, int | None, str | None]]:
        """Remove memberships: per lead ('deleted', leadId, None) or ('skipped', None, reason)."""
        self._require_program(program_id)
        out: list[tuple[str, int | None, str | None]] = []
        with self.tx() as conn:
            for lead_id in lead_ids:
                cur = conn.execute(
                    "DELETE FROM program_members WHERE program_id = ? AND lead_id = ?",
                    (program_id, lead_id),
                )
                if cur.rowcount:
                    out.append(("deleted", lead_id, None))
                else:
                    out.append(("skipped", None, "Lead not in program"))
        return out

    def touch_members(
        self, program_id: int, lead_ids: Sequence[int], values: Mapping[str, Any]
    ) -> int:
        """Set field values (any PM field, even read-only standard ones) and bump updatedAt."""
        program = self._require_program(program_id)
        if "statusName" in values:
            values = {
                **values,
                "statusName": self._require_status(program, values["statusName"])["name"],
            }
        pm = self.field_map(PROGRAM_MEMBER)
        now = self.clock.now_iso()
        sets: list[str] = []
        params: list[Any] = []
        json_values: dict[str, Any] = {}
        for key, value in values.items():
            field = pm.get(key)
            if field is None or key in ("programId", "leadId", "program"):
                raise MarketoHTTPError(1006, f"Field '{key}' not found or not settable")
            try:
                coerced = check_value(field, value)
            except ValueError as exc:
                raise MarketoHTTPError(1003, str(exc)) from None
            if field["column"]:
                sets.append(f"{field['column']} = ?")
                params.append(int(coerced) if isinstance(coerced, bool) else coerced)
            else:
                json_values[key] = coerced
        changed = 0
        with self.tx() as conn:
            for lead_id in lead_ids:
                current = self._member_row(conn, program_id, lead_id)
                if current is None:
                    continue
                data = orjson.loads(current[1])
                data.update(json_values)
                conn.execute(
                    f"UPDATE program_members SET {''.join(s + ', ' for s in sets)}"  # noqa: S608
                    "data = ?, updated_at = ? WHERE program_id = ? AND lead_id = ?",
                    (*params, orjson.dumps(data).decode(), now, program_id, lead_id),
                )
                changed += 1
        return changed

    # leads

    def query_leads(
        self,
        filter_field: str,
        values: Sequence[Any],
        fields: Sequence[str],
        *,
        after_id: int = 0,
        limit: int = 300,
    ) -> list[dict[str, Any]]:
        """Leads whose `filter_field` is one of `values` (typed), ordered by id.

        Dicts of `fields`, for REST Get Leads by Filter Type; unknown fields raise 1006.
        """
        lead = self.field_map(LEAD)
        for name in (filter_field, *fields):
            if name not in lead:
                raise MarketoHTTPError(1006, f"Field '{name}' not found")
        target = lead[filter_field]
        marks = ",".join("?" * len(values))
        if target["column"]:
            condition = f"{target['column']} IN ({marks})"
            params: list[Any] = list(values)
        else:
            condition = f"json_extract(data, ?) IN ({marks})"
            params = [f"$.{filter_field}", *values]
        rows = self.conn().execute(
            "SELECT id, email, created_at, updated_at, data FROM leads "  # noqa: S608
            f"WHERE id > ? AND {condition} ORDER BY id LIMIT ?",
            (after_id, *params, limit),
        )
        columns = {"id": 0, "email": 1, "createdAt": 2, "updatedAt": 3}
        out = []
        for row in rows:
            data = orjson.loads(row[4])
            item = {}
            for name in fields:
                if name in columns:
                    item[name] = row[columns[name]]
                else:
                    value = data.get(name)
                    if value is not None and lead[name]["dataType"] == "boolean":
                        value = bool(value)
                    item[name] = value
            out.append(item)
        return out

    def _find_leads(self, conn: sqlite3.Connection, field: Mapping[str, Any], value: Any) -> list:
        if field["name"] == "id":
            sql, param = "SELECT id FROM leads WHERE id = ?", value
        elif field["column"]:
            sql, param = f"SELECT id FROM leads WHERE {field['column']} = ? LIMIT 2", value  # noqa: S608
        else:
            sql = "SELECT id FROM leads WHERE json_extract(data, ?) = ? LIMIT 2"
            return [r[0] for r in conn.execute(sql, (f"$.{field['name']}", value))]
        return [r[0] for r in conn.execute(sql, (param,))]

    def _write_lead(
        self,
        conn: sqlite3.Connection,
        lead_id: int | None,
        values: Mapping[str, Any],
        now: str,
    ) -> int:
        email = values.get("email")
        data = {k: v for k, v in values.items() if k not in ("email", "id")}
        if lead_id is None:
            cur = conn.execute(
                "INSERT INTO leads (email, created_at, updated_at, data) VALUES (?, ?, ?, ?)",
                (email, now, now, orjson.dumps(data).decode()),
            )
            return int(cur.lastrowid)
        row = conn.execute("SELECT email, data FROM leads WHERE id = ?", (lead_id,)).fetchone()
        merged = orjson.loads(row[1])
        merged.update(data)
        conn.execute(
            "UPDATE leads SET email = ?, data = ?, updated_at = ? WHERE id = ?",
            (email if "email" in values else row[0], orjson.dumps(merged).decode(), now, lead_id),
        )
        return lead_id

    def _lead_values(
        self,
        lead_fields: Mapping[str, Mapping[str, Any]],
        row: Mapping[str, Any],
        *,
        invalid_email_ok: bool = False,
    ) -> dict[str, Any]:
        values = {}
        for key, value in row.items():
            field = lead_fields.get(key)
            if field is None:
                raise ValueError(f"Field '{key}' not found")
            if key in ("createdAt", "updatedAt"):
                raise ValueError(f"Field '{key}' is not updateable")
            if invalid_email_ok and field["dataType"] == "email":
                field = {**field, "dataType": "string"}  # kept as given (member import)
            values[key] = check_value(field, value)
        return values

    def upsert_leads(
        self,
        rows: Sequence[Mapping[str, Any]],
        lookup_field: str = "email",
        *,
        action: str = "createOrUpdate",
    ) -> list[tuple[str, int | None, str | None]]:
        """CreateOrUpdate leads on `lookup_field`: per row (status, leadId, reason).

        status is 'created', 'updated' or 'failed' (leadId None, reason says why: empty lookup
        value, several leads match, unknown field, invalid value). One transaction for all rows.
        `action` createOnly / updateOnly (REST sync leads) fail rows with "Lead already exists"
        / "Lead not found".
        """
        lead_fields = self.field_map(LEAD)
        lookup = lead_fields.get(lookup_field)
        if lookup is None:
            raise MarketoHTTPError(1003, f"Invalid lookupField '{lookup_field}'")
        now = self.clock.now_iso()
        out: list[tuple[str, int | None, str | None]] = []
        with self.tx() as conn:
            for row in rows:
                try:
                    values = self._lead_values(lead_fields, row)
                except ValueError as exc:
                    out.append(("failed", None, str(exc)))
                    continue
                key = values.get(lookup_field)
                if key is None:
                    out.append(("failed", None, f"Missing value for lookup field '{lookup_field}'"))
                    continue
                matches = self._find_leads(conn, lookup, key)
                if len(matches) > 1:
                    out.append(("failed", None, "Multiple lead match lookup criteria"))
                    continue
                if not matches and (lookup_field == "id" or action == "updateOnly"):
                    out.append(("failed", None, "Lead not found"))
                    continue
                if matches and action == "createOnly":
                    out.append(("failed", None, "Lead already exists"))
                    continue
                lead_id = self._write_lead(conn, matches[0] if matches else None, values, now)
                out.append(("updated" if matches else "created", lead_id, None))
        return out

    def upsert_program_members(
        self,
        program_id: int,
        status_name: str,
        rows: Sequence[Mapping[str, Any]],
        *,
        invalid_email_ok: bool = False,
    ) -> list[tuple[str, int | None, str | None]]:
        """Insert-or-update members of a program with a status: per row (status, leadId, reason).

        Each row needs `email` (the dedupe field; a lead is created when none matches) or a
        `leadId` of an existing lead. Other keys are lead fields (written to the lead) or
        updateable program member fields. status is 'created', 'updated' or 'failed'.
        `invalid_email_ok` keeps a malformed email as given (bulk member import warns). An
        'updated' row whose status was not moved (the member is already in or past the given
        status, Marketo's step rule) carries a reason saying so, for warnings. An unknown program
        raises 1013, an invalid status name 1003.
        """
        program = self._require_program(program_id)
        status = self._require_status(program, status_name)
        pm = self.field_map(PROGRAM_MEMBER)
        lead_fields = self.field_map(LEAD)
        now = self.clock.now_iso()
        out: list[tuple[str, int | None, str | None]] = []
        with self.tx() as conn:
            for row in rows:
                result = self._upsert_member_row(
                    conn, program, status, pm, lead_fields, row, now, invalid_email_ok
                )
                out.append(result)
        return out

    def _upsert_member_row(  # noqa: C901, PLR0911, PLR0912, PLR0917
        self,
        conn: sqlite3.Connection,
        program: Mapping[str, Any],
        status: Mapping[str, Any],
        pm: Mapping[str, Mapping[str, Any]],
        lead_fields: Mapping[str, Mapping[str, Any]],
        row: Mapping[str, Any],
        now: str,
        invalid_email_ok: bool = False,
    ) -> tuple[str, int | None, str | None]:
        lead_part: dict[str, Any] = {}
        pm_part: dict[str, Any] = {}
        for key, value in row.items():
            if key in ("leadId", "programId", "statusName"):
                continue
            if key in pm and pm[key]["updateable"]:
                pm_part[key] = value
            elif key in lead_fields:
                lead_part[key] = value
            elif key in pm:
                return "failed", None, f"Field '{key}' is not updateable"
            else:
                return "failed", None, f"Field '{key}' not found"
        try:
            lead_values = self._lead_values(
                lead_fields, lead_part, invalid_email_ok=invalid_email_ok
            )
            pm_values = {k: check_value(pm[k], v) for k, v in pm_part.items()}
        except ValueError as exc:
            return "failed", None, str(exc)
        lead_id = row.get("leadId")
        created_lead = False
        if lead_id not in (None, ""):
            try:
                lead_id = int(lead_id)
            except (TypeError, ValueError):
                return "failed", None, f"Invalid value '{lead_id}' for field 'leadId'"
            if not conn.execute("SELECT 1 FROM leads WHERE id = ?", (lead_id,)).fetchone():
                return "failed", None, "Lead not found"
            if lead_values:
                self._write_lead(conn, lead_id, lead_values, now)
        else:
            email = lead_values.get("email")
            if not email:
                return "failed", None, "Missing value for required field 'email'"
            matches = self._find_leads(conn, lead_fields["email"], email)
            if len(matches) > 1:
                return "failed", None, "Multiple lead match lookup criteria"
            created_lead = not matches
            if matches and set(lead_values) == {"email"}:
                lead_id = matches[0]  # nothing to change on the lead: its updatedAt stays
            else:
                lead_id = self._write_lead(conn, matches[0] if matches else None, lead_values, now)
        result, why = self._apply_status(conn, program, lead_id, status, now, acquired=created_lead)
        if pm_values:
            current = self._member_row(conn, program["id"], lead_id)
            data = orjson.loads(current[1])
            data.update(pm_values)
            conn.execute(
                "UPDATE program_members SET data = ?, updated_at = ? "
                "WHERE program_id = ? AND lead_id = ?",
                (orjson.dumps(data).decode(), now, program["id"], lead_id),
            )
        if result == "skipped":
            return "updated", lead_id, f"Status not changed: {why}"
        return result, lead_id, None

    # dumps and the call log

    def dump_leads(self) -> list[dict[str, Any]]:
        """Every lead with every field (admin dump)."""
        names = [f["name"] for f in self.field_records(LEAD)]
        rows = self.conn().execute(
            "SELECT id, email, created_at, updated_at, data FROM leads ORDER BY id"
        )
        out = []
        for r in rows:
            data = orjson.loads(r[4])
            item = {n: data.get(n) for n in names}
            item.update(id=r[0], email=r[1], createdAt=r[2], updatedAt=r[3])
            out.append(item)
        return out

    def dump_program_members(self, program_id: int | None = None) -> list[dict[str, Any]]:
        """Every membership with every program member field (admin dump)."""
        return list(self.iter_dump_program_members(program_id))

    def iter_dump_program_members(self, program_id: int | None = None) -> Iterator[dict[str, Any]]:
        """`dump_program_members` one row at a time (a million rows need not fit in memory)."""
        names = [f["name"] for f in self.field_records(PROGRAM_MEMBER)]
        ids = [program_id] if program_id else [p["id"] for p in self.programs()]
        return self.iter_program_members(ids, names)

    def dump_member_counts(self) -> list[dict[str, Any]]:
        """Members by program and status (admin dump `member_counts`)."""
        rows = self.conn().execute(
            "SELECT pm.program_id, p.name, pm.status_name, COUNT(*) FROM program_members pm "
            "JOIN programs p ON p.id = pm.program_id "
            "GROUP BY pm.program_id, p.name, pm.status_name ORDER BY pm.program_id, pm.status_name"
        )
        keys = ("programId", "program", "statusName", "members")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def dump_fields(self) -> list[dict[str, Any]]:
        """Field metadata of both objects (admin dump)."""
        return [
            {"object": obj, **{k: v for k, v in f.items() if k != "column"}}
            for obj in (PROGRAM_MEMBER, LEAD)
            for f in self.field_records(obj)
        ]

    def log_call(self, row: tuple) -> None:
        """Queue one request-log row (at, method, path, query, status, code, client_id, ms).

        Buffered and written by `flush_calls` (called periodically by the app), so logging
        never waits on a long write transaction of another request.
        """
        with self._calls_lock:
            self._calls.append(row)

    def flush_calls(self) -> None:
        """Write queued request-log rows."""
        with self._calls_lock:
            rows, self._calls = self._calls, []
        if rows:
            with self.tx() as conn:
                conn.executemany(
                    "INSERT INTO calls (at, method, path, query, status, code, client_id, "
                    "duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )

    def dump_calls(self) -> list[dict[str, Any]]:
        """The request log (admin dump)."""
        self.flush_calls()
        cur = self.conn().execute(
            "SELECT id, at, method, path, query, status, code, client_id, duration_ms "
            "FROM calls ORDER BY id"
        )
        keys = ("id", "at", "method", "path", "query", "status", "code", "clientId", "durationMs")
        return [dict(zip(keys, r, strict=True)) for r in cur]


def _iso(value: datetime | str) -> str:
    if isinstance(value, datetime):
        return Clock.iso(value)
    return Clock.iso(parse_datetime(value))
