"""Asset API programs and channels.

`/rest/asset/v1/programs.json`, `/program/{id}.json`, `/program/byName.json`, `/channels.json`,
`/channel/byName.json`.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any

from starlette.routing import Route

from marketo_sandbox.envelope import ok
from marketo_sandbox.rest.params import db, int_param, query_params, user
from marketo_sandbox.state import state_of

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from marketo_sandbox.storage import Store

NO_ASSETS = "No assets found for the given search criteria."


def asset(program: dict[str, Any], munchkin_id: str) -> dict[str, Any]:
    """A program as the Asset API returns it.

    `progressionStatuses` is a sandbox addition (Marketo lists them on the program's channel,
    `GET /rest/asset/v1/channel/byName.json`, also served here), so clients can check status
    names with one call.
    """
    return {
        "id": program["id"],
        "name": program["name"],
        "description": program["description"],
        "createdAt": program["createdAt"].replace("Z", "+0000"),
        "updatedAt": program["updatedAt"].replace("Z", "+0000"),
        "url": f"https://app-sj01.marketo.com/#PG{program['id']}A1",
        "type": program["type"].capitalize() if program["type"] != "engagement" else "Engagement",
        "channel": program["channel"],
        "folder": {"type": "Folder", "value": program["folderId"] or 1, "folderName": "Programs"},
        "status": program["status"],
        "workspace": program["workspace"],
        "tags": [],
        "costs": None,
        "sfdcId": None,
        "sfdcName": None,
        "munchkinId": munchkin_id,
        "progressionStatuses": program["progressionStatuses"],
    }


def _envelope(items: list[dict[str, Any]]) -> Response:
    if not items:
        return ok(None, errors=[], warnings=[NO_ASSETS])
    return ok(items, errors=[], warnings=[])


async def browse(request: Request) -> Response:
    """`GET /rest/asset/v1/programs.json?offset=&maxReturn=` (maxReturn default 20, at most 200)."""
    user(request)
    params = await query_params(request)
    offset = int_param(params, "offset", 0, 0, 10**9)
    max_return = int_param(params, "maxReturn", 20, 1, 200)
    store: Store = state_of(request).store
    programs = await db(store.programs.all)
    munchkin = state_of(request).munchkin_id
    return _envelope([asset(p, munchkin) for p in programs[offset : offset + max_return]])


async def by_id(request: Request) -> Response:
    """`GET /rest/asset/v1/program/{id}.json`."""
    user(request)
    store: Store = state_of(request).store
    program = await db(store.programs.get, request.path_params["program_id"])
    return _envelope([asset(program, state_of(request).munchkin_id)] if program else [])


async def by_name(request: Request) -> Response:
    """`GET /rest/asset/v1/program/byName.json?name=`."""
    user(request)
    params = await query_params(request)
    store: Store = state_of(request).store
    programs = await db(store.programs.all)
    found = [p for p in programs if p["name"] == params.get("name")]
    return _envelope([asset(p, state_of(request).munchkin_id) for p in found])


def _channel(ch: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": zlib.crc32(ch["name"].encode()) % 10_000,
        "name": ch["name"],
        "applicableProgramType": ch["applicableProgramType"],
        "progressionStatuses": [
            {"name": s["name"], "step": s["step"], "success": s["success"], "hidden": False,
             "description": s.get("description", "")}
            for s in ch["progressionStatuses"]
        ],
    }  # fmt: skip


def _channels(store: Store) -> list[dict[str, Any]]:
    names = [r[0] for r in store.db.conn().execute("SELECT name FROM channels ORDER BY name")]
    return [_channel(store.programs.channel(n)) for n in names]


async def channels(request: Request) -> Response:
    """`GET /rest/asset/v1/channels.json?offset=&maxReturn=`."""
    user(request)
    params = await query_params(request)
    offset = int_param(params, "offset", 0, 0, 10**9)
    max_return = int_param(params, "maxReturn", 20, 1, 200)
    items = await db(_channels, state_of(request).store)
    return _envelope(items[offset : offset + max_return])


async def channel_by_name(request: Request) -> Response:
    """`GET /rest/asset/v1/channel/byName.json?name=`."""
    user(request)
    params = await query_params(request)
    items = await db(_channels, state_of(request).store)
    return _envelope([c for c in items if c["name"] == params.get("name")])


ROUTES = [
    Route("/rest/asset/v1/programs.json", browse, methods=["GET"]),
    Route("/rest/asset/v1/program/byName.json", by_name, methods=["GET"]),
    Route("/rest/asset/v1/program/{program_id:int}.json", by_id, methods=["GET"]),
    Route("/rest/asset/v1/channels.json", channels, methods=["GET"]),
    Route("/rest/asset/v1/channel/byName.json", channel_by_name, methods=["GET"]),
]
