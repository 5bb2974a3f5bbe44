"""Marketo's daily export quota: its US Central day, when it resets, what today has used."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from marketo_common import MarketoAPIError

from tap_marketo_members.windows import parse_iso

if TYPE_CHECKING:
    import logging

    from marketo_common import MarketoClient


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


# The Get Export Lead / Activity / Program Member Jobs lists: the last seven days of the calling
# API user's jobs, each finished one with its fileSize (bulk-extract.md, "Limits").
JOB_LISTS = {
    "lead": "/bulk/v1/leads/export.json",
    "activity": "/bulk/v1/activities/export.json",
    "program member": "/bulk/v1/program/members/export.json",
}
LIST_PAGE = 300  # batchSize maximum of the job lists


class ExportJobLists:
    """What this API user exported today, in every export type, from Marketo's job lists.

    The quota is the subscription's, shared by every export type; other API users' exports
    show only as Marketo's 1029, which stays the final guard.
    """

    def __init__(self, client: MarketoClient, logger: logging.Logger) -> None:
        self.client = client
        self.logger = logger
        self._unreadable: set[str] = set()

    def used_today(self, now: dt.datetime | None = None) -> int:
        """Bytes of the jobs that finished (Completed) in today's US Central day."""
        day = quota_day(now)
        total = 0
        for kind, path in JOB_LISTS.items():
            if kind in self._unreadable:
                continue
            try:
                jobs = self._completed(path)
            except MarketoAPIError as exc:
                self.logger.warning(
                    "The %s export job list is not readable (%s): its jobs are not counted "
                    "against daily_export_quota_mb",
                    kind,
                    exc,
                )
                self._unreadable.add(kind)
                continue
            total += sum(
                int(job.get("fileSize") or 0)
                for job in jobs
                if job.get("finishedAt") and quota_day(parse_iso(str(job["finishedAt"]))) == day
            )
        return total

    def _completed(self, path: str) -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = []
        token = None
        while True:
            params: dict[str, Any] = {"status": "Completed", "batchSize": LIST_PAGE}
            if token:
                params["nextPageToken"] = token
            envelope = self.client.get(path, params)
            jobs.extend(envelope.get("result") or [])
            token = envelope.get("nextPageToken")
            if not envelope.get("moreResult") or not token:
                return jobs
