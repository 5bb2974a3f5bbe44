"""Marketo's REST limits: calls per 20 s (606), concurrent calls (615), daily quota (607).

They cover `/rest/...` and `/bulk/...` (bulk calls count against the REST limits in Marketo);
identity, Data Ingestion (its own limits) and the admin API are outside. Windows use the wall
clock: clients pace themselves in real seconds whatever the sandbox time scale.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import TYPE_CHECKING, Any

from marketo_sandbox.envelope import error

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Defaults for tests and demos: high enough that nothing trips by accident.
RELAXED = {"rest_calls_per_20s": 5000, "rest_max_concurrent": 100, "rest_daily_quota": 10_000_000}
#: Marketo's real numbers (`--strict`).
STRICT = {"rest_calls_per_20s": 100, "rest_max_concurrent": 10, "rest_daily_quota": 50_000}
WINDOW_SECONDS = 20.0
_SMALL_BODY = 4096
#: 600-602 calls do not count against the quota or the rate (Marketo's error-code table).
_NOT_COUNTED = (b'"code":"600"', b'"code":"601"', b'"code":"602"')


def limited(path: str) -> bool:
    """Whether REST limits apply to `path`."""
    return path.startswith(("/rest/", "/bulk/"))


class RestLimits:
    """Counters of the limits; thread-safe and injectable with a clock for unit tests."""

    def __init__(self, options: Any, clock: Any = time.monotonic, day: Any = None) -> None:
        self.options = options
        self._clock = clock
        self._day = day or (lambda: time.strftime("%Y-%m-%d"))
        self._lock = threading.Lock()
        self._window: collections.deque[float] = collections.deque()
        self.in_flight = 0
        self._daily: dict[Any, int] = {}
        #: Highest calls in one 20-s window and in flight, and calls refused by each limit:
        #: a run proves it kept to the limits by the refusals staying at zero.
        self._peak_window = 0
        self._peak_in_flight = 0
        self._refused: collections.Counter[str] = collections.Counter()

    def enter(self) -> tuple[str, str] | None:
        """Admit a call, or (code, message) of the limit it hits."""
        now = self._clock()
        rate = int(self.options.get("rest_calls_per_20s"))
        concurrent = int(self.options.get("rest_max_concurrent"))
        quota = int(self.options.get("rest_daily_quota"))
        day = self._day()
        with self._lock:
            while self._window and self._window[0] <= now - WINDOW_SECONDS:
                self._window.popleft()
            refused = None
            if self._daily.get(day, 0) >= quota:
                refused = "607", f"Daily quota '{quota}' reached"
            elif len(self._window) >= rate:
                refused = "606", f"Max rate limit '{rate}' exceeded with in '20' secs"
            elif self.in_flight >= concurrent:
                refused = "615", f"Concurrent access limit '{concurrent}' reached"
            if refused is not None:
                self._refused[refused[0]] += 1
                return refused
            self._window.append(now)
            self._daily = {day: self._daily.get(day, 0) + 1}
            self.in_flight += 1
            self._peak_window = max(self._peak_window, len(self._window))
            self._peak_in_flight = max(self._peak_in_flight, self.in_flight)
        return None

    def peaks(self) -> dict[str, Any]:
        """Peak calls per 20 s and in flight since start, and refusals by code (606/607/615)."""
        with self._lock:
            return {
                "peakPer20s": self._peak_window,
                "peakInFlight": self._peak_in_flight,
                "refused": dict(self._refused),
            }

    def leave(self, counted: bool = True) -> None:
        """A call finished; `counted=False` gives its slot back (600-602 answers)."""
        with self._lock:
            self.in_flight -= 1
            if not counted:
                if self._window:
                    self._window.pop()
                day = self._day()
                self._daily[day] = max(0, self._daily.get(day, 0) - 1)

    def snapshot(self) -> dict[str, int]:
        """Today's counter, to keep across restarts."""
        with self._lock:
            return {str(day): count for day, count in self._daily.items()}

    def restore(self, saved: dict[str, int]) -> None:
        """Take back a `snapshot` (only today's count matters)."""
        day = str(self._day())
        with self._lock:
            if day in saved:
                self._daily = {self._day(): int(saved[day])}

    def daily_used(self) -> int:
        """Calls counted today."""
        with self._lock:
            return self._daily.get(self._day(), 0)


class RestLimitsMiddleware:
    """ASGI middleware answering 606/615/607 envelopes when a limit is hit."""

    def __init__(self, app: ASGIApp, limits: RestLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Admit or refuse the call, and free its slot when the reply is sent."""
        if scope["type"] != "http" or not limited(scope["path"]):
            await self.app(scope, receive, send)
            return
        refused = self.limits.enter()
        if refused is not None:
            await error(*refused)(scope, receive, send)
            return
        counted = True

        async def watch(message: Message) -> None:
            nonlocal counted
            if message["type"] == "http.response.body":
                body = message.get("body", b"")
                if len(body) < _SMALL_BODY and any(code in body for code in _NOT_COUNTED):
                    counted = False
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            self.limits.leave(counted)
