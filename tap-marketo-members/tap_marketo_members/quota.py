"""Marketo's daily export quota: its US Central day, when it resets, what today has used."""

from __future__ import annotations

import datetime as dt


def central_tz() -> dt.tzinfo:
    """US Central time, where Marketo's quota day starts (fixed UTC-6 without tz data)."""
    try:
        from zoneinfo import ZoneInfo  # noqa: PLC0415

        return ZoneInfo("America/Chicago")
    except Exception:
        return dt.timezone(dt.timedelta(hours=-6))


def quota_day(now: dt.datetime | None = None) -> str:
    """Marketo's export quota day: the calendar day in US Central time."""
    moment = now or dt.datetime.now(dt.timezone.utc)
    return moment.astimezone(central_tz()).date().isoformat()


def quota_reset(now: dt.datetime | None = None) -> dt.datetime:
    """The next midnight US Central time (UTC), when the quota starts again."""
    tz = central_tz()
    local = (now or dt.datetime.now(dt.timezone.utc)).astimezone(tz)
    midnight = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(), tzinfo=tz)
    return midnight.astimezone(dt.timezone.utc)
