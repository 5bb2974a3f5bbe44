"""The ASGI app: routes of every API family, the middleware, and the shared state."""

from __future__ import annotations

import contextlib
import inspect
import logging
import threading
import time
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import Response

from marketo_sandbox.admin import ADMIN
from marketo_sandbox.bulk.routes import BULK
from marketo_sandbox.chaos import parse_spec
from marketo_sandbox.clock import Clock
from marketo_sandbox.envelope import JSONResponse, MarketoHTTPError, error
from marketo_sandbox.faults import FaultMiddleware, Faults, is_admin
from marketo_sandbox.identity import IDENTITY, ApiUser, Identity
from marketo_sandbox.ingestion.routes import INGESTION
from marketo_sandbox.jobs import Scheduler
from marketo_sandbox.limits import RELAXED, STRICT, RestLimits, RestLimitsMiddleware
from marketo_sandbox.options import CORE_OPTIONS, Options, check_options
from marketo_sandbox.rest.routes import REST
from marketo_sandbox.state import SandboxState
from marketo_sandbox.storage import Store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence

    from starlette.requests import Request
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from marketo_sandbox.family import DumpFn, Family, Hook

log = logging.getLogger("marketo_sandbox.requests")
_SMALL_BODY = 8192

DEFAULT_MUNCHKIN_ID = "123-ABC-456"
#: Query/form parameters never written to the request log.
SECRET_PARAMS = frozenset({"access_token", "client_secret", "client_id_secret", "password"})


def redact_query(query: str) -> str:
    """A query string with secret values replaced, for logs."""
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, "REDACTED" if k.lower() in SECRET_PARAMS else v) for k, v in pairs])


class RequestLogMiddleware:
    """Records every API call in the `calls` table and logs a line; never a token or a secret.

    Kept: method, path, redacted query, HTTP status, Marketo error code, API user, duration.
    """

    def __init__(self, app: ASGIApp, store: Store, options: Options) -> None:
        self.app = app
        self.store = store
        self.options = options

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the call on, watching its reply."""
        if scope["type"] != "http" or is_admin(scope["path"]):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen: dict[str, Any] = {"status": 500, "code": None}

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
            elif message["type"] == "http.response.body" and seen["code"] is None:
                body = message.get("body", b"")
                if len(body) < _SMALL_BODY and b'"success":false' in body:
                    with contextlib.suppress(Exception):
                        seen["code"] = orjson.loads(body)["errors"][0]["code"]
                elif len(body) < _SMALL_BODY and b'"error_code"' in body:
                    with contextlib.suppress(Exception):
                        seen["code"] = str(orjson.loads(body)["error_code"])
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            user = scope.get("state", {}).get("api_user")
            query = redact_query(scope.get("query_string", b"").decode("latin-1"))
            millis = (time.perf_counter() - started) * 1000
            if self.options.get("log_calls", True):
                self.store.calls.log(
                    (
                        self.store.clock.now_iso(),
                        scope["method"],
                        scope["path"],
                        query,
                        seen["status"],
                        seen["code"],
                        user.client_id if user else None,
                        round(millis, 2),
                    )
                )
            log.info(
                "%s %s%s -> %s%s (%.1f ms)",
                scope["method"],
                scope["path"],
                f"?{query}" if query else "",
                seen["status"],
                f" code {seen['code']}" if seen["code"] else "",
                millis,
            )


def _ingestion(request: Request) -> bool:
    """Data Ingestion answers `{error_code, message}`, not the REST envelope."""
    return request.url.path.startswith("/subscriptions/")


async def _marketo_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MarketoHTTPError)
    if _ingestion(request):
        status = exc.http_status if exc.http_status != 200 else 400  # noqa: PLR2004
        return JSONResponse({"error_code": exc.code, "message": exc.message}, status_code=status)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if _ingestion(request):
        # the gateway's "Resource not found" for any path or method it does not route (assumed)
        body = {"error_code": "404040", "message": "Resource not found"}
        return JSONResponse(body, status_code=404)
    if exc.status_code == HTTPStatus.NOT_FOUND:
        return error(610, "Requested resource not found", http_status=404)
    if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        return error(605, f"HTTP Method '{request.method}' not supported")
    if request.headers.get("content-type", "").startswith("multipart/"):
        # Starlette's form parser refuses a malformed multipart body with a 400
        return error(613, f"Invalid multipart request: {exc.detail}")
    return error(exc.status_code, exc.detail, http_status=exc.status_code)


async def _unexpected(request: Request, exc: Exception) -> Response:
    """Any bug becomes Marketo's 611 instead of a traceback page (the traceback goes to the log)."""
    log.error("unhandled error on %s %s: %r", request.method, request.url.path, exc)
    if _ingestion(request):
        body = {"error_code": "5000801", "message": "Internal Server Error"}
        return JSONResponse(body, status_code=500)
    return error(611, "System error", http_status=500)


def api_users(config: Mapping[str, Any]) -> list[ApiUser]:
    """API users from config: `api_users` [{client_id, client_secret, email?}] or the pair."""
    users = [
        ApiUser(u["client_id"], u["client_secret"], u.get("email") or f"{u['client_id']}@sandbox")
        for u in config.get("api_users") or []
    ]
    if not users:
        cid = config.get("client_id", "sandbox-client")
        users.append(ApiUser(cid, config.get("client_secret", "sandbox-secret"), f"{cid}@sandbox"))
    return users


async def _call_hook(hook: Hook | None, app: Starlette) -> None:
    if hook is None:
        return
    result = hook(app)
    if inspect.isawaitable(result):
        await result


#: Every API family, in routing order; nothing is found by import or registered as a side effect.
FAMILIES: tuple[Family, ...] = (IDENTITY, REST, BULK, INGESTION, ADMIN)


def family_dumps(families: Sequence[Family] = FAMILIES) -> dict[str, DumpFn]:
    """The admin dump kinds of the families (`/_sandbox/dump/{kind}`, `marketo-sandbox dump`)."""
    return {kind: fn for family in families for kind, fn in family.dumps.items()}


def open_store(db_path: str | Path, clock: Clock | None = None) -> Store:
    """The store with the core tables and every family's."""
    schemas = [family.schema for family in FAMILIES if family.schema]
    return Store(Path(db_path), clock, schemas=schemas)


def _files_dir(db_path: str) -> Path:
    """Export and import files beside the SQLite database, so restarts keep them."""
    base = Path(db_path).with_name(Path(db_path).name + ".files")
    for sub in ("exports", "imports"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    return base


def create_app(config: Mapping[str, Any]) -> Starlette:
    """Build the sandbox app: the core parts, then the families, composed here.

    config keys: `db_path` (required), `munchkin_id`, `client_id`/`client_secret` or
    `api_users`, `time_scale`, `strict`, `options` (overrides of the run-time options), `chaos`
    ("RATE[:SEED]" or {rate, seed}: chaos mode, chaos.py).
    """
    clock = Clock(float(config.get("time_scale", 1.0)))
    store = open_store(config["db_path"], clock)
    base = {**CORE_OPTIONS, **(STRICT if config.get("strict") else RELAXED)}
    base.update(orjson.loads(store.db.get_meta("options") or "{}"))
    check_options(config.get("options") or {})
    base.update(config.get("options") or {})
    options = Options(store.db, base)
    limits = RestLimits(options, day=clock.quota_day)
    limits.restore(orjson.loads(store.db.get_meta("rest_daily") or "{}"))
    faults = Faults()
    if config.get("chaos"):
        faults.chaos.arm(*parse_spec(config["chaos"]))
    scheduler = Scheduler(store, clock)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stop = threading.Event()

        def save() -> None:
            store.calls.flush()
            store.db.save_clock()
            store.db.set_meta("rest_daily", orjson.dumps(limits.snapshot()).decode())

        def flusher() -> None:  # the request log is written in batches, off the event loop
            while not stop.wait(0.5):
                with contextlib.suppress(Exception):
                    save()

        thread = threading.Thread(target=flusher, name="sandbox-flusher", daemon=True)
        thread.start()
        # at once, so jobs running when the server died resume now
        scheduler.start()
        for family in FAMILIES:
            await _call_hook(family.on_startup, app)
        try:
            yield
        finally:
            for family in FAMILIES:
                await _call_hook(family.on_shutdown, app)
            # workers are daemons; their jobs resume on restart
            scheduler.stop()
            stop.set()
            thread.join(timeout=5)
            save()
            store.close()

    app = Starlette(
        routes=[route for family in FAMILIES for route in family.routes],
        middleware=[
            # Limits before faults: a `slow` call holds its concurrency slot, as a slow
            # Marketo call does.
            Middleware(RequestLogMiddleware, store=store, options=options),
            *(m for family in FAMILIES for m in family.middleware),
            Middleware(RestLimitsMiddleware, limits=limits),
            Middleware(FaultMiddleware, faults=faults),
            Middleware(UriLengthMiddleware, options=options),
        ],
        exception_handlers={
            MarketoHTTPError: _marketo_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
        lifespan=lifespan,
    )
    app.state.sandbox = SandboxState(
        config=dict(config),
        munchkin_id=config.get("munchkin_id") or DEFAULT_MUNCHKIN_ID,
        store=store,
        clock=clock,
        faults=faults,
        options=options,
        limits=limits,
        identity=Identity(store, api_users(config), options),
        scheduler=scheduler,
        files_dir=_files_dir(str(config["db_path"])),
        families=FAMILIES,
        dumps=family_dumps(),
    )
    for family in FAMILIES:
        if family.jobs is not None:
            family.jobs(app, scheduler)
    return app


class UriLengthMiddleware:
    """HTTP 414 for request URIs over 8 KB and 413 for REST bodies over 1 MB, as Marketo does."""

    MAX_URI = 8192

    def __init__(self, app: ASGIApp, options: Options) -> None:
        self.app = app
        self.options = options

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse oversized requests before routing."""
        if scope["type"] == "http" and not is_admin(scope["path"]):
            uri = len(scope.get("raw_path") or scope["path"].encode()) + len(scope["query_string"])
            if uri + 1 > self.MAX_URI:
                await Response("414, URI too long", status_code=414)(scope, receive, send)
                return
            if scope["path"].startswith("/rest/"):
                length = dict(scope["headers"]).get(b"content-length")
                limit = self.options.get("rest_max_body_bytes", 1_048_576)
                if length and length.isdigit() and int(length) > limit:
                    await Response("413, Request Entity Too Large", status_code=413)(
                        scope, receive, send
                    )
                    return
        await self.app(scope, receive, send)
