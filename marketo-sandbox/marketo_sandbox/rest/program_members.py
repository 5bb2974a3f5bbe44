"""Program members REST API: describe, query, sync status, sync data, delete.

`/rest/v1/programs/members/describe.json` and `/rest/v1/programs/{programId}/members...`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from starlette.routing import Route

from marketo_sandbox.clock import Clock, parse_datetime, parse_filter_datetime
from marketo_sandbox.envelope import MarketoHTTPError, ok, reason
from marketo_sandbox.repos.members import MemberFilter
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
from marketo_sandbox.storage import PROGRAM_MEMBER, Store

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

DEFAULT_FIELDS = ("acquiredBy", "leadId", "membershipDate", "programId", "reachedSuccess")
MAX_RANGE = timedelta(days=7)


def searchable(records: list[dict[str, Any]]) -> list[str]:
    """Fields valid as filterType (updatedAt is accepted too, with startAt/endAt).

    leadId, statusName, reachedSuccess and custom string/integer fields.
    """
    return [f["name"] for f in records if f["searchable"]]


async def describe(request: Request) -> Response:
    """`GET /rest/v1/programs/members/describe.json`."""
    user(request)
    store: Store = state_of(request).store
    records = await db(store.fields.records, PROGRAM_MEMBER)
    fields = describe_fields(records)
    first = min(f["createdAt"] for f in records)
    last = max(f["updatedAt"] for f in records)
    return ok(
        [
            {
                "name": "API Program Membership",
                "description": "Map for API program membership fields",
                "createdAt": first,
                "updatedAt": last,
                "dedupeFields": ["leadId", "programId"],
                "searchableFields": [[n] for n in sorted(searchable(records))],
                "fields": fields,
            }
        ]
    )


def _format_count(n: int) -> str:
    return f"{n:,}"


def _bound(value: str) -> datetime:
    """A startAt/endAt bound: 1001 if not a datetime, 1003 with milliseconds or no time.

    The page asks for "ISO-8601 format without milliseconds"; 1003 is our nearest documented code.
    """
    try:
        moment = parse_datetime(value)
    except ValueError:
        raise MarketoHTTPError(
            1001, "Invalid value for startAt/endAt. Required of type 'Datetime'"
        ) from None
    try:
        parse_filter_datetime(value)
    except ValueError:
        raise MarketoHTTPError(
            1003, f"Invalid startAt/endAt {value!r}: ISO-8601 without milliseconds expected"
        ) from None
    return moment


def _filter(store: Store, params: dict[str, str]) -> tuple[MemberFilter, bool]:
    """The filter of filterType/filterValues (or updatedAt with startAt/endAt); by leadId?"""
    filter_type = params.get("filterType")
    if not filter_type:
        raise MarketoHTTPError(1002, "Missing value for required parameter 'filterType'")
    records = store.fields.map(PROGRAM_MEMBER)
    if filter_type == "updatedAt":
        start, end = params.get("startAt"), params.get("endAt")
        if not start or not end:
            raise MarketoHTTPError(1002, "updatedAt filter needs both 'startAt' and 'endAt'")
        start_at, end_at = _bound(start), _bound(end)
        if end_at < start_at:
            raise MarketoHTTPError(1003, "endAt must not be before startAt")
        if end_at - start_at > MAX_RANGE:
            raise MarketoHTTPError(1003, "Date range for updatedAt exceeds the limit of 7 days")
        return MemberFilter(None, [Clock.iso(start_at), Clock.iso(end_at)]), False
    field = records.get(filter_type)
    if field is None or not field["searchable"]:
        raise MarketoHTTPError(1003, f"Invalid filterType '{filter_type}'")
    raw = params.get("filterValues")
    if raw is None or raw == "":
        raise MarketoHTTPError(1002, "Missing value for required parameter 'filterValues'")
    typed = filter_values(field, raw)
    typed = [int(v) if isinstance(v, bool) else v for v in typed]
    return MemberFilter(field, typed), filter_type == "leadId"


def _check_limit(store: Store, program_id: int, where: MemberFilter, options: Any) -> None:
    """Marketo's 100,000-member limit for filters other than leadId (error 1003)."""
    limit = int(options.get("rest_member_filter_limit", 100_000))
    if options.get("rest_member_limit_mode", "total") == "matching":
        matching = store.members.count(program_id, where)
        if matching > limit:
            raise MarketoHTTPError(
                1003,
                f"Matching membership size: {_format_count(matching)} exceeds the limit allowed "
                f"({_format_count(limit)}) for this api",
            )
        return
    total = store.members.count(program_id)
    if total > limit:
        raise MarketoHTTPError(
            1003,
            f"Total membership size: {_format_count(total)} exceeds the limit allowed "
            f"{_format_count(limit)} for the filter",
        )


def _query(
    store: Store, program_id: int, params: dict[str, str], options: Any
) -> tuple[list[dict[str, Any]], str | None]:
    if store.programs.get(program_id) is None:
        raise MarketoHTTPError(1013, f"Program '{program_id}' not found")
    where, by_lead = _filter(store, params)
    size = int_param(params, "batchSize", MAX_BATCH, 1, MAX_BATCH)
    after = int(decode_token(params.get("nextPageToken"), f"pm{program_id}") or 0)
    fields = list_param(params, "fields") or list(DEFAULT_FIELDS)
    known = store.fields.map(PROGRAM_MEMBER)
    for name in fields:
        if name not in known:
            raise MarketoHTTPError(1006, f"Field '{name}' not found")
    if not by_lead:
        _check_limit(store, program_id, where, options)
    wanted = [f for f in fields if f != "leadId"]
    rows = store.members.query(program_id, wanted, where=where, after_lead_id=after, limit=size + 1)
    more = len(rows) > size
    rows = rows[:size]
    token = encode_token(f"pm{program_id}", rows[-1]["leadId"]) if more else None
    return rows, token


async def members(request: Request) -> Response:
    """`GET .../members.json` (query); `POST .../members.json` (sync data).

    A POST with `_method=GET` (query string or form body) is a query.
    """
    user(request)
    program_id = request.path_params["program_id"]
    store: Store = state_of(request).store
    if request.method == "POST" and not await method_override(request):
        return await sync_data(request, store, program_id)
    params = await query_params(request)
    rows, token = await db(_query, store, program_id, params, state_of(request).options)
    result = [{"seq": i, **row} for i, row in enumerate(rows)]
    return ok(result, **page_extra(token))


def _lead_ids(items: list[Any]) -> tuple[list[int], list[int]]:
    """The valid leadIds of `input` and their positions (the others are answered as invalid)."""
    ids: list[int] = []
    positions: list[int] = []
    for seq, item in enumerate(items):
        lead_id = item.get("leadId") if isinstance(item, dict) else None
        if isinstance(lead_id, int) and not isinstance(lead_id, bool) and lead_id > 0:
            ids.append(lead_id)
            positions.append(seq)
    return ids, positions


def _results(raw: list[tuple], positions: list[int], total: int) -> list[dict[str, Any]]:
    """Merge store results with the invalid-input records, in input order (seq)."""
    by_seq: dict[int, dict[str, Any]] = {}
    for seq, outcome in zip(positions, raw, strict=True):
        status, lead_id, code, message = outcome
        item: dict[str, Any] = {"seq": seq, "status": status}
        if lead_id is not None:
            item["leadId"] = lead_id
        if code:
            item["reasons"] = [reason(code, message)]
        by_seq[seq] = item
    return [
        by_seq.get(
            seq,
            {"seq": seq, "status": "skipped", "reasons": [reason(1003, "Invalid leadId")]},
        )
        for seq in range(total)
    ]


async def sync_status(request: Request) -> Response:
    """`POST .../members/status.json` {statusName, input: [{leadId}]} (step rule → 1037)."""
    user(request)
    body = await json_body(request)
    items = input_list(body)
    status_name = body.get("statusName")
    if status_name in (None, ""):
        raise MarketoHTTPError(1002, "Missing value for required parameter 'statusName'")
    if not isinstance(status_name, str):
        raise MarketoHTTPError(1001, "Invalid value for 'statusName'. Required of type 'String'")
    ids, positions = _lead_ids(items)
    store: Store = state_of(request).store
    raw = await db(
        store.members.sync_status,
        request.path_params["program_id"],
        status_name,
        ids,
    )
    return ok(_results(raw, positions, len(items)))


async def sync_data(request: Request, store: Store, program_id: int) -> Response:
    """`POST .../members.json` {input: [{leadId, field: value}]}: updateable fields only."""
    body = await json_body(request)
    items = input_list(body)
    rows = [item if isinstance(item, dict) else {} for item in items]
    raw = await db(store.members.update_data, program_id, rows)
    return ok(
        [
            {"seq": i, "status": s, **({"leadId": lead} if lead else {}),
             **({"reasons": [reason(code, msg)]} if code else {})}
            for i, (s, lead, code, msg) in enumerate(raw)
        ]
    )  # fmt: skip


async def delete(request: Request) -> Response:
    """`POST .../members/delete.json` {input: [{leadId}]}."""
    user(request)
    body = await json_body(request)
    items = input_list(body)
    ids, positions = _lead_ids(items)
    store: Store = state_of(request).store
    raw = await db(
        store.members.delete,
        request.path_params["program_id"],
        ids,
    )
    converted = [(status, lead_id, "1037" if why else None, why) for status, lead_id, why in raw]
    return ok(_results(converted, positions, len(items)))


ROUTES = [
    Route("/rest/v1/programs/members/describe.json", describe, methods=["GET"]),
    Route("/rest/v1/programs/{program_id:int}/members.json", members, methods=["GET", "POST"]),
    Route("/rest/v1/programs/{program_id:int}/members/status.json", sync_status, methods=["POST"]),
    Route("/rest/v1/programs/{program_id:int}/members/delete.json", delete, methods=["POST"]),
]
