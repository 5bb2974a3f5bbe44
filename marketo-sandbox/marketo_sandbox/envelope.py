"""Marketo's REST envelope: requestId, success, errors, warnings, result, moreResult, ..."""

from __future__ import annotations

import itertools
import secrets
import time
from typing import Any

import orjson
from starlette.responses import Response

_SEQ = itertools.count(secrets.randbelow(0xFFFF))


def request_id() -> str:
    """A Marketo-looking request id: `<hex counter>#<hex epoch ms>`, e.g. `1a2b#17f3c...`."""
    return f"{next(_SEQ) & 0xFFFFF:x}#{int(time.time() * 1000):x}"


class JSONResponse(Response):
    """JSON via orjson (fast, handles unicode without escaping)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Serialise with orjson."""
        return orjson.dumps(content)


def ok(result: list | None, **extra: Any) -> Response:
    """A success envelope; `extra` adds moreResult, nextPageToken, warnings...

    `result=None` leaves the key out, as Marketo does for calls with nothing to return.
    """
    body: dict[str, Any] = {"requestId": request_id()}
    if result is not None:
        body["result"] = result
    body["success"] = True
    body.update(extra)
    return JSONResponse(body)


def error(code: int | str, message: str, http_status: int = 200) -> Response:
    """A failure envelope; Marketo answers HTTP 200 with `success: false` and codes as strings."""
    body = {
        "requestId": request_id(),
        "success": False,
        "errors": [{"code": str(code), "message": message}],
    }
    return JSONResponse(body, status_code=http_status)


def reason(code: int | str, message: str) -> dict[str, str]:
    """One entry of a record-level `reasons` array."""
    return {"code": str(code), "message": message}


class MarketoHTTPError(Exception):
    """Raised anywhere in a handler; the app turns it into `error(code, message, http_status)`.

    Data Ingestion paths (`/subscriptions/...`) get `{error_code, message}` instead.
    """

    def __init__(self, code: int | str, message: str, http_status: int = 200) -> None:
        super().__init__(f"{code} {message}")
        self.code = str(code)
        self.message = message
        self.http_status = http_status

    def response(self) -> Response:
        """The envelope for this error."""
        return error(self.code, self.message, self.http_status)
