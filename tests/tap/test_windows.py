"""Window planning: contiguous, half-open, within Marketo's caps."""

import datetime as dt
import itertools

from tap_marketo_members.windows import Window, iso, parse_iso, plan_windows

UTC = dt.timezone.utc


def test_windows_cover_range_without_gaps_or_overlap():
    start = dt.datetime(2024, 1, 1, tzinfo=UTC)
    end = dt.datetime(2024, 4, 15, 6, 30, tzinfo=UTC)
    windows = plan_windows(start, end, 31)
    assert windows[0].start == start
    assert windows[-1].end == end
    for a, b in itertools.pairwise(windows):
        assert a.end == b.start
    for w in windows:
        lo, hi = w.filter_bounds()
        assert parse_iso(hi) - parse_iso(lo) <= dt.timedelta(days=31)


def test_small_window_days_and_rest_cap():
    start = dt.datetime(2024, 1, 1, tzinfo=UTC)
    end = start + dt.timedelta(days=10)
    assert len(plan_windows(start, end, 2)) == 5
    rest = plan_windows(start, end, 31, max_span=dt.timedelta(days=7))
    assert all(w.end - w.start < dt.timedelta(days=7) for w in rest)


def test_empty_when_start_not_before_end():
    t = dt.datetime(2024, 1, 1, tzinfo=UTC)
    assert plan_windows(t, t, 31) == []


def test_filter_bounds_pad_start_only():
    w = Window(dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 2, tzinfo=UTC))
    assert w.filter_bounds() == ("2023-12-31T23:59:59Z", "2024-01-02T00:00:00Z")


def test_parse_iso_forms():
    for text in ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05Z+0000", "2024-01-02T05:04:05+0200"):
        assert iso(parse_iso(text)) == "2024-01-02T03:04:05Z"
