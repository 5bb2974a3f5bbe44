"""Field schema APIs: browse, get, create and update fields of program members and leads.

`/rest/v1/programs/members/schema/fields...` and `/rest/v1/leads/schema/fields...`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from starlette.routing import Route

from marketo_sandbox.envelope import MarketoHTTPError, ok, reason
from marketo_sandbox.rest.params import (
    MAX_BATCH,
    db,
    decode_token,
    encode_token,
    input_list,
    int_param,
    json_body,
    page_extra,
    query_params,
    user,
)
from marketo_sandbox.state import state_of
from marketo_sandbox.storage import LEAD, PROGRAM_MEMBER, Store

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# "displayName ... cannot contain special characters": letters (any script), digits, spaces,
# underscores and hyphens are accepted; anything else is refused (our reading of the rule).
_DISPLAY = re.compile(r"^[^\W][\w \-]*$")
#: Every type of field-types.md, by its API name (text area is `text`).
CUSTOM_TYPES = frozenset(
    {"string", "text", "integer", "float", "currency", "boolean", "date", "datetime", "email",
     "phone", "url", "score", "percent", "reference", "formula"}
)  # fmt: skip
CREATE_ATTRS = frozenset(
    {"displayName", "name", "dataType", "description", "isHidden", "isHtmlEncodingInEmail",
     "isSensitive", "length"}
)  # fmt: skip
UPDATE_ATTRS = frozenset(
    {"displayName", "description", "isHidden", "isHtmlEncodingInEmail", "isSensitive"}
)
_BOOL_ATTRS = ("isHidden", "isHtmlEncodingInEmail", "isSensitive")


def _object(request: Request) -> str:
    return PROGRAM_MEMBER if request.url.path.startswith("/rest/v1/programs/") else LEAD


def schema_record(field: dict[str, Any]) -> dict[str, Any]:
    """A field as the schema endpoints show it (more metadata than describe)."""
    out: dict[str, Any] = {
        "displayName": field["displayName"],
        "name": field["name"],
        "description": field["description"],
        "dataType": field["dataType"],
    }
    if field["length"] is not None:
        out["length"] = field["length"]
    out.update(
        isHidden=field["isHidden"],
        isHtmlEncodingInEmail=field["isHtmlEncodingInEmail"],
        isSensitive=field["isSensitive"],
        isCustom=field["isCustom"],
        isApiCreated=field["isApiCreated"],
    )
    return out


async def browse(request: Request) -> Response:
    """`GET .../schema/fields.json?batchSize=&nextPageToken=`."""
    user(request)
    params = await query_params(request)
    size = int_param(params, "batchSize", MAX_BATCH, 1, MAX_BATCH)
    start = int(decode_token(params.get("nextPageToken"), "fields") or 0)
    store: Store = state_of(request).store
    records = await db(store.fields.records, _object(request))
    page = [schema_record(f) for f in records[start : start + size]]
    more = start + size < len(records)
    return ok(page, **page_extra(encode_token("fields", start + size) if more else None))


def _field(store: Store, obj: str, name: str) -> dict[str, Any]:
    field = store.fields.map(obj).get(name)
    if field is None:
        raise MarketoHTTPError(1006, f"Field '{name}' not found")
    return field


async def get_field(request: Request) -> Response:
    """`GET .../schema/fields/{fieldApiName}.json`."""
    user(request)
    store: Store = state_of(request).store
    field = await db(_field, store, _object(request), request.path_params["name"])
    return ok([schema_record(field)])


def _check_create(spec: Any, existing: dict[str, dict[str, Any]]) -> str | None:  # noqa: C901, PLR0911
    """Why `spec` cannot be created, or None."""
    if not isinstance(spec, dict):
        return "A field object was expected"
    for attr in ("displayName", "name", "dataType"):
        if not isinstance(spec.get(attr), str) or not spec[attr].strip():
            return f"Missing value for required attribute '{attr}'"
    unknown = sorted(set(spec) - CREATE_ATTRS)
    if unknown:
        return f"Invalid attribute '{unknown[0]}'"
    name, display = spec["name"], spec["displayName"]
    if not _NAME.match(name):
        return (
            f"Invalid name '{name}': it must start with a letter and contain only letters, "
            "numbers or underscores"
        )
    if not _DISPLAY.match(display):
        return f"Invalid displayName '{display}': special characters are not allowed"
    if spec["dataType"] not in CUSTOM_TYPES:
        return f"Invalid dataType '{spec['dataType']}'"
    if any(name.lower() == n.lower() for n in existing):
        return f"Field name '{name}' already exists"
    if any(display.lower() == f["displayName"].lower() for f in existing.values()):
        return f"Field displayName '{display}' already exists"
    for attr in _BOOL_ATTRS:
        if attr in spec and not isinstance(spec[attr], bool):
            return f"Invalid value for '{attr}': a boolean is expected"
    length = spec.get("length")
    if length is not None and (not isinstance(length, int) or not 1 <= length <= 2000):  # noqa: PLR2004
        return "Invalid length: 1..2000"
    return None


def _create(store: Store, obj: str, items: list[Any], cap: int) -> list[dict[str, Any]]:
    results = []
    for spec in items:
        existing = store.fields.map(obj)
        customs = sum(1 for f in existing.values() if f["isCustom"])
        name = spec.get("name") if isinstance(spec, dict) else None
        why = _check_create(spec, existing)
        if why is None and obj == PROGRAM_MEMBER and customs >= cap:
            why = f"Maximum number of custom fields ({cap}) reached"
        if why:
            results.append({"name": name, "status": "skipped", "reasons": [reason(1003, why)]})
            continue
        store.fields.create(obj, spec)
        results.append({"name": name, "status": "created"})
    return results


async def create(request: Request) -> Response:
    """`POST .../schema/fields.json` {input: [{displayName, name, dataType, ...}]}."""
    user(request)
    body = await json_body(request)
    items = input_list(body, limit=MAX_BATCH)
    store: Store = state_of(request).store
    cap = int(state_of(request).options.get("max_custom_program_member_fields", 20))
    return ok(await db(_create, store, _object(request), items, cap))


def _update(store: Store, obj: str, name: str, spec: Any) -> dict[str, Any]:
    field = _field(store, obj, name)
    why = None
    if not isinstance(spec, dict) or not spec:
        why = "A field object with attributes to update was expected"
    elif not field["isCustom"]:
        why = f"Standard field '{name}' cannot be updated"
    else:
        bad = sorted(set(spec) - UPDATE_ATTRS)
        display = spec.get("displayName")
        if bad:
            why = f"Attribute '{bad[0]}' cannot be updated"
        elif display is not None and (not isinstance(display, str) or not _DISPLAY.match(display)):
            why = f"Invalid displayName '{display}': special characters are not allowed"
        elif display and any(
            display.lower() == f["displayName"].lower() and f["name"] != name
            for f in store.fields.records(obj)
        ):
            why = f"Field displayName '{display}' already exists"
        elif any(a in spec and not isinstance(spec[a], bool) for a in _BOOL_ATTRS):
            why = "isHidden, isHtmlEncodingInEmail and isSensitive take booleans"
    if why:
        return {"name": name, "status": "skipped", "reasons": [reason(1003, why)]}
    store.fields.update(obj, name, spec)
    return {"name": name, "status": "updated"}


async def update(request: Request) -> Response:
    """`POST .../schema/fields/{fieldApiName}.json` {input: [{attributes}]}."""
    user(request)
    body = await json_body(request)
    items = input_list(body, limit=1)
    store: Store = state_of(request).store
    result = await db(_update, store, _object(request), request.path_params["name"], items[0])
    return ok([result])


ROUTES = [
    Route("/rest/v1/programs/members/schema/fields.json", browse, methods=["GET"]),
    Route("/rest/v1/programs/members/schema/fields.json", create, methods=["POST"]),
    Route("/rest/v1/programs/members/schema/fields/{name}.json", get_field, methods=["GET"]),
    Route("/rest/v1/programs/members/schema/fields/{name}.json", update, methods=["POST"]),
    Route("/rest/v1/leads/schema/fields.json", browse, methods=["GET"]),
    Route("/rest/v1/leads/schema/fields.json", create, methods=["POST"]),
    Route("/rest/v1/leads/schema/fields/{name}.json", get_field, methods=["GET"]),
    Route("/rest/v1/leads/schema/fields/{name}.json", update, methods=["POST"]),
]
