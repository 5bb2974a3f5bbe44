"""Lead describe: `/rest/v1/leads/describe.json` and `/rest/v1/leads/describe2.json`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import Route

from marketo_sandbox.envelope import ok
from marketo_sandbox.rest.params import db, user
from marketo_sandbox.storage import LEAD, Store

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response


async def describe(request: Request) -> Response:
    """Describe Lead (v1 shape: id, displayName, dataType, length, rest/soap names)."""
    user(request)
    store: Store = request.app.state.store
    records = await db(store.field_records, LEAD)
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
    store: Store = request.app.state.store
    records = await db(store.field_records, LEAD)
    fields = [{k: v for k, v in f.items() if k != "isCustom"} for f in store._describe(records)]  # noqa: SLF001
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


ROUTES = [
    Route("/rest/v1/leads/describe.json", describe, methods=["GET"]),
    Route("/rest/v1/leads/describe2.json", describe2, methods=["GET"]),
]
