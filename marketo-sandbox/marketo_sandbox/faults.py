"""Deterministic fault injection: a fault fires on the next N matching calls, or on every k-th."""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import itertools
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from starlette.responses import Response

from marketo_sandbox.chaos import Chaos
from marketo_sandbox.envelope import error

#: Applied by the HTTP middleware before the endpoint runs (`reset`: while the body streams).
HTTP_KINDS = frozenset(
    {
        "http_500",
        "http_502",
        "http_503",
        "reset",
        "slow",
        "token_invalid",
        "token_expired",
        "rate_limit",
        "concurrency",
    }
)
#: Taken by the bulk/ingestion code at the moment the fault makes sense, via `take_kind`.
JOB_KINDS = frozenset(
    {
        "too_many_jobs",
        "export_quota",
        "too_many_imports",
        "job_failed",
        "truncate",
        "bad_checksum",
        "ingest_failed",
    }
)
KINDS = HTTP_KINDS | JOB_KINDS

_IDS = itertools.count(1)


@dataclass
class Fault:
    """One injected fault.

    `every=None`: fires on the next `count` matching calls. `every=k`: fires on the k-th, 2k-th...
    matching call, `count` times in all (`count=0` means without end). `delay` is the wall-clock
    pause of `slow` (default 2 s). `method=None` matches any method.
    """

    path_glob: str
    kind: str
    method: str | None = None
    count: int = 1
    every: int | None = None
    delay: float | None = None
    id: int = field(default_factory=lambda: next(_IDS))
    seen: int = 0
    fired: int = 0

    def matches(self, method: str | None, path: str) -> bool:
        """Whether a call to `path` is one this fault watches."""
        if self.method and method and self.method.upper() != method.upper():
            return False
        return fnmatch.fnmatchcase(path, self.path_glob)

    @property
    def spent(self) -> bool:
        """No firings left."""
        return self.count > 0 and self.fired >= self.count

    def observe(self) -> bool:
        """Count one matching call; True when the fault fires on it."""
        self.seen += 1
        if self.every and self.seen % self.every:
            return False
        self.fired += 1
        return True

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the admin API."""
        return asdict(self)


class Faults:
    """The faults armed on one sandbox; thread-safe, because handlers run in worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        #: Chaos mode: random faults on top of the armed ones (chaos.py).
        self.chaos = Chaos()

    def inject(
        self,
        path_glob: str,
        kind: str,
        *,
        method: str | None = None,
        count: int = 1,
        every: int | None = None,
        delay: float | None = None,
    ) -> Fault:
        """Arm a fault; raises ValueError on an unknown kind or a bad count."""
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(sorted(KINDS))}")
        if count < 0 or (every is not None and every < 1):
            raise ValueError("count must be >= 0 and every >= 1")
        fault = Fault(path_glob, kind, method, int(count), every, delay)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._faults.clear()

    def list(self) -> list[dict[str, Any]]:
        """Armed faults with their counters."""
        with self._lock:
            return [f.to_dict() for f in self._faults]

    def _take(self, kinds: frozenset[str], method: str | None, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.kind in kinds and not fault.spent and fault.matches(method, path):
                    if not fault.observe():
                        continue
                    if fault.spent:
                        self._faults.remove(fault)
                    return fault
        return None

    def take(self, method: str, path: str) -> Fault | None:
        """The HTTP-level fault that fires on this call, if any (counts the call).

        An armed fault first; else chaos draws. A job-level chaos kind is armed one-shot on this
        exact path for the endpoint to take (`take_kind`), and the call goes on.
        """
        fault = self._take(HTTP_KINDS, method, path)
        if fault is not None:
            return fault
        kind = self.chaos.draw(method, path)
        if kind is None:
            return None
        if kind in JOB_KINDS:
            # At most one pending per path and kind: a status poll draws before the job has a
            # checksum to lie about, and faults piling up there would make every later read lie
            # (a 1M-member soak saw two lies in a row on most exports).
            glob = glob_escape(path)
            with self._lock:
                pending = any(
                    f.kind == kind and f.path_glob == glob and not f.spent for f in self._faults
                )
            if not pending:
                self.inject(glob, kind, method=method)
            return None
        delay = self.chaos.slow_seconds if kind == "slow" else None
        return Fault(path, kind, method, delay=delay, seen=1, fired=1)

    def take_kind(self, kind: str, path: str, method: str | None = None) -> Fault | None:
        """The fault of `kind` that fires now for `path`, if any (counts the occasion)."""
        return self._take(frozenset({kind}), method, path)


def glob_escape(path: str) -> str:
    """`path` as an fnmatch pattern matching only itself."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in path)


# --- the HTTP middleware -------------------------------------------------------------------------

_HTML_5XX = {
    500: b"<html><body><h1>500 Internal Server Error</h1></body></html>",
    502: b"<html><body><h1>502 Bad Gateway</h1></body></html>",
    503: b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>",
}
_ENVELOPE_FAULTS = {
    "token_invalid": ("601", "Access token invalid"),
    "token_expired": ("602", "Access token expired"),
    "rate_limit": ("606", "Max rate limit '100' exceeded with in '20' secs"),
    "concurrency": ("615", "Concurrent access limit reached"),
}
# Data Ingestion answers with its own codes and HTTP statuses.
_INGESTION_FAULTS = {
    "token_invalid": (401, "401013", "Access token invalid"),
    "token_expired": (401, "401013", "Access token expired"),
    "rate_limit": (429, "429001", "Too many requests"),
    "concurrency": (429, "429001", "Too many concurrent requests"),
}


def is_admin(path: str) -> bool:
    """The sandbox's own API, never faulted, limited or logged."""
    return path.startswith("/_sandbox")


class FaultMiddleware:
    """Applies the HTTP-level faults armed in `Faults` before (or while) the endpoint answers."""

    def __init__(self, app: Any, faults: Faults) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Apply the fault that fires on this call, if any."""
        if scope["type"] != "http" or is_admin(scope["path"]):
            await self.app(scope, receive, send)
            return
        fault = self.faults.take(scope["method"], scope["path"])
        if fault is None:
            await self.app(scope, receive, send)
            return
        kind = fault.kind
        if kind == "slow":
            await asyncio.sleep(2.0 if fault.delay is None else fault.delay)
            await self.app(scope, receive, send)
        elif kind.startswith("http_"):
            status = int(kind[5:])
            await Response(_HTML_5XX[status], status_code=status, media_type="text/html")(
                scope, receive, send
            )
        elif kind == "reset":
            await self._reset(scope, receive, send)
        elif scope["path"].startswith("/subscriptions/"):
            status, code, message = _INGESTION_FAULTS[kind]
            body = orjson.dumps({"error_code": code, "message": message})
            await Response(body, status_code=status, media_type="application/json")(
                scope, receive, send
            )
        else:
            code, message = _ENVELOPE_FAULTS[kind]
            await error(code, message)(scope, receive, send)

    async def _reset(self, scope: Any, receive: Any, send: Any) -> None:
        """Let the endpoint answer, then cut the connection halfway through the first body part.

        Returning without finishing the response makes uvicorn close the socket, which the
        client sees as a connection reset / incomplete read.
        """
        state = {"cut": False}

        async def cutting_send(message: dict[str, Any]) -> None:
            if state["cut"]:
                return
            if message["type"] == "http.response.body":
                body = message.get("body", b"")
                state["cut"] = True
                await send({"type": "http.response.body", "body": body[: len(body) // 2],
                            "more_body": True})  # fmt: skip
                raise _ConnectionCut
            await send(message)

        with contextlib.suppress(_ConnectionCut):
            await self.app(scope, receive, cutting_send)


class _ConnectionCut(Exception):  # noqa: N818 - internal control flow
    pass
