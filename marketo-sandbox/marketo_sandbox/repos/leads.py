"""Leads: REST reads by filter, createOrUpdate on a lookup field, the admin dump."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from marketo_sandbox.envelope import MarketoHTTPError
from marketo_sandbox.repos.fields import LEAD
from marketo_sandbox.repos.values import check_value

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Mapping, Sequence

    from marketo_sandbox.clock import Clock
    from marketo_sandbox.repos.database import Database
    from marketo_sandbox.repos.fields import FieldRepository

_SELECT = "SELECT id, email, created_at, updated_at, data FROM leads WHERE id > ? AND "
_PAGE = " ORDER BY id LIMIT ?"
_IN = " IN (SELECT value FROM json_each(?))"
#: Get Leads by Filter Type, per column of the filter field (None: a value in `data`).
_QUERY = {
    "id": _SELECT + "id" + _IN + _PAGE,
    "email": _SELECT + "email" + _IN + _PAGE,
    "created_at": _SELECT + "created_at" + _IN + _PAGE,
    "updated_at": _SELECT + "updated_at" + _IN + _PAGE,
    None: _SELECT + "json_extract(data, ?)" + _IN + _PAGE,
}
#: Leads matching a lookup value, per column of the lookup field (None: a value in `data`).
_FIND = {
    "id": "SELECT id FROM leads WHERE id = ?",
    "email": "SELECT id FROM leads WHERE email = ? LIMIT 2",
    "created_at": "SELECT id FROM leads WHERE created_at = ? LIMIT 2",
    "updated_at": "SELECT id FROM leads WHERE updated_at = ? LIMIT 2",
    None: "SELECT id FROM leads WHERE json_extract(data, ?) = ? LIMIT 2",
}


class LeadRepository:
    """The `leads` table: standard columns plus every other field in the JSON `data`."""

    def __init__(self, db: Database, clock: Clock, fields: FieldRepository) -> None:
        self.db = db
        self.clock = clock
        self.fields = fields

    def query(
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
        lead = self.fields.map(LEAD)
        for name in (filter_field, *fields):
            if name not in lead:
                raise MarketoHTTPError(1006, f"Field '{name}' not found")
        column = lead[filter_field]["column"]
        listed = orjson.dumps(list(values)).decode()
        path = () if column else (f"$.{filter_field}",)
        params = (after_id, *path, listed, limit)
        rows = self.db.conn().execute(_QUERY[column], params)
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

    @staticmethod
    def find(conn: sqlite3.Connection, field: Mapping[str, Any], value: Any) -> list[int]:
        """Ids of the leads (at most two) whose `field` holds `value`."""
        column = field["column"]
        params = (value,) if column else (f"$.{field['name']}", value)
        return [r[0] for r in conn.execute(_FIND[column], params)]

    @staticmethod
    def write(
        conn: sqlite3.Connection, lead_id: int | None, values: Mapping[str, Any], now: str
    ) -> int:
        """Create a lead (`lead_id` None) or merge `values` into it; its id."""
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

    @staticmethod
    def values(
        lead_fields: Mapping[str, Mapping[str, Any]],
        row: Mapping[str, Any],
        *,
        invalid_email_ok: bool = False,
    ) -> dict[str, Any]:
        """Checked values of a row's lead fields; ValueError naming the first wrong one."""
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

    def upsert(
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
        lead_fields = self.fields.map(LEAD)
        lookup = lead_fields.get(lookup_field)
        if lookup is None:
            raise MarketoHTTPError(1003, f"Invalid lookupField '{lookup_field}'")
        now = self.clock.now_iso()
        out: list[tuple[str, int | None, str | None]] = []
        with self.db.tx() as conn:
            for row in rows:
                try:
                    values = self.values(lead_fields, row)
                except ValueError as exc:
                    out.append(("failed", None, str(exc)))
                    continue
                key = values.get(lookup_field)
                if key is None:
                    out.append(("failed", None, f"Missing value for lookup field '{lookup_field}'"))
                    continue
                matches = self.find(conn, lookup, key)
                if len(matches) > 1:
                    out.append(("failed", None, "Multiple lead match lookup criteria"))
                    continue
                if not matches and (lookup_field == "id" or action == "updateOnly"):
                    out.append(("failed", None, "Lead not found"))
                    continue
                if matches and action == "createOnly":
                    out.append(("failed", None, "Lead already exists"))
                    continue
                lead_id = self.write(conn, matches[0] if matches else None, values, now)
                out.append(("updated" if matches else "created", lead_id, None))
        return out

    def dump(self) -> list[dict[str, Any]]:
        """Every lead with every field (admin dump)."""
        names = [f["name"] for f in self.fields.records(LEAD)]
        rows = self.db.conn().execute(
            "SELECT id, email, created_at, updated_at, data FROM leads ORDER BY id"
        )
        out = []
        for r in rows:
            data = orjson.loads(r[4])
            item = {n: data.get(n) for n in names}
            item.update(id=r[0], email=r[1], createdAt=r[2], updatedAt=r[3])
            out.append(item)
        return out
