"""Request parsing shared by the REST endpoints: every bad input becomes a Marketo code."""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from starlette.concurrency import run_in_threadpool

from marketo_sandbox.envelope import MarketoHTTPError
from marketo_sandbox.identity import ApiUser, authenticate
from marketo_sandbox.repos.fields import FieldRepository
from marketo_sandbox.storage import check_value

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from starlette.requests import Request

T = TypeVar("T")
MAX_BATCH = 300


async def db(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a store call in a worker thread, off the event loop."""
    return await run_in_threadpool(fn, *args, **kwargs)


def user(request: Request) -> ApiUser:
    """The caller (600/601/602 otherwise)."""
    return authenticate(request)


def _is_form(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")


async def method_override(request: Request) -> bool:
    """True for `POST ...?_method=GET` or a form body with `_method=GET`.

    That is Marketo's way around the 8 KB URI limit.
    """
    if request.method != "POST":
        return False
    if request.query_params.get("_method", "").upper() == "GET":
        return True
    if _is_form(request):
        form = await request.form()
        return str(form.get("_method", "")).upper() == "GET"
    return False


async def query_params(request: Request) -> dict[str, str]:
    """Query parameters, merged with a form body for `_method=GET` posts."""
    params = dict(request.query_params)
    if request.method == "POST" and _is_form(request):
        form = await request.form()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    params.pop("_method", None)
    return params


async def json_body(request: Request) -> dict[str, Any]:
    """The JSON object body; 612 for another content type, 609 for bad JSON."""
    ctype = request.headers.get("content-type", "")
    if not ctype.split(";")[0].strip().lower() == "application/json":
        raise MarketoHTTPError(612, f"Invalid Content Type '{ctype or 'none'}'")
    raw = await request.body()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MarketoHTTPError(609, "Invalid JSON") from None
    if not isinstance(body, dict):
        raise MarketoHTTPError(609, "Invalid JSON: an object was expected")
    return body


def input_list(body: Mapping[str, Any], limit: int = MAX_BATCH) -> list[Any]:
    """The `input` array (1002 missing, 1001 not an array, 1003 over `limit` items)."""
    if "input" not in body:
        raise MarketoHTTPError(1002, "Missing value for required parameter 'input'")
    items = body["input"]
    if not isinstance(items, list):
        raise MarketoHTTPError(1001, "Invalid value for 'input'. Required of type 'Array'")
    if not items:
        raise MarketoHTTPError(1003, "'input' cannot be empty")
    if len(items) > limit:
        raise MarketoHTTPError(1003, f"Input array size {len(items)} exceeds the limit {limit}")
    return items


def int_param(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """An integer parameter: 1001 when not an integer, 1003 outside [low, high]."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise MarketoHTTPError(1001, f"Invalid value '{raw}'. Required of type 'Integer'") from None
    if not low <= value <= high:
        raise MarketoHTTPError(1003, f"Invalid value '{value}' for '{name}': {low}..{high}")
    return value


def list_param(params: Mapping[str, str], name: str) -> list[str]:
    """A comma-separated parameter (e.g. `fields`) as its non-empty items."""
    raw = params.get(name)
    return [f.strip() for f in raw.split(",") if f.strip()] if raw else []


def filter_values(field: dict[str, Any], raw: str) -> list[Any]:
    """`filterValues`: at most 300 comma-separated values, each typed for `field` (1003)."""
    values = [v.strip() for v in raw.split(",")]
    if len(values) > MAX_BATCH:
        raise MarketoHTTPError(1003, f"filterValues has {len(values)} values; at most 300")
    try:
        return [check_value(field, v) for v in values]
    except ValueError as exc:
        raise MarketoHTTPError(1003, str(exc)) from None


def page_extra(token: str | None) -> dict[str, Any]:
    """`moreResult`, and `nextPageToken` when there is another page."""
    return {"moreResult": True, "nextPageToken": token} if token else {"moreResult": False}


def describe_fields(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Field records as the REST describe calls show them (no `isCustom`)."""
    described = FieldRepository.describe_records(records)
    return [{k: v for k, v in f.items() if k != "isCustom"} for f in described]


def encode_token(kind: str, value: int | str) -> str:
    """A Marketo-looking page token (base32 with padding) for `kind:value`."""
    return base64.b32encode(f"{kind}:{value}".encode()).decode()


def decode_token(token: str | None, kind: str) -> str | None:
    """The value of a page token made by `encode_token(kind, ...)`; 1003 if it is not one."""
    if not token:
        return None
    try:
        text = base64.b32decode(token.encode(), casefold=True).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        text = ""
    prefix, sep, value = text.partition(":")
    if not sep or prefix != kind:
        raise MarketoHTTPError(1003, "Invalid nextPageToken")
    return value
