"""Program members: reads for REST and exports, status moves, upserts for imports, dumps.

A member's standard fields are columns of `program_members`; custom and updateable standard
fields (registrationCode, webinarUrl) live in its JSON `data`; lead fields come from `leads`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from marketo_sandbox.envelope import MarketoHTTPError
from marketo_sandbox.repos.fields import LEAD, PROGRAM_MEMBER
from marketo_sandbox.repos.values import check_value, iso

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Iterable, Iterator, Mapping, Sequence
    from datetime import datetime

    from marketo_sandbox.clock import Clock
    from marketo_sandbox.repos.database import Database
    from marketo_sandbox.repos.fields import FieldRepository
    from marketo_sandbox.repos.leads import LeadRepository
    from marketo_sandbox.repos.programs import ProgramRepository

Step = tuple[str, str, Any, str]
Outcome = tuple[str, "int | None", "str | None"]
Reasoned = tuple[str, "int | None", "str | None", "str | None"]

#: Columns a field may name (`fields.column_name`), checked so no SQL comes from data.
PM_COLUMNS = frozenset({
    "acquired_by", "attendance_likelihood", "created_at", "is_exhausted", "lead_id",
    "membership_date", "nurture_cadence", "program_id", "reached_success",
    "reached_success_date", "registration_likelihood", "status_name", "status_reason",
    "track_name", "updated_at", "waitlist_priority",
})  # fmt: skip
LEAD_COLUMNS = frozenset({"id", "email", "created_at", "updated_at"})
_FROM = (
    " FROM program_members pm JOIN programs p ON p.id = pm.program_id "
    "LEFT JOIN leads l ON l.id = pm.lead_id WHERE pm.program_id = ?"
)
_IN = " IN (SELECT value FROM json_each(?))"
_COUNT = "SELECT COUNT(*) FROM program_members pm WHERE pm.program_id = ?"
#: Settable member columns (`touch`), each with its fixed statement.
_SET_COLUMN = {
    "acquired_by": (
        "UPDATE program_members SET acquired_by = ? WHERE program_id = ? AND lead_id = ?"
    ),
    "attendance_likelihood": (
        "UPDATE program_members SET attendance_likelihood = ? WHERE program_id = ? AND lead_id = ?"
    ),
    "created_at": (
        "UPDATE program_members SET created_at = ? WHERE program_id = ? AND lead_id = ?"
    ),
    "is_exhausted": (
        "UPDATE program_members SET is_exhausted = ? WHERE program_id = ? AND lead_id = ?"
    ),
    "membership_date": (
        "UPDATE program_members SET membership_date = ? WHERE program_id = ? AND lead_id = ?"
    ),
    "nurture_cadence": (
        "UPDATE program_members SET nurture_cadence = ? WHERE program_id = ? AND lead_id = ?"
    ),
    "reached_success": (
        "UPDATE program_members SET reached_success = ? WHERE program_id = ? AND lead_id = ?"
    ),
    "reached_success_date": (
        "UPDATE program_members SET reached_success_date = ? WHERE program_id = ? AND lead_id = ?"
    ),
    "registration_likelihood": (
        "UPDATE program_members SET registration_likelihood = ? "
        "WHERE program_id = ? AND lead_id = ?"
    ),
    "status_name": (
        "UPDATE program_members SET status_name = ? WHERE program_id = ? AND lead_id = ?"
    ),
    "status_reason": (
        "UPDATE program_members SET status_reason = ? WHERE program_id = ? AND lead_id = ?"
    ),
    "track_name": (
        "UPDATE program_members SET track_name = ? WHERE program_id = ? AND lead_id = ?"
    ),
    "updated_at": (
        "UPDATE program_members SET updated_at = ? WHERE program_id = ? AND lead_id = ?"
    ),
    "waitlist_priority": (
        "UPDATE program_members SET waitlist_priority = ? WHERE program_id = ? AND lead_id = ?"
    ),
}
_SET_DATA = (
    "UPDATE program_members SET data = ?, updated_at = ? WHERE program_id = ? AND lead_id = ?"
)


@dataclass(frozen=True)
class MemberFilter:
    """A REST member query's filter: `updatedAt` within bounds, or a searchable field IN values."""

    field: Mapping[str, Any] | None
    values: Sequence[Any]

    def condition(self) -> tuple[str, list[Any]]:
        """A fixed SQL fragment on `pm` and its parameters."""
        if self.field is None:  # updatedAt BETWEEN the two bounds
            return " AND pm.updated_at BETWEEN ? AND ?", list(self.values)
        listed = orjson.dumps(list(self.values)).decode()
        column = self.field["column"]
        if column is None:
            return " AND json_extract(pm.data, ?)" + _IN, [f"$.{self.field['name']}", listed]
        if column not in PM_COLUMNS:
            raise ValueError(f"unknown column {column}")
        collate = " COLLATE NOCASE" if self.field["dataType"] == "string" else ""
        return " AND pm." + column + collate + _IN, [listed]


class _RowFailedError(Exception):
    """An upsert row that fails with a reason (the others in its batch go on)."""


class MemberRepository:
    """The `program_members` table, read with the leads joined."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        fields: FieldRepository,
        programs: ProgramRepository,
        leads: LeadRepository,
    ) -> None:
        self.db = db
        self.clock = clock
        self.fields = fields
        self.programs = programs
        self.leads = leads

    # reads

    def _plan(self, fields: Sequence[str]) -> tuple[list[str], list[Step], bool, bool]:
        """Columns to select and per-field extraction steps for `fields`.

        Program member fields win over lead fields of the same name (createdAt, updatedAt), as
        in Marketo's exports. Unknown names raise MarketoHTTPError 1006.
        """
        pm = self.fields.map(PROGRAM_MEMBER)
        lead = self.fields.map(LEAD)
        columns: list[str] = ["pm.data", "l.data"]
        steps: list[tuple[str, str, Any, str]] = []
        need_pm_json = need_lead_json = False
        for name in fields:
            if name in pm:
                f = pm[name]
                if name == "program":
                    columns.append("p.name")
                    steps.append((name, "col", len(columns) - 1, "string"))
                elif f["column"] in PM_COLUMNS:
                    columns.append("pm." + f["column"])
                    steps.append((name, "col", len(columns) - 1, f["dataType"]))
                else:
                    need_pm_json = True
                    steps.append((name, "pm", name, f["dataType"]))
            elif name in lead:
                f = lead[name]
                if f["column"] in LEAD_COLUMNS:
                    columns.append("l." + f["column"])
                    steps.append((name, "col", len(columns) - 1, f["dataType"]))
                else:
                    need_lead_json = True
                    steps.append((name, "lead", name, f["dataType"]))
            else:
                raise MarketoHTTPError(1006, f"Field '{name}' not found")
        return columns, steps, need_pm_json, need_lead_json

    @staticmethod
    @staticmethod
    def _rows_to_dicts(
        cursor: Iterable[Sequence[Any]],
        steps: list[Step],
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

    def iter(
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
        ids = sorted({int(p) for p in program_ids})
        if not ids:
            return
        columns, steps, need_pm, need_lead = self._plan(fields)
        where, params = "", []
        if updated_from is not None:
            where += " AND pm.updated_at >= ?"
            params.append(iso(updated_from))
        if updated_to is not None:
            where += " AND pm.updated_at <= ?"
            params.append(iso(updated_to))
        if status_names:
            where += " AND lower(pm.status_name)" + _IN
            params.append(orjson.dumps([name.lower() for name in status_names]).decode())
        if is_exhausted is not None:
            where += " AND pm.is_exhausted = ?"
            params.append(int(is_exhausted))
        if nurture_cadence is not None:
            where += " AND pm.nurture_cadence = ?"
            params.append(nurture_cadence)
        sql = " ".join(("SELECT", ", ".join(columns), _FROM, where, "ORDER BY pm.lead_id"))
        conn = self.db.connect()
        try:
            for program_id in ids:  # one program at a time: streamed in key order, no sort
                cursor = conn.execute(sql, (program_id, *params))
                cursor.arraysize = 2000
                while chunk := cursor.fetchmany():
                    yield from self._rows_to_dicts(chunk, steps, need_pm, need_lead)
        finally:
            conn.close()

    def count(self, program_id: int, where: MemberFilter | None = None) -> int:
        """Members of a program, optionally only those matching a filter."""
        condition, params = where.condition() if where else ("", [])
        sql = _COUNT + condition
        return self.db.conn().execute(sql, (program_id, *params)).fetchone()[0]

    def query(
        self,
        program_id: int,
        fields: Sequence[str],
        *,
        where: MemberFilter | None = None,
        after_lead_id: int = 0,
        limit: int = 300,
    ) -> list[dict[str, Any]]:
        """A page of members ordered by leadId (> `after_lead_id`), for the REST query."""
        columns, steps, need_pm, need_lead = self._plan(["leadId", *fields])
        condition, params = where.condition() if where else ("", [])
        sql = " ".join(
            ("SELECT", ", ".join(columns), _FROM, "AND pm.lead_id > ?", condition,
             "ORDER BY pm.lead_id LIMIT ?")
        )  # fmt: skip
        rows = self.db.conn().execute(sql, (program_id, after_lead_id, *params, limit)).fetchall()
        return list(self._rows_to_dicts(rows, steps, need_pm, need_lead))

    # writes

    @staticmethod
    def _row(conn: sqlite3.Connection, program_id: int, lead_id: int) -> Any:
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
        current = self._row(conn, pid, lead_id)
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
        current_step = self.programs.status_step(program, current[0])
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

    def sync_status(
        self, program_id: int, status_name: str, lead_ids: Sequence[int]
    ) -> list[tuple[str, int | None, str | None, str | None]]:
        """REST sync status: per lead (status, leadId, reason code, reason message)."""
        program = self.programs.require(program_id)
        status = self.programs.require_status(program, status_name)
        now = self.clock.now_iso()
        out: list[tuple[str, int | None, str | None, str | None]] = []
        with self.db.tx() as conn:
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

    def update_data(
        self, program_id: int, rows: Sequence[Mapping[str, Any]]
    ) -> list[tuple[str, int | None, str | None, str | None]]:
        """REST sync data: per row (status, leadId, reason code, reason message)."""
        self.programs.require(program_id)
        pm = self.fields.map(PROGRAM_MEMBER)
        now = self.clock.now_iso()
        out: list[tuple[str, int | None, str | None, str | None]] = []
        with self.db.tx() as conn:
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
                current = self._row(conn, program_id, lead_id)
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

    def delete(
        self, program_id: int, lead_ids: Sequence[int]
    ) -> list[tuple[str, int | None, str | None]]:
        """Remove memberships: per lead ('deleted', leadId, None) or ('skipped', None, reason)."""
        self.programs.require(program_id)
        out: list[tuple[str, int | None, str | None]] = []
        with self.db.tx() as conn:
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

    def touch(self, program_id: int, lead_ids: Sequence[int], values: Mapping[str, Any]) -> int:
        """Set field values (any PM field, even read-only standard ones) and bump updatedAt."""
        program = self.programs.require(program_id)
        if "statusName" in values:
            values = {
                **values,
                "statusName": self.programs.require_status(program, values["statusName"])["name"],
            }
        pm = self.fields.map(PROGRAM_MEMBER)
        now = self.clock.now_iso()
        columns: dict[str, Any] = {}
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
                columns[field["column"]] = int(coerced) if isinstance(coerced, bool) else coerced
            else:
                json_values[key] = coerced
        changed = 0
        with self.db.tx() as conn:
            for lead_id in lead_ids:
                current = self._row(conn, program_id, lead_id)
                if current is None:
                    continue
                for column, value in columns.items():
                    conn.execute(_SET_COLUMN[column], (value, program_id, lead_id))
                data = orjson.loads(current[1])
                data.update(json_values)
                conn.execute(_SET_DATA, (orjson.dumps(data).decode(), now, program_id, lead_id))
                changed += 1
        return changed

    def upsert(
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
        program = self.programs.require(program_id)
        status = self.programs.require_status(program, status_name)
        pm = self.fields.map(PROGRAM_MEMBER)
        lead_fields = self.fields.map(LEAD)
        now = self.clock.now_iso()
        plan = _UpsertPlan(program, status, pm, lead_fields, now, invalid_email_ok)
        with self.db.tx() as conn:
            return [self._upsert_row(conn, plan, row) for row in rows]

    def _upsert_row(
        self, conn: sqlite3.Connection, plan: _UpsertPlan, row: Mapping[str, Any]
    ) -> Outcome:
        """One member import row: its lead found or created, its status moved, its fields set."""
        try:
            lead_values, pm_values = self._split(plan, row)
            lead_id, created_lead = self._resolve_lead(conn, plan, row, lead_values)
        except _RowFailedError as exc:
            return "failed", None, str(exc)
        program = plan.program
        result, why = self._apply_status(
            conn, program, lead_id, plan.status, plan.now, acquired=created_lead
        )
        if pm_values:
            data = orjson.loads(self._row(conn, program["id"], lead_id)[1])
            data.update(pm_values)
            conn.execute(_SET_DATA, (orjson.dumps(data).decode(), plan.now, program["id"], lead_id))
        if result == "skipped":
            return "updated", lead_id, f"Status not changed: {why}"
        return result, lead_id, None

    def _split(
        self, plan: _UpsertPlan, row: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A row's checked lead values and member values."""
        pm, lead_fields = plan.pm, plan.lead_fields
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
                raise _RowFailedError(f"Field '{key}' is not updateable")
            else:
                raise _RowFailedError(f"Field '{key}' not found")
        try:
            lead_values = self.leads.values(
                lead_fields, lead_part, invalid_email_ok=plan.invalid_email_ok
            )
            pm_values = {k: check_value(pm[k], v) for k, v in pm_part.items()}
        except ValueError as exc:
            raise _RowFailedError(str(exc)) from None
        return lead_values, pm_values

    def _resolve_lead(
        self,
        conn: sqlite3.Connection,
        plan: _UpsertPlan,
        row: Mapping[str, Any],
        lead_values: dict[str, Any],
    ) -> tuple[int, bool]:
        """The row's lead (by leadId, else by email, created when none matches); created?"""
        lead_id = row.get("leadId")
        if lead_id not in (None, ""):
            try:
                lead_id = int(lead_id)
            except (TypeError, ValueError):
                raise _RowFailedError(f"Invalid value '{lead_id}' for field 'leadId'") from None
            if not conn.execute("SELECT 1 FROM leads WHERE id = ?", (lead_id,)).fetchone():
                raise _RowFailedError("Lead not found")
            if lead_values:
                self.leads.write(conn, lead_id, lead_values, plan.now)
            return lead_id, False
        email = lead_values.get("email")
        if not email:
            raise _RowFailedError("Missing value for required field 'email'")
        matches = self.leads.find(conn, plan.lead_fields["email"], email)
        if len(matches) > 1:
            raise _RowFailedError("Multiple lead match lookup criteria")
        if matches and set(lead_values) == {"email"}:
            return matches[0], False  # nothing to change on the lead: its updatedAt stays
        return self.leads.write(conn, matches[0] if matches else None, lead_values, plan.now), (
            not matches
        )

    # dumps

    def dump(self, program_id: int | None = None) -> list[dict[str, Any]]:
        """Every membership with every program member field (admin dump)."""
        return list(self.iter_dump(program_id))

    def iter_dump(self, program_id: int | None = None) -> Iterator[dict[str, Any]]:
        """`dump` one row at a time (a million rows need not fit in memory)."""
        names = [f["name"] for f in self.fields.records(PROGRAM_MEMBER)]
        ids = [program_id] if program_id else [p["id"] for p in self.programs.all()]
        return self.iter(ids, names)

    def counts(self) -> list[dict[str, Any]]:
        """Members by program and status (admin dump `member_counts`)."""
        rows = self.db.conn().execute(
            "SELECT pm.program_id, p.name, pm.status_name, COUNT(*) FROM program_members pm "
            "JOIN programs p ON p.id = pm.program_id "
            "GROUP BY pm.program_id, p.name, pm.status_name ORDER BY pm.program_id, pm.status_name"
        )
        keys = ("programId", "program", "statusName", "members")
        return [dict(zip(keys, r, strict=True)) for r in rows]


@dataclass(frozen=True)
class _UpsertPlan:
    """What every row of one member upsert shares."""

    program: Mapping[str, Any]
    status: Mapping[str, Any]
    pm: Mapping[str, Mapping[str, Any]]
    lead_fields: Mapping[str, Mapping[str, Any]]
    now: str
    invalid_email_ok: bool
