"""The sandbox's own API under `/_sandbox/` (tests, demo, benchmarks; never the connectors).

- `GET  /_sandbox/dump/{kind}[?programId=N]`: what the sandbox holds, as a JSON list.
- `GET|POST|DELETE /_sandbox/faults`: list, arm ({path, kind, method?, count?, every?, delay?}),
  clear faults.
- `GET|POST|DELETE /_sandbox/chaos`: chaos mode (chaos.py): GET counts by kind (`?log=1`: every
  injected fault), POST {rate, seed?, slowSeconds?} arms, DELETE disarms.
- `GET|POST /_sandbox/options`: read or change run-time options.
- `POST /_sandbox/members/touch` {programId, leadIds, fields?}: change members, bump updatedAt.
- `GET|POST /_sandbox/now`: sandbox time; POST {advanceSeconds} moves it forward.
- `POST /_sandbox/tokens/expire`: every issued token expires now.
- `GET  /_sandbox/limits`: REST calls counted today, calls in flight, peaks and refusals.
- `POST /_sandbox/reset` {seed?, members?}: empty the db and seed it again.
"""

from __future__ import annotations

import inspect
import json
from typing import TYPE_CHECKING, Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse
from starlette.routing import Route

from marketo_sandbox import seed
from marketo_sandbox.chaos import parse_spec
from marketo_sandbox.envelope import JSONResponse, MarketoHTTPError
from marketo_sandbox.family import Family
from marketo_sandbox.state import state_of

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from starlette.requests import Request
    from starlette.responses import Response

    from marketo_sandbox.family import DumpFn
    from marketo_sandbox.storage import Store


def dump_kinds(dumps: Mapping[str, DumpFn]) -> list[str]:
    """Kinds that can be dumped: the families' and `program_members` (streamed)."""
    return sorted({*dumps, "program_members"})


def _bad(message: str, status: int = 400) -> Response:
    return JSONResponse({"error": message}, status_code=status)


async def _json(request: Request) -> dict[str, Any]:
    body = await request.body()
    if not body:
        return {}
    data = json.loads(body)
    if not isinstance(data, dict):
        raise TypeError("a JSON object was expected")
    return data


def _json_array(rows: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    """A JSON array written row by row, in chunks."""
    chunk = [b"["]
    first = True
    for row in rows:
        chunk.append(orjson.dumps(row) if first else b"," + orjson.dumps(row))
        first = False
        if len(chunk) >= 1000:  # noqa: PLR2004
            yield b"".join(chunk)
            chunk = []
    chunk.append(b"]")
    yield b"".join(chunk)


async def dump(request: Request) -> Response:
    """`GET /_sandbox/dump/{kind}`."""
    kind = request.path_params["kind"]
    store: Store = state_of(request).store
    if kind == "program_members":
        program_id = request.query_params.get("programId")
        pid = int(program_id) if program_id and program_id.isdigit() else None
        rows = await run_in_threadpool(store.members.iter_dump, pid)
        return StreamingResponse(_json_array(rows), media_type="application/json")
    dumps = state_of(request).dumps
    if kind in dumps:
        rows = await run_in_threadpool(dumps[kind], store)
        return JSONResponse(rows)
    return _bad(f"unknown kind {kind!r}; one of {', '.join(dump_kinds(dumps))}", 404)


async def faults(request: Request) -> Response:
    """`/_sandbox/faults`: GET lists, POST arms one, DELETE clears all."""
    registry = state_of(request).faults
    if request.method == "DELETE":
        registry.clear()
        return JSONResponse([])
    if request.method == "POST":
        try:
            spec = await _json(request)
            fault = registry.inject(
                spec["path"],
                spec["kind"],
                method=spec.get("method"),
                count=int(spec.get("count", 1)),
                every=spec.get("every"),
                delay=spec.get("delay"),
            )
        except (KeyError, ValueError, TypeError) as exc:
            return _bad(f"bad fault: {exc}")
        return JSONResponse(fault.to_dict())
    return JSONResponse(registry.list())


async def chaos(request: Request) -> Response:
    """`/_sandbox/chaos`: GET reads counts (and `?log=1` the log), POST arms, DELETE disarms."""
    mode = state_of(request).faults.chaos
    if request.method == "DELETE":
        mode.disarm()
    elif request.method == "POST":
        try:
            spec = await _json(request)
            rate, seed = parse_spec(spec)
            mode.arm(rate, seed, spec.get("slowSeconds"))
        except (ValueError, TypeError) as exc:
            return _bad(f"bad chaos: {exc}")
    return JSONResponse(mode.snapshot(with_log=request.query_params.get("log") == "1"))


async def options(request: Request) -> Response:
    """`/_sandbox/options`: GET reads, POST merges a JSON object of changes."""
    opts = state_of(request).options
    if request.method == "POST":
        try:
            changes = await _json(request)
        except (ValueError, TypeError) as exc:
            return _bad(str(exc))
        try:
            await run_in_threadpool(opts.apply, changes)
        except ValueError as exc:
            return _bad(str(exc))
    return JSONResponse(dict(opts))


async def touch(request: Request) -> Response:
    """`POST /_sandbox/members/touch`."""
    try:
        spec = await _json(request)
        program_id = int(spec["programId"])
        lead_ids = [int(x) for x in spec["leadIds"]]
    except (KeyError, ValueError, TypeError) as exc:
        return _bad(f"bad touch request: {exc}")
    store: Store = state_of(request).store
    try:
        changed = await run_in_threadpool(
            store.members.touch, program_id, lead_ids, spec.get("fields") or {}
        )
    except MarketoHTTPError as exc:
        return _bad(f"{exc.code} {exc.message}")
    return JSONResponse({"updated": changed, "now": state_of(request).clock.now_iso()})


async def now(request: Request) -> Response:
    """`/_sandbox/now`: GET reads sandbox time, POST {advanceSeconds} moves it forward."""
    clock = state_of(request).clock
    if request.method == "POST":
        try:
            spec = await _json(request)
            clock.advance(float(spec.get("advanceSeconds", 0)))
        except (ValueError, TypeError) as exc:
            return _bad(str(exc))
        await run_in_threadpool(state_of(request).store.db.save_clock)
    return JSONResponse({"now": clock.now_iso(), "timeScale": clock.time_scale})


async def limits(request: Request) -> Response:
    """`GET /_sandbox/limits`: REST calls counted today and calls in flight."""
    counters = state_of(request).limits
    return JSONResponse({"dailyUsed": counters.daily_used(), "inFlight": counters.in_flight,
                         **counters.peaks()})  # fmt: skip


async def expire_tokens(request: Request) -> Response:
    """`POST /_sandbox/tokens/expire`."""
    count = await run_in_threadpool(state_of(request).identity.expire_all)
    return JSONResponse({"expired": count})


async def reset(request: Request) -> Response:
    """`POST /_sandbox/reset` {seed?: "demo"|null, members?: N}: empty db, seed again."""
    try:
        spec = await _json(request)
    except (ValueError, TypeError) as exc:
        return _bad(str(exc))
    config = state_of(request).config
    kind = spec.get("seed", config.get("seed"))
    members = int(spec.get("members", config.get("members") or 0))
    store: Store = state_of(request).store
    state_of(request).faults.clear()

    scheduler = state_of(request).scheduler

    def work() -> None:
        with scheduler.paused():  # no job worker writes into the rebuilt tables
            store.reset()
            seed.apply(store, kind, members)

    await run_in_threadpool(work)
    for family in state_of(request).families:  # they drop in-memory state tied to the old data
        if family.on_reset is not None:
            result = family.on_reset(request.app)
            if inspect.isawaitable(result):
                await result
    return JSONResponse({"seed": kind, "members": members})


ROUTES = [
    Route("/_sandbox/dump/{kind}", dump, methods=["GET"]),
    Route("/_sandbox/faults", faults, methods=["GET", "POST", "DELETE"]),
    Route("/_sandbox/chaos", chaos, methods=["GET", "POST", "DELETE"]),
    Route("/_sandbox/options", options, methods=["GET", "POST"]),
    Route("/_sandbox/members/touch", touch, methods=["POST"]),
    Route("/_sandbox/now", now, methods=["GET", "POST"]),
    Route("/_sandbox/tokens/expire", expire_tokens, methods=["POST"]),
    Route("/_sandbox/limits", limits, methods=["GET"]),
    Route("/_sandbox/reset", reset, methods=["POST"]),
]

#: The core's dumps: the objects every family shares.
DUMPS: dict[str, DumpFn] = {
    "leads": lambda store: store.leads.dump(),
    "fields": lambda store: store.fields.dump(),
    "member_counts": lambda store: store.members.counts(),
    "calls": lambda store: store.calls.dump(),
}

ADMIN = Family("admin", routes=ROUTES, dumps=DUMPS)
