"""Describe of companies and custom objects.

`/rest/v1/companies/describe.json`, `/rest/v1/customobjects.json`,
`/rest/v1/customobjects/{apiName}/describe.json`.

The objects themselves are written through Data Ingestion (the `ingestion` family); their field
lists live there, so these endpoints read them from it and answer 610 when it is not built.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from starlette.routing import Route

from marketo_sandbox.envelope import MarketoHTTPError, ok
from marketo_sandbox.rest.params import user

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


ROUTES = [
    Route("/rest/v1/companies/describe.json", companies, methods=["GET"]),
    Route("/rest/v1/customobjects.json", custom_objects, methods=["GET"]),
    Route(
        "/rest/v1/customobjects/{api_name}/describe.json", describe_custom_object, methods=["GET"]
    ),
]
