"""The sandbox's own API under `/_sandbox/` (tests, demo, benchmarks; never the connectors).

- `GET  /_sandbox/dump/{kind}[?programId=N]`: what the sandbox holds, as a JSON list.
- `GET|POST|DELETE /_sandbox/faults`: list, arm ({path, kind, method?, count?, every?, delay?}),
  clear faults.
- `GET|POST /_sandbox/options`: read or change run-time options.
- `POST /_sandbox/members/touch` {programId, leadIds, fields?}: change members, bump updatedAt.
- `GET|POST /_sandbox/now`: sandbox time; POST {advanceSeconds} moves it forward.
- `POST /_sandbox/tokens/expire`: every issued token expires now.
- `GET  /_sandbox/limits`: REST calls counted today and calls in flight.
- `POST /_sandbox/reset` {seed?, members?}: empty the db and seed it again.
"""

from __future__ import annotations

import inspect
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse
from starlette.routing import Route

from marketo_sandbox.envelope import JSONResponse, MarketoHTTPError
from marketo_sandbox.storage import Store

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

DumpFn = Callable[[Store], list[dict[str, Any]]]

_DUMPS: dict[str, DumpFn] = {
    "leads": Store.dump_leads,
    "fields": Store.dump_fields,
    "member_counts": Store.dump_member_counts,
    "calls": Store.dump_calls,
}


def register_dump(kind: str, fn: DumpFn) -> None:
    """Make `/_sandbox/dump/{kind}` (and `AdminClient.dump(kind)`) return `fn(store)`."""
    _DUMPS[kind] = fn


def dump_kinds() -> list[str]:
    """Kinds that can be dumped now."""
    return sorted({*_DUMPS, "program_members"})


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
    store: Store = request.app.state.store
    if kind == "program_members":
        program_id = request.query_params.get("programId")
        pid = int(program_id) if program_id and program_id.isdigit() else None
        rows = await run_in_threadpool(store.iter_dump_program_members, pid)
        return StreamingResponse(_json_array(rows), media_type="application/json")
    if kind in _DUMPS:
        rows = await run_in_threadpool(_DUMPS[kind], store)
        return JSONResponse(rows)
    return _bad(f"unknown kind {kind!r}; one of {', '.join(dump_kinds())}", 404)


async def faults(request: Request) -> Response:
    """`/_sandbox/faults`: GET lists, POST arms one, DELETE clears all."""
    registry = request.app.state.faults
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


async def options(request: Request) -> Response:
    """`/_sandbox/options`: GET reads, POST merges a JSON object of changes."""
    opts = request.app.state.options
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
    store: Store = request.app.state.store
    try:
        changed = await run_in_threadpool(
            store.touch_members, program_id, lead_ids, spec.get("fields") or {}
        )
    except MarketoHTTPError as exc:
        return _bad(f"{exc.code} {exc.message}")
    return JSONResponse({"updated": changed, "now": request.app.state.clock.now_iso()})


async def now(request: Request) -> Response:
    """`/_sandbox/now`: GET reads sandbox time, POST {advanceSeconds} moves it forward."""
    clock = request.app.state.clock
    if request.method == "POST":
        try:
            spec = await _json(request)
            clock.advance(float(spec.get("advanceSeconds", 0)))
        except (ValueError, TypeError) as exc:
            return _bad(str(exc))
        await run_in_threadpool(request.app.state.store.save_clock)
    return JSONResponse({"now": clock.now_iso(), "timeScale": clock.time_scale})


async def limits(request: Request) -> Response:
    """`GET /_sandbox/limits`: REST calls counted today and calls in flight."""
    counters = request.app.state.limits
    return JSONResponse({"dailyUsed": counters.daily_used(), "inFlight": counters.in_flight})


async def expire_tokens(request: Request) -> Response:
    """`POST /_sandbox/tokens/expire`."""
    count = await run_in_threadpool(request.app.state.identity.expire_all)
    return JSONResponse({"expired": count})


async def reset(request: Request) -> Response:
    """`POST /_sandbox/reset` {seed?: "demo"|null, members?: N}: empty db, seed again."""
    from marketo_sandbox import seed  # noqa: PLC0415 - seed imports storage only when needed
    from marketo_sandbox.app import load_families  # noqa: PLC0415 - app imports this module

    try:
        spec = await _json(request)
    except (ValueError, TypeError) as exc:
        return _bad(str(exc))
    config = request.app.state.config
    kind = spec.get("seed", config.get("seed"))
    members = int(spec.get("members", config.get("members") or 0))
    store: Store = request.app.state.store
    request.app.state.faults.clear()

    def work() -> None:
        store.reset()
        seed.apply(store, kind, members)

    await run_in_threadpool(work)
    for module in load_families():  # families drop in-memory state tied to the old data
        hook = getattr(module, "on_reset", None)
        if hook is not None:
            result = hook(request.app)
            if inspect.isawaitable(result):
                await result
    return JSONResponse({"seed": kind, "members": members})


ROUTES = [
    Route("/_sandbox/dump/{kind}", dump, methods=["GET"]),
    Route("/_sandbox/faults", faults, methods=["GET", "POST", "DELETE"]),
    Route("/_sandbox/options", options, methods=["GET", "POST"]),
    Route("/_sandbox/members/touch", touch, methods=["POST"]),
    Route("/_sandbox/now", now, methods=["GET", "POST"]),
    Route("/_sandbox/tokens/expire", expire_tokens, methods=["POST"]),
    Route("/_sandbox/limits", limits, methods=["GET"]),
    Route("/_sandbox/reset", reset, methods=["POST"]),
]


class AdminError(RuntimeError):
    """The admin API refused a request."""


class AdminClient:
    """Python client of `/_sandbox/` (stdlib only, so any test can use it)."""

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(  # noqa: S310 - our own http://127.0.0.1 server
            self.base_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data else {},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise AdminError(f"{method} {path}: {exc.code} {exc.read().decode()}") from None

    def dump(self, kind: str, program_id: int | None = None) -> list[dict[str, Any]]:
        """Rows of `kind` (leads, program_members, fields, calls, and the bulk kinds)."""
        query = f"?programId={program_id}" if program_id else ""
        return self._call("GET", f"/_sandbox/dump/{kind}{query}")

    def inject_fault(
        self,
        path_glob: str,
        kind: str,
        *,
        method: str | None = None,
        count: int = 1,
        every: int | None = None,
        delay: float | None = None,
    ) -> dict[str, Any]:
        """Arm a fault (see `marketo_sandbox.faults.Fault` for count/every semantics)."""
        spec = {"path": path_glob, "kind": kind, "method": method, "count": count}
        spec.update(every=every, delay=delay)
        return self._call("POST", "/_sandbox/faults", spec)

    def faults(self) -> list[dict[str, Any]]:
        """Armed faults with their counters."""
        return self._call("GET", "/_sandbox/faults")

    def clear_faults(self) -> None:
        """Disarm every fault."""
        self._call("DELETE", "/_sandbox/faults")

    def set_options(self, **changes: Any) -> dict[str, Any]:
        """Change run-time options; returns them all."""
        return self._call("POST", "/_sandbox/options", changes)

    def options(self) -> dict[str, Any]:
        """Current run-time options."""
        return self._call("GET", "/_sandbox/options")

    def touch_members(self, program_id: int, lead_ids: list[int], **field_values: Any) -> int:
        """Set member fields and bump their updatedAt to sandbox-now; returns members changed."""
        body = {"programId": program_id, "leadIds": list(lead_ids), "fields": field_values}
        return self._call("POST", "/_sandbox/members/touch", body)["updated"]

    def now(self) -> str:
        """Sandbox time, ISO-8601."""
        return self._call("GET", "/_sandbox/now")["now"]

    def advance(self, seconds: float) -> str:
        """Move sandbox time forward; returns the new time."""
        return self._call("POST", "/_sandbox/now", {"advanceSeconds": seconds})["now"]

    def limits(self) -> dict[str, int]:
        """REST calls counted today (`dailyUsed`) and in flight (`inFlight`)."""
        return self._call("GET", "/_sandbox/limits")

    def expire_tokens(self) -> int:
        """Expire every issued token now."""
        return self._call("POST", "/_sandbox/tokens/expire", {})["expired"]

    def ingestion(self, request_id: str | None = None) -> dict[str, Any]:
        """Data Ingestion after the 202: `pending` requests and `failures` (all, or one id's)."""
        query = f"?requestId={request_id}" if request_id else ""
        return self._call("GET", f"/_sandbox/ingestion{query}")

    def wait_ingestion(self, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until every accepted Data Ingestion request is applied; returns the failures.

        Requests are applied a little after their 202 (sandbox time), so a test reading what a
        target wrote waits here first.
        """
        deadline = time.monotonic() + timeout
        while True:
            state = self.ingestion()
            if not state["pending"]:
                return state["failures"]
            if time.monotonic() > deadline:
                raise AdminError(f"Data Ingestion still has {state['pending']} requests pending")
            time.sleep(0.02)

    def reset(self, seed: str | None = "demo", members: int = 0) -> None:
        """Empty the db and seed it again."""
        self._call("POST", "/_sandbox/reset", {"seed": seed, "members": members})
