"""Data Ingestion Companies: `POST /subscriptions/{munchkinId}/companies`.

`action` createOnly | updateOnly | createOrUpdate (default; case-sensitive). `dedupeBy`
dedupeFields (default) | idField, case-insensitive; idField only with updateOnly. With
dedupeFields each company needs `externalCompanyId` and must not carry `id`; with idField the
reverse. Companies go in the sandbox's `companies` table (admin dump `companies`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from marketo_sandbox.ingestion.apply import dump_rows
from marketo_sandbox.ingestion.common import (
    bad_request,
    check_keys,
    check_priority,
    coerce_record,
    dedupe_by_id,
    dumps,
    invalid_data,
    merge_data,
    object_list,
    one_of,
)

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


def validate(_request: Request, body: dict) -> tuple[str, dict, int]:
    """Check action/dedupeBy and each company; the first bad one → 4000802."""
    check_keys(body, ("action", "dedupeBy", "input", "companies", "priority"))
    check_priority(body)
    action = body.get("action", "createOrUpdate")
    if action not in ACTIONS:
        raise bad_request(f"Invalid action '{action}': one of {', '.join(ACTIONS)}")
    dedupe_by, by_id = dedupe_by_id(body)
    if by_id and action != "updateOnly":
        raise bad_request(f"dedupeBy idField is only allowed with action updateOnly, not {action}")
    items = object_list(one_of(body, ("input", "companies"), "input"), "companies")
    clean = [_company(index, item, by_id, dedupe_by) for index, item in enumerate(items)]
    plan = {"action": action, "byId": by_id, "companies": clean}
    return "companies", plan, len(clean)


def _company(index: int, item: Any, by_id: bool, dedupe_by: str) -> dict:
    if not isinstance(item, dict) or not item:
        raise invalid_data(index, "a company must be a non-empty object")
    key, banned = ("id", "externalCompanyId") if by_id else ("externalCompanyId", "id")
    if item.get(key) in (None, ""):
        raise invalid_data(index, f"missing '{key}' (required with dedupeBy {dedupe_by})")
    if banned in item:
        raise invalid_data(index, f"'{banned}' is not allowed with dedupeBy {dedupe_by}")
    return coerce_record(index, item, FIELDS, "a company")


def apply(store: Any, plan: dict) -> list[str]:
    """Create/update companies per the action; returns records skipped and why."""
    now = store.clock.now_iso()
    action, by_id = plan["action"], plan["byId"]
    problems = []
    with store.tx() as conn:
        for row in plan["companies"]:
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
                    problems.append(
                        f"company not found: {row.get('id') or row.get('externalCompanyId')}"
                    )
                    continue
                conn.execute(
                    "INSERT INTO companies (external_company_id, data, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?)",
                    (row["externalCompanyId"], dumps(values), now, now),
                )
                continue
            if action == "createOnly":
                problems.append(f"company exists: {row['externalCompanyId']}")
                continue
            merge_data(conn, "companies", "id", found, values, now=now)
    return problems


def dump(store: Any) -> list[dict]:
    """Admin dump `companies`."""
    return dump_rows(
        store,
        "SELECT * FROM companies ORDER BY id",
        lambda r: {"id": r["id"], "externalCompanyId": r["external_company_id"]},
    )
