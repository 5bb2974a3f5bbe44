"""Field metadata of program members and leads: the describe, schema and dump APIs read it."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from marketo_sandbox.repos.values import STRING_TYPES

if TYPE_CHECKING:
    from collections.abc import Mapping

    from marketo_sandbox.clock import Clock
    from marketo_sandbox.repos.database import Database

PROGRAM_MEMBER = "programMember"
LEAD = "lead"
MAX_CUSTOM_PM_FIELDS = 20

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

#: Describe attributes an admin may change, each with its fixed statement (no SQL from input).
_UPDATE_FIELD = {
    "displayName": "UPDATE fields SET display_name = ? WHERE object = ? AND name = ?",
    "description": "UPDATE fields SET description = ? WHERE object = ? AND name = ?",
    "isHidden": "UPDATE fields SET is_hidden = ? WHERE object = ? AND name = ?",
    "isHtmlEncodingInEmail": "UPDATE fields SET is_html_encoding = ? WHERE object = ? AND name = ?",
    "isSensitive": "UPDATE fields SET is_sensitive = ? WHERE object = ? AND name = ?",
}


class FieldRepository:
    """The `fields` table, cached per object (read on every request, changed rarely)."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self._cache: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def ensure_standard(self) -> None:
        """Insert the standard fields of a fresh subscription (none yet)."""
        if self.db.conn().execute("SELECT COUNT(*) FROM fields").fetchone()[0] == 0:
            self._insert_standard()

    def _insert_standard(self) -> None:
        now = self.clock.now_iso()
        rows = []
        for obj, defs in ((PROGRAM_MEMBER, STANDARD_PM_FIELDS), (LEAD, STANDARD_LEAD_FIELDS)):
            for pos, (name, display, dtype, length, upd, column, searchable) in enumerate(defs):
                html = 1 if dtype in STRING_TYPES else 0
                rows.append(
                    (obj, name, display, dtype, length, int(upd), 0, 0, 0, html, 0, 0,
                     int(searchable), None, column, pos, now, now)
                )  # fmt: skip
        with self.db.tx() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO fields VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows
            )
        self.invalidate()

    def invalidate(self) -> None:
        """Forget the cached fields (a field was created or changed, or the db was reset)."""
        with self._lock:
            self._cache.clear()

    def records(self, obj: str) -> list[dict[str, Any]]:
        """Full field metadata of `obj` ('programMember' or 'lead'), in schema order.

        Keys: name, displayName, dataType, length (None when not applicable), updateable,
        crmManaged, isCustom, isHidden, isHtmlEncodingInEmail, isSensitive, isApiCreated,
        searchable, description, column (None when the value lives in the row's JSON).
        """
        with self._lock:
            cached = self._cache.get(obj)
        if cached is not None:
            return cached
        cur = self.db.conn().execute(
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
        with self._lock:
            self._cache[obj] = records
        return records

    def map(self, obj: str) -> dict[str, dict[str, Any]]:
        """`records` keyed by API name."""
        return {f["name"]: f for f in self.records(obj)}

    @staticmethod
    def describe_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Field records as describe dicts (see `describe`)."""
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

    def describe(self, obj: str) -> list[dict[str, Any]]:
        """Fields of `obj` as describe dicts.

        Keys: name, displayName, dataType, length (only where Marketo gives one), updateable,
        crmManaged, isCustom.
        """
        return self.describe_records(self.records(obj))

    def create(self, obj: str, spec: Mapping[str, Any], *, api_created: bool = True) -> None:
        """Insert a custom field (validated by the caller); visible to every reader at once."""
        now = self.clock.now_iso()
        dtype = spec["dataType"]
        length = spec.get("length")
        if length is None and dtype in ("string", "email", "phone", "url", "reference"):
            length = 2000 if dtype == "url" else 255
        with self.db.tx() as conn:
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
                    int(bool(spec.get("isHtmlEncodingInEmail", dtype in STRING_TYPES))),
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
        self.invalidate()

    def update(self, obj: str, name: str, changes: Mapping[str, Any]) -> None:
        """Update display attributes of a field (validated by the caller), one at a time."""
        now = self.clock.now_iso()
        with self.db.tx() as conn:
            for key, value in changes.items():
                conn.execute(
                    _UPDATE_FIELD[key],
                    (int(value) if isinstance(value, bool) else value, obj, name),
                )
            conn.execute(
                "UPDATE fields SET updated_at = ? WHERE object = ? AND name = ?", (now, obj, name)
            )
        self.invalidate()

    def dump(self) -> list[dict[str, Any]]:
        """Field metadata of both objects (admin dump)."""
        return [
            {"object": obj, **{k: v for k, v in f.items() if k != "column"}}
            for obj in (PROGRAM_MEMBER, LEAD)
            for f in self.records(obj)
        ]
