"""Data Ingestion routes, mirroring `https://mkto-ingestion-api.adobe.io/subscriptions/{munchkinId}/...`.

The sandbox serves them on its own host (`ingestion_base_url == base_url`). `GET
/_sandbox/ingestion` (admin, never the connectors) stands in for the Observability stream: the
requests still to apply and the records that failed after their 202.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.routing import Route

from marketo_sandbox.envelope import JSONResponse
from marketo_sandbox.family import Family
from marketo_sandbox.ingestion import (
    apply,
    companies,
    custom_objects,
    persons,
    program_members,
    tables,
)
from marketo_sandbox.ingestion.common import RequestIdMiddleware, handle
from marketo_sandbox.state import state_of

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

BASE = "/subscriptions/{munchkinId}"


async def post_persons(request: Request) -> Response:
    """`POST /subscriptions/{munchkinId}/persons`."""
    return await handle(request, persons.validate, apply.accept)


async def post_custom_objects(request: Request) -> Response:
    """`POST /subscriptions/{munchkinId}/customobjects/{apiName}`."""
    return await handle(request, custom_objects.validate, apply.accept)


async def post_companies(request: Request) -> Response:
    """`POST /subscriptions/{munchkinId}/companies`."""
    return await handle(request, companies.validate, apply.accept)


async def post_program_members(request: Request) -> Response:
    """`POST /subscriptions/{munchkinId}/programmembers`."""
    return await handle(request, program_members.validate, apply.accept)


async def post_program_members_delete(request: Request) -> Response:
    """`POST /subscriptions/{munchkinId}/programmembers/delete`."""
    return await handle(request, program_members.validate_delete, apply.accept)


async def admin_ingestion(request: Request) -> Response:
    """`GET /_sandbox/ingestion[?requestId=]`: {pending, failures}, as Observability would say."""
    store = state_of(request).store
    wanted = request.query_params.get("requestId")

    def read() -> dict:
        failures = apply.dump_failures(store)
        if wanted:
            failures = [f for f in failures if f["requestId"] == wanted]
        return {"pending": apply.pending_count(store), "failures": failures}

    return JSONResponse(await run_in_threadpool(read))


ROUTES = [
    Route(f"{BASE}/persons", post_persons, methods=["POST"]),
    Route(f"{BASE}/customobjects/{{apiName}}", post_custom_objects, methods=["POST"]),
    Route(f"{BASE}/companies", post_companies, methods=["POST"]),
    Route(f"{BASE}/programmembers", post_program_members, methods=["POST"]),
    Route(f"{BASE}/programmembers/delete", post_program_members_delete, methods=["POST"]),
    Route("/_sandbox/ingestion", admin_ingestion, methods=["GET"]),
]
INGESTION = Family(
    "ingestion",
    routes=ROUTES,
    schema=tables.SCHEMA,
    dumps={
        "companies": companies.dump,
        "custom_objects": custom_objects.dump,
        "ingestion_failures": apply.dump_failures,
    },
    middleware=[Middleware(RequestIdMiddleware)],
    jobs=apply.setup,
)
