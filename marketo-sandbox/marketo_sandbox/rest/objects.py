"""Describe and query of companies and custom objects.

`/rest/v1/companies/describe.json`, `GET /rest/v1/companies.json` (companies.md "Query"),
`/rest/v1/customobjects.json`, `/rest/v1/customobjects/{apiName}/describe.json`,
`GET /rest/v1/customobjects/{apiName}.json` (custom-objects.md "Query"; also `POST ...?_method=GET`
with a JSON body, for compound dedupe keys).

The objects themselves are written through Data Ingestion (the `ingestion` family); their field
lists live there, so these endpoints read them from it and answer 610 when it is not built.
Queries take `filterType` (a searchable or dedupe field; `idField` for custom objects),
`filterValues` (≤ 300), `fields`, `batchSize` (≤ 300) and `nextPageToken`, as for leads; a
filterType outside the describe's searchable fields is 1003 and an unknown `fields` name 1006.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from starlette.routing import Route

from marketo_sandbox.envelope import MarketoHTTPError, ok
from marketo_sandbox.rest.params import (
    MAX_BATCH,
    db,
    decode_token,
    encode_token,
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
from marketo_sandbox.storage import coerce

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

_LENGTHS = {"string": 255, "email": 255, "phone": 255, "url": 255}
_CREATED = "2024-01-01T00:00:00Z"


def _family(name: str) -> Any:
    try:
        return importlib.import_module(f"marketo_sandbox.ingestion.{name}")
    except ModuleNotFoundError:
        raise MarketoHTTPError(610, "Requested resource not found", http_status=404) from None


def _fields(types: dict[str, str], read_only: tuple[str, ...]) -> list[dict[str, Any]]:
    out = []
    for name, data_type in types.items():
        item: dict[str, Any] = {"name": name, "displayName": name, "dataType": data_type}
        if data_type in _LENGTHS:
            item["length"] = _LENGTHS[data_type]
        item.update(updateable=name not in read_only, crmManaged=False)
        out.append(item)
    return out


async def companies(request: Request) -> Response:
    """`GET /rest/v1/companies/describe.json`."""
    user(request)
    module = _family("companies")
    return ok(
        [
            {
                "name": "Company",
                "description": "Map for Company fields",
                "createdAt": _CREATED,
                "updatedAt": _CREATED,
                "idField": "id",
                "dedupeFields": ["externalCompanyId"],
                "searchableFields": [["externalCompanyId"], ["id"], ["company"]],
                "fields": _fields(dict(module.FIELDS), ("id",)),
            }
        ]
    )


def _types(request: Request) -> dict[str, dict[str, Any]]:
    module = _family("custom_objects")
    return module.object_types(request)


def _custom_object(name: str, spec: dict[str, Any], with_fields: bool) -> dict[str, Any]:
    dedupe = list(spec.get("dedupeFields") or [])
    item: dict[str, Any] = {
        "name": name,
        "displayName": name[:1].upper() + name[1:],
        "pluralName": name[:1].upper() + name[1:],
        "description": f"Custom object {name}",
        "createdAt": _CREATED,
        "updatedAt": _CREATED,
        "idField": "marketoGUID",
        "dedupeFields": dedupe,
        "searchableFields": [[f] for f in dedupe] + [["marketoGUID"]],
        "relationships": [
            {"field": "email", "type": "child", "relatedTo": {"name": "Lead", "field": "email"}}
        ]
        if "email" in (spec.get("fields") or {})
        else [],
    }
    if with_fields:
        types = {"marketoGUID": "string", **dict(spec.get("fields") or {})}
        item["fields"] = _fields(types, ("marketoGUID",))
    return item


async def custom_objects(request: Request) -> Response:
    """`GET /rest/v1/customobjects.json[?names=a,b]`."""
    user(request)
    types = _types(request)
    names = request.query_params.get("names")
    wanted = [n.strip() for n in names.split(",")] if names else sorted(types)
    return ok([_custom_object(n, types[n], with_fields=False) for n in wanted if n in types])


async def describe_custom_object(request: Request) -> Response:
    """`GET /rest/v1/customobjects/{apiName}/describe.json`."""
    user(request)
    name = request.path_params["api_name"]
    types = _types(request)
    if name not in types:
        raise MarketoHTTPError(1013, f"Custom object '{name}' not found")
    return ok([_custom_object(name, types[name], with_fields=True)])


def _filter(params: dict[str, Any], searchable: dict[str, str]) -> tuple[str, list[Any]]:
    """(filterType, typed filterValues): 1002 when missing, 1003 when not searchable/invalid."""
    filter_type = params.get("filterType")
    if not filter_type:
        raise MarketoHTTPError(1002, "Missing value for required parameter 'filterType'")
    if filter_type not in searchable:
        raise MarketoHTTPError(1003, f"Invalid filterType '{filter_type}'")
    raw = params.get("filterValues")
    if not raw:
        raise MarketoHTTPError(1002, "Missing value for required parameter 'filterValues'")
    values = [v.strip() for v in str(raw).split(",")]
    if len(values) > MAX_BATCH:
        raise MarketoHTTPError(1003, f"filterValues has {len(values)} values; at most 300")
    try:
        typed = [coerce(searchable[filter_type], v) for v in values]
    except (ValueError, TypeError):
        raise MarketoHTTPError(1003, f"Invalid filterValues for '{filter_type}'") from None
    return filter_type, typed


def _fields_param(params: dict[str, Any], known: set[str], default: list[str]) -> list[str]:
    """`fields` (comma-separated, or a JSON array in a POST body), 1006 for an unknown one."""
    raw = params.get("fields")
    wanted = list(raw) if isinstance(raw, list) else list_param(params, "fields")
    for name in wanted:
        if name not in known:
            raise MarketoHTTPError(1006, f"Field '{name}' not found")
    return wanted or default


def _page(rows: list[dict], wanted: list[str], key: str, size: int, kind: str) -> Response:
    """`seq`-numbered records with the wanted fields (absent ones: implied null)."""
    more = len(rows) > size
    rows = rows[:size]
    result = [
        {"seq": n, **{f: row[f] for f in wanted if row.get(f) is not None}}
        for n, row in enumerate(rows)
    ]
    token = encode_token(kind, rows[-1][key]) if more and rows else None
    return ok(result, **page_extra(token))


async def query_companies(request: Request) -> Response:
    """`GET /rest/v1/companies.json`: Get Companies by filterType (companies.md "Query")."""
    user(request)
    module = _family("companies")
    params = await query_params(request)
    searchable = {n: module.FIELDS[n] for n in ("externalCompanyId", "id", "company")}
    field, values = _filter(params, searchable)
    known = {*module.FIELDS, "createdAt", "updatedAt"}
    wanted = _fields_param(params, known, ["id", "externalCompanyId", "updatedAt", "createdAt"])
    size = int_param(params, "batchSize", MAX_BATCH, 1, MAX_BATCH)
    after = int(decode_token(params.get("nextPageToken"), "companies") or 0)
    store = state_of(request).store
    rows = await db(module.query, store, field, values, after, size + 1)
    return _page(rows, ["id", *(f for f in wanted if f != "id")], "id", size, "companies")


async def query_custom_objects(request: Request) -> Response:
    """`GET /rest/v1/customobjects/{apiName}.json` (custom-objects.md "Query").

    `filterType=idField` takes marketoGUIDs; `POST ...?_method=GET` with a JSON body
    {filterType: dedupeFields, fields?, input: [{dedupe field: value}]} matches compound keys.
    """
    user(request)
    module = _family("custom_objects")
    name = request.path_params["api_name"]
    spec = module.object_types(request).get(name)
    if spec is None:
        raise MarketoHTTPError(1013, f"Custom object '{name}' not found")
    types = {"marketoGUID": "string", **dict(spec.get("fields") or {})}
    dedupe = list(spec.get("dedupeFields") or [])
    known = {*types, "createdAt", "updatedAt"}
    default = ["marketoGUID", *dedupe, "createdAt", "updatedAt"]
    store = state_of(request).store
    if request.method == "POST":
        if not await method_override(request):
            raise MarketoHTTPError(605, "HTTP Method 'POST' not supported")
        return await _query_compound(request, module, name, types, dedupe, known, default)
    params = await query_params(request)
    searchable = {"idField": "string", "marketoGUID": "string", **{f: types[f] for f in dedupe}}
    field, values = _filter(params, searchable)
    field = "marketoGUID" if field == "idField" else field
    wanted = _fields_param(params, known, default)
    size = int_param(params, "batchSize", MAX_BATCH, 1, MAX_BATCH)
    after = int(decode_token(params.get("nextPageToken"), f"co-{name}") or 0)
    rows = await db(module.query, store, name, field, values, after=after, limit=size + 1)
    return _page(rows, wanted, "rowid", size, f"co-{name}")


async def _query_compound(  # noqa: PLR0917
    request: Request,
    module: Any,
    name: str,
    types: dict[str, str],
    dedupe: list[str],
    known: set[str],
    default: list[str],
) -> Response:
    """The POST form of the query: each `input` object names every dedupe field."""
    body = await json_body(request)
    if body.get("filterType") != "dedupeFields":
        raise MarketoHTTPError(1003, "filterType must be dedupeFields with an input array")
    items = input_list(body)
    wanted = _fields_param(body, known, default)
    store = state_of(request).store
    rows: list[dict] = []
    for item in items:
        if not isinstance(item, dict) or set(item) != set(dedupe):
            raise MarketoHTTPError(1003, f"Each input needs exactly the dedupe fields {dedupe}")
        try:
            key = {f: coerce(types[f], item[f]) for f in dedupe}
        except (ValueError, TypeError):
            raise MarketoHTTPError(1003, f"Invalid dedupe value in {item}") from None
        first = dedupe[0]
        found = await db(module.query, store, name, first, [key[first]], after=0, limit=MAX_BATCH)
        rows += [r for r in found if all(r.get(f) == v for f, v in key.items())]
    return _page(rows, wanted, "rowid", len(rows), f"co-{name}")


ROUTES = [
    Route("/rest/v1/companies/describe.json", companies, methods=["GET"]),
    Route("/rest/v1/companies.json", query_companies, methods=["GET"]),
    Route("/rest/v1/customobjects.json", custom_objects, methods=["GET"]),
    Route(
        "/rest/v1/customobjects/{api_name}/describe.json", describe_custom_object, methods=["GET"]
    ),
    Route("/rest/v1/customobjects/{api_name}.json", query_custom_objects, methods=["GET", "POST"]),
]
