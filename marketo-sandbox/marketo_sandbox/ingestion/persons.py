"""Data Ingestion Persons: `POST /subscriptions/{munchkinId}/persons` (insert or update leads).

`dedupeFields` (field1, field2; ANDed) default to email. Allowed: id, email, the sfdc* ids, and
string/integer lead fields (the seed's example dedupes on email + firstName). `partitionName`
(default "Default") must name a lead partition of option `lead_partitions` (assumed: the page
gives no code for an unknown one; 4000801). A person that cannot be applied (several leads match
its dedupe fields) fails after the 202, recorded with the request id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from marketo_sandbox.ingestion.common import (
    bad_request,
    check_keys,
    check_priority,
    invalid_data,
    object_list,
)
from marketo_sandbox.state import state_of
from marketo_sandbox.storage import LEAD, check_value

if TYPE_CHECKING:
    from starlette.requests import Request

NAMED_DEDUPE = ("id", "email", "sfdcAccountId", "sfdcContactId", "sfdcLeadId", "sfdcLeadOwnerId")
DEDUPE_TYPES = ("string", "integer", "email")
READ_ONLY = frozenset({"createdAt", "updatedAt"})
DEFAULT_PARTITION = "Default"


_FIND_LEADS = "SELECT id FROM leads WHERE "
#: Dedupe conditions on the leads' own columns (other fields live in `data`).
_COLUMN_EQUALS = {
    "id": "id = ?",
    "email": "email = ?",
    "created_at": "created_at = ?",
    "updated_at": "updated_at = ?",
}


def validate(request: Request, body: dict) -> tuple[str, dict, int]:
    """Check the request; invalid persons → 4000802 naming the first."""
    store = state_of(request).store
    check_keys(body, ("priority", "partitionName", "dedupeFields", "persons"))
    check_priority(body)
    partition = body.get("partitionName")
    if partition is not None and (not isinstance(partition, str) or not partition.strip()):
        raise bad_request("partitionName must be a non-empty string")
    if partition is not None and partition not in lead_partitions(request):
        raise bad_request(f"partitionName '{partition}' is not a lead partition")
    fields = store.fields.map(LEAD)
    dedupe = _dedupe_fields(body.get("dedupeFields"), fields)
    persons = object_list(body.get("persons"), "persons")
    clean: list[dict] = []
    for index, person in enumerate(persons):
        if not isinstance(person, dict) or not person:
            raise invalid_data(index, "a person must be a non-empty object")
        row: dict[str, Any] = {}
        for name, value in person.items():
            field = fields.get(name)
            if field is None:
                raise invalid_data(index, f"unknown field '{name}'")
            if name in READ_ONLY:
                raise invalid_data(index, f"field '{name}' is not updateable")
            try:
                row[name] = check_value(field, value)
            except ValueError as exc:
                raise invalid_data(index, str(exc)) from None
        missing = [f for f in dedupe if row.get(f) in (None, "")]
        if missing:
            raise invalid_data(index, f"missing dedupe field '{missing[0]}'")
        clean.append(row)
    return "persons", {"dedupe": dedupe, "persons": clean}, len(clean)


def lead_partitions(request: Request) -> list[str]:
    """The subscription's lead partitions: option `lead_partitions`, by default only Default."""
    return list(state_of(request).options.get("lead_partitions") or [DEFAULT_PARTITION])


def _dedupe_fields(value: Any, fields: dict[str, dict]) -> list[str]:
    if value is None:
        return ["email"]
    if not isinstance(value, dict) or not value or set(value) - {"field1", "field2"}:
        raise bad_request("dedupeFields must be an object with field1 and optionally field2")
    if "field1" not in value:
        raise bad_request("dedupeFields.field1 is required")
    names = [value["field1"]] + ([value["field2"]] if "field2" in value else [])
    for name in names:
        field = fields.get(name) if isinstance(name, str) else None
        if field is None or (name not in NAMED_DEDUPE and field["dataType"] not in DEDUPE_TYPES):
            raise bad_request(f"Invalid dedupe field '{name}'")
    if len(set(names)) != len(names):
        raise bad_request("dedupeFields repeat a field")
    return names


def _match(conn: Any, fields: dict[str, dict], row: dict, dedupe: list[str]) -> list[int]:
    """Leads whose dedupe fields all equal the person's (AND)."""
    where, params = [], []
    for name in dedupe:
        column = fields[name]["column"]
        if column:
            where.append(_COLUMN_EQUALS[column])
        else:
            where.append("json_extract(data, ?) = ?")
            params.append(f"$.{name}")
        params.append(row[name])
    sql = _FIND_LEADS + " AND ".join(where) + " LIMIT 2"
    return [r[0] for r in conn.execute(sql, params)]


def apply(store: Any, plan: dict) -> list[tuple[int, str]]:
    """Insert or update each person; returns (index, reason) of those that failed."""
    dedupe: list[str] = plan["dedupe"]
    problems: list[tuple[int, str]] = []
    if len(dedupe) == 1:
        results = store.leads.upsert(plan["persons"], dedupe[0])
        return [(i, r[2] or "Failed") for i, r in enumerate(results) if r[0] == "failed"]
    fields = store.fields.map(LEAD)
    for index, row in enumerate(plan["persons"]):
        matches = _match(store.db.conn(), fields, row, dedupe)
        if len(matches) > 1:
            problems.append((index, "Several leads match the dedupe fields"))
            continue
        if matches:
            result = store.leads.upsert([{**row, "id": matches[0]}], "id")[0]
        else:
            result = store.leads.upsert([row], dedupe[0])[0]
        if result[0] == "failed":
            problems.append((index, result[2] or "Failed"))
    return problems
