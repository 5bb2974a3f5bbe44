"""updatedAt windows: half-open [start, end) so consecutive windows have neither gaps nor overlaps.

Marketo does not document whether `startAt`/`endAt` are inclusive. We assume nothing: each job
asks for [start - 1 s, end] and the parser keeps only rows with start <= updatedAt < end, so a
member updated exactly on an edge is read by exactly one window whichever way Marketo rounds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
EDGE_PAD = dt.timedelta(seconds=1)
BULK_MAX_SPAN = dt.timedelta(days=31)
REST_MAX_SPAN = dt.timedelta(days=7)


def iso(value: dt.datetime) -> str:
    """Marketo's datetime form: UTC, whole seconds, `Z`."""
    return value.astimezone(dt.timezone.utc).strftime(ISO_FORMAT)


def parse_iso(value: str) -> dt.datetime:
    """Parse Marketo/Singer ISO strings (`Z`, offsets, `+0000`) to aware UTC datetimes."""
    text = value.strip().replace("Z+0000", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif len(text) > 5 and text[-5] in "+-" and text[-3] != ":":  # noqa: PLR2004
        text = f"{text[:-2]}:{text[-2:]}"
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc)


@dataclass(frozen=True)
class Window:
    """One half-open updatedAt range."""

    start: dt.datetime
    end: dt.datetime

    @property
    def start_iso(self) -> str:
        """Lower bound, inclusive."""
        return iso(self.start)

    @property
    def end_iso(self) -> str:
        """Upper bound, exclusive."""
        return iso(self.end)

    def filter_bounds(self) -> tuple[str, str]:
        """`startAt`/`endAt` sent to Marketo: padded so either inclusivity reads every edge."""
        return iso(self.start - EDGE_PAD), iso(self.end)


def plan_windows(
    start: dt.datetime,
    end: dt.datetime,
    days: float,
    max_span: dt.timedelta = BULK_MAX_SPAN,
) -> list[Window]:
    """Consecutive windows covering [start, end), each at most `days` and within Marketo's cap."""
    step = min(dt.timedelta(days=days), max_span - EDGE_PAD)
    start = start.replace(microsecond=0)
    end = end.replace(microsecond=0)
    windows = []
    cursor = start
    while cursor < end:
        upper = min(cursor + step, end)
        windows.append(Window(cursor, upper))
        cursor = upper
    return windows
