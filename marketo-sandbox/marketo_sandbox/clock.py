"""Sandbox time: a clock that can run faster than the wall clock so tests need not wait."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from datetime import date, datetime, timedelta, timezone

try:  # Marketo's daily quotas reset at midnight US Central time.
    from zoneinfo import ZoneInfo

    _CENTRAL = ZoneInfo("America/Chicago")
except Exception:  # pragma: no cover - no tz database: fall back to CST without DST
    _CENTRAL = timezone(timedelta(hours=-6))


class Clock:
    """Sandbox clock: `time_scale` sandbox seconds pass per wall second.

    `advance()` jumps forward (admin `/_sandbox/now`), so tests can expire tokens, files or
    batch ids without waiting. The clock never runs backwards: `not_before()` lets the store
    move it past timestamps already written, so a restart never produces older updatedAt values.
    """

    def __init__(self, time_scale: float = 1.0, start: datetime | None = None) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        self.time_scale = float(time_scale)
        self._lock = threading.Lock()
        self._wall0 = time.time()
        self._sandbox0 = (start or datetime.now(timezone.utc)).timestamp()

    def timestamp(self) -> float:
        """Sandbox time as epoch seconds."""
        with self._lock:
            return self._sandbox0 + (time.time() - self._wall0) * self.time_scale

    def now(self) -> datetime:
        """Sandbox time (UTC, second precision kept in the float)."""
        return datetime.fromtimestamp(self.timestamp(), timezone.utc)

    def advance(self, seconds: float) -> datetime:
        """Jump forward by `seconds` of sandbox time."""
        if seconds < 0:
            raise ValueError("the sandbox clock never goes back")
        with self._lock:
            self._sandbox0 += seconds
        return self.now()

    def not_before(self, moment: datetime) -> None:
        """Move the clock forward to `moment` if it is behind it."""
        gap = moment.timestamp() - self.timestamp()
        if gap > 0:
            self.advance(gap)

    def wall_seconds(self, sandbox_seconds: float) -> float:
        """Wall-clock seconds that `sandbox_seconds` of sandbox time take."""
        return sandbox_seconds / self.time_scale

    async def sleep(self, sandbox_seconds: float) -> None:
        """Sleep for `sandbox_seconds` of sandbox time."""
        await asyncio.sleep(max(0.0, self.wall_seconds(sandbox_seconds)))

    def quota_day(self, moment: datetime | None = None) -> date:
        """The Marketo quota day (US Central calendar day) of `moment` (default now)."""
        return (moment or self.now()).astimezone(_CENTRAL).date()

    @staticmethod
    def iso(moment: datetime) -> str:
        """Marketo's datetime format: ISO-8601 UTC without fractions, e.g. 2024-01-02T03:04:05Z."""
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def now_iso(self) -> str:
        """`iso(now())`."""
        return self.iso(self.now())


#: A filter datetime as the pages ask for it: date and time, whole seconds, optional offset.
_FILTER_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?([Zz]|[+-]\d{2}:?\d{2})?$")


def parse_filter_datetime(value: str) -> datetime:
    """An `updatedAt` filter bound: "ISO-8601 format, without milliseconds" (ValueError else).

    Milliseconds and a date without a time are refused, as the extract and REST query pages
    ask; the caller answers 1003.
    """
    text = str(value).strip()
    if not _FILTER_DATETIME.match(text):
        raise ValueError(f"{value!r}: ISO-8601 date and time without milliseconds expected")
    if text[-5] in "+-" and text[-3] != ":":
        text = f"{text[:-2]}:{text[-2:]}"
    return parse_datetime(text)


def parse_datetime(value: str) -> datetime:
    """Parse an ISO-8601 datetime as Marketo accepts it (Z or offset; naive means UTC)."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)
