"""Leads: describe, describe2 and Get Leads by Filter Type (`/rest/v1/leads.json`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.routing import Route

from marketo_sandbox.envelope import MarketoHTTPError, ok
from marketo_sandbox.rest.params import (
    MAX_BATCH,
    db,
    decode_token,
    describe_fields,
    encode_token,
    filter_values,
    input_list,
    int_param,
    json_body,
    list_param,
    method_override,
    page_extra,
    query_params,
    user,
)
from marketo_sandbox.state import state_of
from marketo_sandbox.storage import LEAD, Store

DEFAULT_FIELDS = ("id", "email", "updatedAt", "createdAt", "firstName", "lastName")

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response


async def describe(request: Request) -> Response:
    """Describe Lead (v1 shape: id, displayName, dataType, length, rest/soap names)."""
    user(request)
    store: Store = state_of(request).store
    records = await db(store.fields.records, LEAD)
    result = []
    for number, field in enumerate(records, start=1):
        item = {"id": number, "displayName": field["displayName"], "dataType": field["dataType"]}
        if field["length"] is not None:
            item["length"] = field["length"]
        read_only = not field["updateable"]
        item["rest"] = {"name": field["name"], "readOnly": read_only}
        item["soap"] = {
            "name": field["name"][:1].upper() + field["name"][1:],
            "readOnly": read_only,
        }
        result.append(item)
    return ok(result)


async def describe2(request: Request) -> Response:
    """Describe Lead2 (name, searchableFields, fields with updateable/crmManaged)."""
    user(request)
    store: Store = state_of(request).store
    records = await db(store.fields.records, LEAD)
    fields = describe_fields(records)
    searchable = [[f["name"]] for f in records if f["searchable"]]
    return ok(
        [
            {
                "name": "API Lead",
                "description": "Map for API Lead fields",
                "dedupeFields": ["email"],
                "searchableFields": searchable,
                "fields": fields,
            }
        ]
    )


def _query(store: Store, params: dict[str, str]) -> tuple[list[dict[str, Any]], str | None]:
    filter_type = params.get("filterType")
    if not filter_type:
        raise MarketoHTTPError(1002, "Missing value for required parameter 'filterType'")
    raw = params.get("filterValues")
    if not raw:
        raise MarketoHTTPError(1002, "Missing value for required parameter 'filterValues'")
    fields = store.fields.map(LEAD)
    field = fields.get(filter_type)
    if field is None or not field["searchable"]:
        raise MarketoHTTPError(1003, f"Invalid filterType '{filter_type}'")
    typed = filter_values(field, raw)
    size = int_param(params, "batchSize", MAX_BATCH, 1, MAX_BATCH)
    after = int(decode_token(params.get("nextPageToken"), "leads") or 0)
    wanted = list_param(params, "fields") or [f for f in DEFAULT_FIELDS if f in fields]
    if "id" not in wanted:
        wanted = ["id", *wanted]
    rows = store.leads.query(filter_type, typed, wanted, after_id=after, limit=size + 1)
    more = len(rows) > size
    rows = rows[:size]
    return rows, encode_token("leads", rows[-1]["id"]) if more else None


ACTIONS = ("createOnly", "updateOnly", "createOrUpdate")
#: Record-level codes of sync leads, by the store's reason.
_REASON_CODES = (
    ("Lead already exists", "1005"),
    ("Lead not found", "1004"),
    ("Multiple lead match", "1007"),
    ("Field '", "1006"),
)


def _code(why: str) -> str:
    for start, code in _REASON_CODES:
        if why.startswith(start) and (code != "1006" or why.endswith("not found")):
            return code
    return "1003"


async def sync(request: Request) -> Response:
    """`POST /rest/v1/leads.json` {action?, lookupField?, input: [...]} (≤ 300 leads)."""
    body = await json_body(request)
    items = input_list(body)
    action = body.get("action", "createOrUpdate")
    if action not in ACTIONS:
        raise MarketoHTTPError(1003, f"Invalid action '{action}': one of {', '.join(ACTIONS)}")
    lookup = body.get("lookupField", "email")
    if not isinstance(lookup, str):
        raise MarketoHTTPError(1001, "Invalid value for 'lookupField'. Required of type 'String'")
    fields = state_of(request).store.fields.map(LEAD)
    if lookup not in fields or not fields[lookup]["searchable"]:
        raise MarketoHTTPError(1003, f"Invalid lookupField '{lookup}'")
    rows = [item for item in items if isinstance(item, dict)]
    done = iter(await db(state_of(request).store.leads.upsert, rows, lookup, action=action))
    results = [
        next(done) if isinstance(item, dict) else ("failed", None, "A lead object was expected")
        for item in items
    ]
    out: list[dict[str, Any]] = []
    for seq, (status, lead_id, why) in enumerate(results):
        if status == "failed":
            reason_item = {"code": _code(why or ""), "message": why or "Invalid data"}
            out.append({"seq": seq, "status": "skipped", "reasons": [reason_item]})
        else:
            out.append({"seq": seq, "id": lead_id, "status": status})
    return ok(out)


async def query(request: Request) -> Response:
    """`GET /rest/v1/leads.json`: filterType, filterValues, fields, batchSize, nextPageToken.

    `POST` with `_method=GET` carries long value lists in a form body.
    """
    user(request)
    if request.method == "POST" and not await method_override(request):
        return await sync(request)
    params = await query_params(request)
    rows, token = await db(_query, state_of(request).store, params)
    return ok(rows, **page_extra(token))


ROUTES = [
    Route("/rest/v1/leads.json", query, methods=["GET", "POST"]),
    Route("/rest/v1/leads/describe.json", describe, methods=["GET"]),
    Route("/rest/v1/leads/describe2.json", describe2, methods=["GET"]),
]
