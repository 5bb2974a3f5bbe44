"""The ASGI app: routes of every API family, the middleware, and the shared state."""

from __future__ import annotations

import contextlib
import importlib
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

from marketo_sandbox import admin, identity
from marketo_sandbox.clock import Clock
from marketo_sandbox.envelope import JSONResponse, MarketoHTTPError, error
from marketo_sandbox.faults import FaultMiddleware, Faults, is_admin
from marketo_sandbox.identity import ApiUser, Identity
from marketo_sandbox.limits import RELAXED, STRICT, RestLimits, RestLimitsMiddleware
from marketo_sandbox.storage import MAX_CUSTOM_PM_FIELDS, Store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

    from starlette.requests import Request
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("marketo_sandbox.requests")
_SMALL_BODY = 8192

DEFAULT_MUNCHKIN_ID = "123-ABC-456"
#: API families built on the core, mounted when importable. Each module has `ROUTES` (a list of
#: Starlette routes) and may have `on_startup(app)` / `on_shutdown(app)` (sync or async), run
#: by the app's lifespan, e.g. to start job workers, `on_reset(app)`, run after
#: `/_sandbox/reset` emptied the db, and `MIDDLEWARE` (Starlette middleware, inside the log).
FAMILY_MODULES = ("marketo_sandbox.bulk.routes", "marketo_sandbox.ingestion.routes")
#: Query/form parameters never written to the request log.
SECRET_PARAMS = frozenset({"access_token", "client_secret", "client_id_secret", "password"})

CORE_OPTIONS: dict[str, Any] = {
    "token_ttl_seconds": 3600,
    "rest_member_filter_limit": 100_000,
    # "total": refuse a non-leadId filter when the program has more members than the limit;
    # "matching": only when the matching members do (both exist, per subscription).
    "rest_member_limit_mode": "total",
    "rest_max_body_bytes": 1_048_576,
    "max_custom_program_member_fields": MAX_CUSTOM_PM_FIELDS,
    "updated_at_filter_supported": True,
    "log_calls": True,
}


def check_options(changes: Mapping[str, Any]) -> None:
    """Refuse core options of the wrong type (ValueError naming the option).

    A number stays a non-negative number, a flag a bool: a typo must not turn every later call
    into an error.
    """
    for key, value in changes.items():
        default = {**CORE_OPTIONS, **RELAXED}.get(key)
        if key == "rest_member_limit_mode":
            ok = value in ("total", "matching")
        elif isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, (int, float)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
        else:
            ok = True
        if not ok:
            raise ValueError(f"option {key!r}: invalid value {value!r}")


class Options(dict):
    """Run-time settings (`/_sandbox/options`); admin changes are kept in the db across restarts.

    Families read their own keys with `options.get(key, default)`.
    """

    def __init__(self, store: Store, base: Mapping[str, Any]) -> None:
        super().__init__(base)
        self.store = store

    def apply(self, changes: Mapping[str, Any], persist: bool = True) -> None:
        """Set options; persisted ones come back after a restart.

        Core options are checked (`check_options`); other keys belong to families.
        """
        check_options(changes)
        self.update(changes)
        if persist:
            saved = orjson.loads(self.store.get_meta("options") or "{}")
            saved.update(changes)
            self.store.set_meta("options", orjson.dumps(saved).decode())


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
                self.store.log_call(
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


def load_families() -> list[Any]:
    """The importable family route modules (bulk, ingestion)."""
    modules = [_import_family(name) for name in FAMILY_MODULES]
    return [m for m in modules if m is not None]


def _import_family(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            return None  # that family is not built (yet)
        raise


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


async def _call_hook(hook: Any, app: Starlette) -> None:
    result = hook(app)
    if inspect.isawaitable(result):
        await result


def create_app(config: Mapping[str, Any]) -> Starlette:
    """Build the sandbox app.

    config keys: `db_path` (required), `munchkin_id`, `client_id`/`client_secret` or
    `api_users`, `time_scale`, `strict`, `options` (overrides of the run-time options).
    """
    from marketo_sandbox import rest  # noqa: PLC0415 - rest imports app helpers lazily

    families = load_families()  # imported first: they register their schemas
    clock = Clock(float(config.get("time_scale", 1.0)))
    store = Store(Path(config["db_path"]), clock)
    base = {**CORE_OPTIONS, **(STRICT if config.get("strict") else RELAXED)}
    base.update(orjson.loads(store.get_meta("options") or "{}"))
    check_options(config.get("options") or {})
    base.update(config.get("options") or {})
    options = Options(store, base)
    faults = Faults()
    limits = RestLimits(options, day=clock.quota_day)
    limits.restore(orjson.loads(store.get_meta("rest_daily") or "{}"))
    ident = Identity(store, api_users(config), options)

    routes = [*identity.ROUTES, *rest.ROUTES, *admin.ROUTES]
    for module in families:
        routes.extend(module.ROUTES)
    family_middleware = [m for module in families for m in getattr(module, "MIDDLEWARE", [])]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stop = threading.Event()

        def save() -> None:
            store.flush_calls()
            store.save_clock()
            store.set_meta("rest_daily", orjson.dumps(limits.snapshot()).decode())

        def flusher() -> None:  # the request log is written in batches, off the event loop
            while not stop.wait(0.5):
                with contextlib.suppress(Exception):
                    save()

        thread = threading.Thread(target=flusher, name="sandbox-flusher", daemon=True)
        thread.start()
        for module in families:
            if hasattr(module, "on_startup"):
                await _call_hook(module.on_startup, app)
        try:
            yield
        finally:
            for module in families:
                if hasattr(module, "on_shutdown"):
                    await _call_hook(module.on_shutdown, app)
            stop.set()
            thread.join(timeout=5)
            save()
            store.close()

    app = Starlette(
        routes=routes,
        middleware=[
            # Limits before faults: a `slow` call holds its concurrency slot, as a slow
            # Marketo call does.
            Middleware(RequestLogMiddleware, store=store, options=options),
            *family_middleware,
            Middleware(RestLimitsMiddleware, limits=limits),
            Middleware(FaultMiddleware, faults=faults),
            Middleware(UriLengthMiddleware),
        ],
        exception_handlers={
            MarketoHTTPError: _marketo_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
        lifespan=lifespan,
    )
    app.state.config = dict(config)
    app.state.munchkin_id = config.get("munchkin_id") or DEFAULT_MUNCHKIN_ID
    app.state.store = store
    app.state.clock = clock
    app.state.faults = faults
    app.state.options = options
    app.state.limits = limits
    app.state.identity = ident
    return app


class UriLengthMiddleware:
    """HTTP 414 for request URIs over 8 KB and 413 for REST bodies over 1 MB, as Marketo does."""

    MAX_URI = 8192

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse oversized requests before routing."""
        if scope["type"] == "http" and not is_admin(scope["path"]):
            uri = len(scope.get("raw_path") or scope["path"].encode()) + len(scope["query_string"])
            if uri + 1 > self.MAX_URI:
                await Response("414, URI too long", status_code=414)(scope, receive, send)
                return
            if scope["path"].startswith("/rest/"):
                length = dict(scope["headers"]).get(b"content-length")
                limit = scope["app"].state.options.get("rest_max_body_bytes", 1_048_576)
                if length and length.isdigit() and int(length) > limit:
                    await Response("413, Request Entity Too Large", status_code=413)(
                        scope, receive, send
                    )
                    return
        await self.app(scope, receive, send)
