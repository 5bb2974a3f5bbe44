"""The Data Ingestion request pipeline every object type shares.

Token only in `X-Mkto-User-Token`; JSON bodies up to 1 MB and 1000 objects; a per-second request
rate per client id (wall clock) and a daily object quota (sandbox day); 202 with an empty body,
or `{error_code, message}`; every response, errors included, carries `X-Request-Id`
(`RequestIdMiddleware`).

Codes from the page's tables: 403010 token missing, 401013 token invalid or expired, 404040
unknown subscription or object, 4000801 bad request, 4000802 invalid data (names the first bad
object), 429001 request rate, 4290801 daily object quota, 5000801 internal error. Where the page
is silent the sandbox follows its pattern (HTTP status, 0, 3 digits): 4130801 body over 1 MB.
"""

from __future__ import annotations

import collections
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from marketo_sandbox.envelope import MarketoHTTPError
from marketo_sandbox.identity import authenticate
from marketo_sandbox.state import state_of
from marketo_sandbox.storage import coerce

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.applications import Starlette
    from starlette.requests import Request

MAX_BODY_BYTES = 1024 * 1024
MAX_OBJECTS = 1000
TOKEN_HEADER = "X-Mkto-User-Token"  # noqa: S105 - a header name, not a secret
REQUEST_ID_HEADER = "X-Request-Id"
#: The page's request headers and their maximum lengths ("Headers" > "Request").
TRACE_HEADERS = {"X-Correlation-Id": 255, "X-Request-Source": 50}
PREFIX = "/subscriptions/"

DEFAULTS: dict[str, Any] = {
    "ingestion_requests_per_second": 5000,
    "ingestion_daily_object_limit": 10_000_000,
    "ingestion_apply_delay_seconds": 5.0,
}


def option(request_or_app: Any, name: str) -> Any:
    """An ingestion option, falling back to its default."""
    app = getattr(request_or_app, "app", request_or_app)
    value = state_of(app).options.get(name)
    return DEFAULTS.get(name) if value is None else value


class IngestionError(MarketoHTTPError):
    """`{error_code, message}` with a non-202 status (the app renders it for /subscriptions)."""

    def __init__(self, http_status: int, code: str, message: str) -> None:
        super().__init__(code, message, http_status)


def bad_request(message: str) -> IngestionError:
    """4000801: the request as a whole is wrong."""
    return IngestionError(400, "4000801", message)


def invalid_data(index: str | int, message: str) -> IngestionError:
    """4000802 naming the first bad object, e.g. `persons[3]`."""
    where = f"index {index}" if isinstance(index, int) else str(index)
    return IngestionError(400, "4000802", f"Invalid data at {where}: {message}")


class _RateWindow:
    """Requests per second per client id, on the wall clock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, collections.deque[float]] = collections.defaultdict(
            collections.deque
        )

    def admit(self, client: str, limit: int) -> bool:
        now = time.monotonic()
        with self._lock:
            window = self._calls[client]
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= limit:
                return False
            window.append(now)
            return True


_RATES: dict[int, _RateWindow] = {}
_RATES_LOCK = threading.Lock()


def _rate_window(app: Any) -> _RateWindow:
    with _RATES_LOCK:
        return _RATES.setdefault(id(app), _RateWindow())


def _authenticate(request: Request) -> str:
    """The caller's client id, or the page's token errors.

    403 403010 without the header (a token in the URL or in `Authorization` does not count),
    401 401013 for an unknown or expired token.
    """
    try:
        user = authenticate(request, allow_query_token=False, header=TOKEN_HEADER)
    except MarketoHTTPError as exc:
        if exc.code == "600":
            raise IngestionError(
                403, "403010", f"Oauth token is missing: send it in the {TOKEN_HEADER} header"
            ) from None
        messages = {"601": "Oauth token is invalid", "602": "Oauth token is invalid (expired)"}
        raise IngestionError(401, "401013", messages.get(exc.code, exc.message)) from None
    return user.client_id


def request_id(request: Request) -> str:
    """The id `RequestIdMiddleware` gave this request."""
    return request.scope.get("state", {}).get("ingestion_request_id") or str(uuid.uuid4())


def trace_headers(request: Request) -> dict[str, str]:
    """`X-Correlation-Id` and `X-Request-Source` as sent; 4000801 past their lengths.

    The page gives the maximum lengths but no code: 4000801 "Bad request" is assumed.
    """
    out = {}
    for name, limit in TRACE_HEADERS.items():
        value = request.headers.get(name)
        if value is None:
            continue
        if len(value) > limit:
            raise bad_request(f"{name} is {len(value)} characters long; at most {limit}")
        out[name] = value
    return out


class RequestIdMiddleware:
    """Gives every `/subscriptions/` request an id and sends it as `X-Request-Id`.

    Outside the handlers, so faults, 404s and internal errors carry it too ("Every response
    returns a unique request ID").
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Tag the request and its response start."""
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        rid = str(uuid.uuid4())
        scope.setdefault("state", {})["ingestion_request_id"] = rid
        header = (REQUEST_ID_HEADER.lower().encode(), rid.encode())

        async def tagged(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != header[0]]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        await self.app(scope, receive, tagged)


async def _read_body(request: Request) -> bytes:
    """The body, refusing (413) as soon as it passes 1 MB, without reading further."""
    length = request.headers.get("content-length")
    too_big = IngestionError(413, "4130801", "Request Entity Too Large: the limit is 1 MB")
    if length and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def count_objects(request: Request, objects: int) -> None:
    """Charge the daily object quota (sandbox day, kept in SQLite); 4290801 when it would pass."""
    app = request.app
    limit = int(option(request, "ingestion_daily_object_limit"))
    day = str(state_of(app).clock.quota_day())
    with state_of(app).store.db.tx() as conn:
        row = conn.execute("SELECT objects FROM ingestion_usage WHERE day = ?", (day,)).fetchone()
        used = row[0] if row else 0
        if used + objects > limit:
            raise IngestionError(
                429, "4290801", f"Daily object quota exceeded ({used} of {limit} used today)"
            )
        conn.execute(
            "INSERT INTO ingestion_usage (day, objects) VALUES (?, ?) "
            "ON CONFLICT (day) DO UPDATE SET objects = objects + excluded.objects",
            (day, objects),
        )


async def handle(
    request: Request,
    validate: Callable[[Request, dict], tuple[str, dict, int]],
    accept: Callable[[Starlette, str, dict, str], None],
) -> Response:
    """Run the shared checks, the object type's `validate` → (kind, plan, objects), then accept.

    `accept(app, kind, plan, request_id)` parks the request to apply (`apply.accept`).
    """
    client = _authenticate(request)
    munchkin = request.path_params.get("munchkinId")
    if munchkin != state_of(request).munchkin_id:
        raise IngestionError(404, "404040", f"Subscription '{munchkin}' not found")
    limit = int(option(request, "ingestion_requests_per_second"))
    if not _rate_window(request.app).admit(client, limit):
        raise IngestionError(429, "429001", f"Too many requests: limit {limit} per second")
    if request.query_params:
        raise bad_request("Query parameters are not accepted")
    traces = trace_headers(request)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise bad_request("Content-Type must be application/json")
    raw = await _read_body(request)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad_request("Malformed JSON body") from None
    if not isinstance(body, dict):
        raise bad_request("The body must be a JSON object")
    kind, plan, objects = validate(request, body)
    count_objects(request, objects)
    rid = request_id(request)
    plan["request"] = {"clientId": client, **traces}
    if state_of(request).faults.take_kind("ingest_failed", request.url.path, "POST"):
        plan["failWhole"] = objects  # accepted now, all its objects fail when applied (chaos.py)
    await run_in_threadpool(accept, request.app, kind, plan, rid)
    return Response(status_code=202, headers={REQUEST_ID_HEADER: rid})


def one_of(body: dict, names: tuple[str, ...], what: str) -> Any:
    """The value of exactly one of `names` (Marketo accepts aliases such as input/persons)."""
    present = [n for n in names if n in body]
    if len(present) > 1:
        raise bad_request(f"Give only one of {', '.join(present)}")
    if not present:
        raise bad_request(f"{what} is required ({' or '.join(names)})")
    return body[present[0]]


def object_list(value: Any, what: str) -> list:
    """A non-empty array of at most 1000 objects."""
    if not isinstance(value, list) or not value:
        raise bad_request(f"{what} must be a non-empty array")
    if len(value) > MAX_OBJECTS:
        raise bad_request(f"Too many objects: {len(value)} {what} (limit {MAX_OBJECTS})")
    return value


def check_priority(body: dict) -> str:
    """`priority`: normal (default) or high."""
    priority = body.get("priority", "normal")
    if priority not in ("normal", "high"):
        raise bad_request(f"Invalid priority '{priority}': normal or high")
    return priority


def check_keys(body: dict, allowed: tuple[str, ...]) -> None:
    """4000801 for an attribute the endpoint's table does not list (the page gives no code)."""
    unknown = [k for k in body if k not in allowed]
    if unknown:
        raise bad_request(f"Unknown attribute '{unknown[0]}'")


def dedupe_by(body: dict, choices: tuple[str, ...]) -> str:
    """`dedupeBy` (default dedupeFields), matched case-insensitively, as its canonical spelling."""
    value = body.get("dedupeBy", choices[0])
    by_lower = {c.lower(): c for c in choices}
    if not isinstance(value, str) or value.lower() not in by_lower:
        raise bad_request(f"Invalid dedupeBy '{value}': {' or '.join(choices)}")
    return by_lower[value.lower()]


def canonical_names(
    index: int | str, record: dict, fields: dict[str, str], what: str, suffix: str = ""
) -> dict:
    """The record with each name as the field list spells it (the page: case-insensitive).

    4000802 for an unknown name, or one given twice in different cases.
    """
    by_lower = {name.lower(): name for name in fields}
    out: dict[str, Any] = {}
    for name, value in record.items():
        canonical = by_lower.get(name.lower()) if isinstance(name, str) else None
        if canonical is None:
            raise invalid_data(index, f"unknown field '{name}'{suffix}")
        if canonical in out:
            raise invalid_data(index, f"field '{canonical}' is given twice in {what}")
        out[canonical] = value
    return out


def coerce_record(
    index: int | str,
    record: Any,
    fields: dict[str, str],
    what: str,
    unknown_suffix: str = "",
    *,
    any_case: bool = False,
) -> dict:
    """A non-empty object whose every field is known, coerced to its data type.

    `any_case`: field names match whatever their case (companies, program member fields).
    """
    if not isinstance(record, dict) or not record:
        raise invalid_data(index, f"{what} must be a non-empty object")
    if any_case:
        record = canonical_names(index, record, fields, what, unknown_suffix)
    row = {}
    for name, value in record.items():
        kind = fields.get(name)
        if kind is None:
            raise invalid_data(index, f"unknown field '{name}'{unknown_suffix}")
        try:
            row[name] = coerce(kind, value)
        except (ValueError, TypeError):
            raise invalid_data(index, f"invalid value for field '{name}' ({kind})") from None
    return row


#: The JSON-data tables `merge_data` updates, each with its fixed statement.
_MERGE_DATA = {
    "companies": "UPDATE companies SET data = ?, updated_at = ? WHERE id = ?",
    "custom_objects": "UPDATE custom_objects SET data = ?, updated_at = ? WHERE marketo_guid = ?",
}


def merge_data(conn: Any, table: str, found: Any, values: dict, *, now: str) -> None:
    """Update a stored JSON `data` row (`found` = key, data) with `values`."""
    data = orjson.loads(found[1])
    data.update(values)
    conn.execute(
        _MERGE_DATA[table],
        (dumps(data), now, found[0]),
    )


def dumps(value: Any) -> str:
    """Compact JSON text."""
    return orjson.dumps(value).decode()
