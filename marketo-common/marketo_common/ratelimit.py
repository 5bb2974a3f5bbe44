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
    """At most `calls` starts in any `period` seconds (sliding window), `max_concurrent` at once.

    Share one instance between every thread and client that talks to the same instance:
    Marketo counts per instance, not per connection.
    """

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
        self._starts: collections.deque[float] = collections.deque()

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
        """The call has finished; its concurrency slot is free (its window start remains)."""
        self._slots.release()

    def _try_start(self) -> float:
        """Record a start and return 0, or return how long until the oldest start leaves."""
        with self._lock:
            now = self._clock()
            # A start exactly `period` ago still counts: the window is closed at both ends.
            while self._starts and self._starts[0] < now - self.period:
                self._starts.popleft()
            if len(self._starts) < self.calls:
                self._starts.append(now)
                return 0.0
            return max(self._starts[0] + self.period - now, 1e-3)

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
