"""Data Ingestion Companies: `POST /subscriptions/{munchkinId}/companies`.

`action` createOnly | updateOnly | createOrUpdate (default; case-sensitive). `dedupeBy`
dedupeFields (default) | idField, case-insensitive; idField only with updateOnly. With
dedupeFields each company needs `externalCompanyId` and must not carry `id`; with idField the
reverse. Field names are case-insensitive (stored as the describe spells them). The body takes
only the attributes the page's table lists (no `priority`). Companies go in the sandbox's
`companies` table (admin dump `companies`, REST `GET /rest/v1/companies.json`). A company that
cannot be applied (updateOnly of a missing one, createOnly of an existing one; assumed
examples) fails after the 202 and is recorded with the request id (`apply.record_failures`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from marketo_sandbox.ingestion.common import (
    bad_request,
    check_keys,
    coerce_record,
    dedupe_by,
    dumps,
    invalid_data,
    merge_data,
    object_list,
    one_of,
)
from marketo_sandbox.ingestion.tables import dump_rows
from marketo_sandbox.jobs import fetch_all

if TYPE_CHECKING:
    from starlette.requests import Request

ACTIONS = ("createOnly", "updateOnly", "createOrUpdate")
#: The company fields the sandbox models (Marketo's standard company fields) and their types.
FIELDS: dict[str, str] = {
    "externalCompanyId": "string",
    "id": "integer",
    "company": "string",
    "industry": "string",
    "numberOfEmployees": "integer",
    "annualRevenue": "currency",
    "website": "url",
    "mainPhone": "phone",
    "billingStreet": "string",
    "billingCity": "string",
    "billingState": "string",
    "billingCountry": "string",
    "billingPostalCode": "string",
    "sicCode": "string",
    "externalSalesPersonId": "string",
}


#: Get Companies by a column of its own, or by a field in `data` (fixed statements).
_QUERY = {
    "id": (
        "SELECT * FROM companies WHERE id IN (SELECT value FROM json_each(?)) "
        "AND id > ? ORDER BY id LIMIT ?"
    ),
    "externalCompanyId": (
        "SELECT * FROM companies WHERE external_company_id IN (SELECT value FROM json_each(?)) "
        "AND id > ? ORDER BY id LIMIT ?"
    ),
}
_QUERY_DATA = (
    "SELECT * FROM companies WHERE json_extract(data, ?) IN (SELECT value FROM json_each(?)) "
    "AND id > ? ORDER BY id LIMIT ?"
)


def validate(_request: Request, body: dict) -> tuple[str, dict, int]:
    """Check action/dedupeBy and each company; the first bad one → 4000802."""
    check_keys(body, ("action", "dedupeBy", "input", "companies"))
    action = body.get("action", "createOrUpdate")
    if action not in ACTIONS:
        raise bad_request(f"Invalid action '{action}': one of {', '.join(ACTIONS)}")
    by = dedupe_by(body, ("dedupeFields", "idField"))
    by_id = by == "idField"
    if by_id and action != "updateOnly":
        raise bad_request(f"dedupeBy idField is only allowed with action updateOnly, not {action}")
    items = object_list(one_of(body, ("input", "companies"), "input"), "companies")
    clean = [_company(index, item, by_id, by) for index, item in enumerate(items)]
    plan = {"action": action, "byId": by_id, "companies": clean}
    return "companies", plan, len(clean)


def _company(index: int, item: Any, by_id: bool, by: str) -> dict:
    row = coerce_record(index, item, FIELDS, "a company", any_case=True)
    key, banned = ("id", "externalCompanyId") if by_id else ("externalCompanyId", "id")
    if row.get(key) in (None, ""):
        raise invalid_data(index, f"missing '{key}' (required with dedupeBy {by})")
    if banned in row:
        raise invalid_data(index, f"'{banned}' is not allowed with dedupeBy {by}")
    return row


def apply(store: Any, plan: dict) -> list[tuple[int, str]]:
    """Create/update companies per the action; returns (index, reason) of those that failed."""
    now = store.clock.now_iso()
    action, by_id = plan["action"], plan["byId"]
    problems = []
    with store.db.tx() as conn:
        for index, row in enumerate(plan["companies"]):
            if by_id:
                found = conn.execute(
                    "SELECT id, data FROM companies WHERE id = ?", (row["id"],)
                ).fetchone()
            else:
                found = conn.execute(
                    "SELECT id, data FROM companies WHERE external_company_id = ?",
                    (row["externalCompanyId"],),
                ).fetchone()
            values = {k: v for k, v in row.items() if k not in ("id", "externalCompanyId")}
            if found is None:
                if action == "updateOnly":
                    key = row.get("id") or row.get("externalCompanyId")
                    problems.append((index, f"Company not found: {key}"))
                    continue
                conn.execute(
                    "INSERT INTO companies (external_company_id, data, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?)",
                    (row["externalCompanyId"], dumps(values), now, now),
                )
                continue
            if action == "createOnly":
                problems.append((index, f"Company already exists: {row['externalCompanyId']}"))
                continue
            merge_data(conn, "companies", found, values, now=now)
    return problems


def dump(store: Any) -> list[dict]:
    """Admin dump `companies`."""
    return dump_rows(
        store,
        "SELECT * FROM companies ORDER BY id",
        lambda r: {"id": r["id"], "externalCompanyId": r["external_company_id"]},
    )


def query(store: Any, field: str, values: list, after: int, limit: int) -> list[dict]:
    """Companies whose `field` is one of `values`, by id after `after` (REST Get Companies)."""
    listed = orjson.dumps(list(values)).decode()
    if field in _QUERY:
        sql, params = _QUERY[field], (listed, after, limit)
    else:  # field: a known FIELDS name
        sql, params = _QUERY_DATA, (f"$.{field}", listed, after, limit)
    with store.db.tx() as conn:
        rows = fetch_all(conn, sql, params)
    return [
        {
            "id": r["id"],
            "externalCompanyId": r["external_company_id"],
            **orjson.loads(r["data"]),
            "createdAt": r["created_at"],
            "updatedAt": r["updated_at"],
        }
        for r in rows
    ]
