"""Our side of Marketo's REST limits, so that we never trip 606 (rate) or 615 (concurrency)."""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from typing_extensions import Self

logger = logging.getLogger("marketo_common")


class RateLimiter:
    """At most `calls` calls in any `period` seconds (sliding window), `max_concurrent` at once.

    A call counts in the window from the moment it starts until `period` seconds after it
    ended. Marketo counts a call when it arrives, which is somewhere between our start and the
    end of its answer: counting from the start alone let the chaos soak trip 606 when an early
    call reached Marketo late (a slow connect, a busy machine) and a call 20 s later arrived
    at once. Counting to the end bounds every arrival, at the cost of one call's latency per
    window.

    Share one instance between every thread and client that talks to the same instance:
    Marketo counts per instance, not per connection.
    """

    # Poll interval while every counted call is still running (only when calls <= concurrent).
    _OPEN_POLL = 0.05

    def __init__(
        self,
        calls: int = 100,
        period: float = 20.0,
        max_concurrent: int = 10,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.calls = calls
        self.period = period
        self.max_concurrent = max_concurrent
        self._clock = clock
        self._sleep = sleep
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._lock = threading.Lock()
        self._running = 0
        self._ends: collections.deque[float] = collections.deque()

    def __repr__(self) -> str:
        return f"RateLimiter({self.calls} calls / {self.period:g} s, {self.max_concurrent} at once)"

    def acquire(self) -> None:
        """Block until one more call may start now; pair with `release`."""
        self._slots.acquire()
        try:
            while (wait := self._try_start()) > 0:
                logger.debug("Waiting %.1f s to stay within %r", wait, self)
                self._sleep(wait)
        except BaseException:
            self._slots.release()
            raise

    def release(self) -> None:
        """The call has ended: it stays counted for `period` more seconds; its slot is free."""
        with self._lock:
            self._running -= 1
            self._ends.append(self._clock())
        self._slots.release()

    def counted(self) -> int:
        """Calls counted in the window now (running, or ended within `period`)."""
        with self._lock:
            self._expire_locked(self._clock())
            return self._running + len(self._ends)

    def _expire_locked(self, now: float) -> None:
        # An end exactly `period` ago still counts: the window is closed at both ends.
        while self._ends and self._ends[0] < now - self.period:
            self._ends.popleft()

    def _try_start(self) -> float:
        """Count a start and return 0, or return how long to wait before trying again."""
        with self._lock:
            now = self._clock()
            self._expire_locked(now)
            if self._running + len(self._ends) < self.calls:
                self._running += 1
                return 0.0
            if not self._ends:
                return self._OPEN_POLL
            return max(self._ends[0] + self.period - now, 1e-3)

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
