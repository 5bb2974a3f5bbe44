"""Runs many export jobs through Marketo's shared bulk budget, keeping both slots busy.

Single-threaded on purpose: Marketo does the work, we only poll once per interval, and records
must be emitted (and state committed) on the main thread anyway. While one file downloads and
parses, the jobs enqueued ahead of it keep both of Marketo's processing slots busy.

Polling spends calls only where a reply can differ from the last one. Marketo refreshes a job's
status once every 60 s; we assume (the documents are silent, the sandbox does so) that the
rhythm counts from the job's `queuedAt`, i.e. from when its enqueue reply arrived. A job of ours
kept queued ahead cannot start while our own jobs hold both slots, so it is not polled then:
only when one of ours leaves a slot, at each refresh after that moment while the reply may
still be stale, then, while it stays queued, at a slow safety rhythm (another API user's job
holds the slot). A reply may be stale for a few refreshes: the rhythm may not be anchored on
queuedAt (one refresh), and a started job may still read Queued for up to two refreshes (the
documents are silent on both; the sandbox randomises them in tests).
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from marketo_common import (
    ExportQuotaExceededError,
    MarketoAPIError,
    MarketoError,
    TooManyJobsError,
)
from marketo_common.program_member_export import (
    FINAL_STATUSES,
    PENDING_STATUSES,
    ExportError,
    ProgramMemberExports,
)

from tap_marketo_members import export_metrics
from tap_marketo_members.settings import MAX_EXPORT_SLOTS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

QUEUE_AHEAD = 2  # jobs waiting in Marketo's queue behind our 2 running ones (limit 10).
# A queued job whose slot another API user's job holds: polled every this many intervals.
SAFETY_POLL_INTERVALS = 5
# Refreshes a started job may still read Queued: up to 2 of lag, 1 of an unknown rhythm phase.
STALE_REFRESHES = 3
UNSUPPORTED_FILTER = "1035"
INVALID_DATA = "1003"
MB = 1024 * 1024


@dataclass
class ExportUnit:
    """One planned export: up to 10 programs, optionally one updatedAt window.

    `lower`/`upper` are the half-open bounds the parser keeps (ISO strings; lower None = all);
    `server_filter` is what Marketo is asked for (None = full export of the programs).
    """

    group: int
    seq: int
    program_ids: tuple[int, ...]
    upper: str | None
    lower: str | None = None
    server_filter: tuple[str, str] | None = None
    attempts: int = 0
    status_names: tuple[str, ...] | None = None  # None: the run's statusNames filter

    def describe(self) -> str:
        """Short label for logs."""
        ids = ",".join(str(i) for i in self.program_ids)
        span = f"updatedAt {self.lower or '-'}..{self.upper}" if self.server_filter else "full"
        status = f", status {'|'.join(self.status_names)}" if self.status_names else ""
        return f"programs {ids}, {span}{status}"


@dataclass
class ExportJob:
    """A job this run created, with what we last heard about it.

    `anchor` is when the enqueue reply arrived: Marketo's status refreshes fall on
    `anchor + k * poll_interval` (its `queuedAt` plus whole minutes, a little before each).
    """

    unit: ExportUnit
    export_id: str
    status: str
    started: float
    status_since: float
    anchor: float
    last_poll: float | None = None  # when the last status reply arrived
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """Seconds from its creation to the last status reply."""
        return self.status_since - self.started

    @property
    def polled_or_queued(self) -> float:
        """When we last heard its status (its last poll, else its enqueue reply)."""
        return self.anchor if self.last_poll is None else self.last_poll


class QuotaReachedError(Exception):
    """Marketo's (or our configured) daily export quota is used up; stop cleanly."""


def quota_stop_reason(quota_bytes: float, used_bytes: float) -> str:
    """Why a run stops before the quota: what it has seen used of daily_export_quota_mb."""
    return (
        f"daily_export_quota_mb ({quota_bytes / MB:g} MB) would be exceeded: "
        f"{used_bytes / MB:.1f} MB of today's export quota seen used (this API user's lead, "
        "activity and program member export jobs, and this run's files)"
    )


class ExportScheduler:
    """Creates, enqueues and polls export jobs; yields each Completed one (the caller downloads)."""

    def __init__(
        self,
        exports: ProgramMemberExports,
        *,
        fields: Sequence[str],
        column_header_names: dict[str, str],
        max_concurrent_exports: int = MAX_EXPORT_SLOTS,
        poll_interval: float = 60.0,
        job_timeout: float = 3 * 3600.0,
        quota_bytes: float = 500 * MB,
        used_bytes: int = 0,
        updated_at_filter: str = "auto",
        member_filter: Mapping[str, Any] | None = None,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        on_jobs_changed: Callable[[list[str]], None] | None = None,
        quota_used: Callable[[], int] | None = None,
    ) -> None:
        self.exports = exports
        self.fields = list(fields)
        self.column_header_names = column_header_names
        # A queue-ahead only when we may use both slots: a queued job would start in a free slot.
        self.max_in_flight = (
            max_concurrent_exports
            if max_concurrent_exports < MAX_EXPORT_SLOTS
            else MAX_EXPORT_SLOTS + QUEUE_AHEAD
        )
        self.poll_interval = poll_interval
        self.job_timeout = job_timeout
        self.quota_bytes = quota_bytes
        self.used_bytes = used_bytes
        self.updated_at_filter = updated_at_filter
        self.member_filter = dict(member_filter or {})
        self.logger = logger or logging.getLogger("tap_marketo_members.scheduler")
        self._clock = clock
        self._sleep = sleep
        self._on_jobs_changed = on_jobs_changed
        self._enqueueing: str | None = None
        self._quota_used = quota_used
        self._run_bytes = 0  # this run's files: their average sizes the next jobs
        self._pending: deque[ExportUnit] = deque()
        self._in_flight: list[ExportJob] = []
        self._nothing_to_export: deque[ExportUnit] = deque()  # answered without a job
        self._queue_full_until = 0.0
        self._slot_freed_at = float("-inf")  # last time one of our jobs left a slot
        self._stop_reason: str | None = None
        self._files_done = 0
        self.filter_unsupported = False
        self.jobs_created = 0

    # Context management: whatever ends the run, our unfinished jobs get cancelled.

    def __enter__(self) -> ExportScheduler:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel_unfinished()

    @property
    def live_export_ids(self) -> list[str]:
        """Jobs this run created that have not finished."""
        ids = [job.export_id for job in self._in_flight]
        return [*ids, self._enqueueing] if self._enqueueing else ids

    def cancel_unfinished(self) -> None:
        """Cancel every job this run created that is not finished, and say so."""
        jobs, self._in_flight = self._in_flight, []
        for job in jobs:
            try:
                self.exports.cancel(job.export_id)
                self.logger.warning(
                    "Cancelled export %s (%s), status was %s",
                    job.export_id,
                    job.unit.describe(),
                    job.status,
                )
            except MarketoError as exc:  # noqa: PERF203
                self.logger.warning("Could not cancel export %s: %s", job.export_id, exc)
        if jobs:
            self._jobs_changed()

    def cancel_left_over(self, known_ids: Sequence[str]) -> None:
        """Cancel unfinished jobs a crashed earlier run left (their ids were saved in state)."""
        if not known_ids:
            return
        try:
            jobs = self.exports.list_jobs(PENDING_STATUSES)
        except MarketoError as exc:
            self.logger.warning("Could not list export jobs left by an earlier run: %s", exc)
            return
        for job in jobs:
            export_id = job.get("exportId")
            if export_id in known_ids:
                try:
                    self.exports.cancel(export_id)
                    self.logger.warning(
                        "Cancelled export %s left %s by an earlier run",
                        export_id,
                        job.get("status"),
                    )
                except MarketoError as exc:
                    self.logger.warning("Could not cancel left-over export %s: %s", export_id, exc)
            else:
                self.logger.info(
                    "Export %s (%s) is not ours; it shares Marketo's bulk slots with us",
                    export_id,
                    job.get("status"),
                )

    # The main loop.

    def outstanding_seqs(self, group: int) -> set[int]:
        """Sequence numbers of a group's units not yet handed to the caller."""
        seqs = {
            unit.seq for unit in (*self._pending, *self._nothing_to_export) if unit.group == group
        }
        seqs.update(job.unit.seq for job in self._in_flight if job.unit.group == group)
        return seqs

    def run(
        self, units: Sequence[ExportUnit]
    ) -> Iterator[tuple[ExportUnit, ExportJob | None, dict[str, Any]]]:
        """Yield (unit, job, last status) as jobs complete, in completion order.

        The job is None for a unit Marketo answered without a job (nothing to export). The
        next jobs are already enqueued when a job is yielded, so Marketo's slots stay busy
        while the caller downloads and parses its file.
        """
        self._pending.extend(units)
        export_metrics.quota(self.used_bytes, self.quota_bytes)
        while self._pending or self._in_flight or self._nothing_to_export:
            self._top_up()
            while self._nothing_to_export:
                unit = self._nothing_to_export.popleft()
                yield unit, None, {}
            if not self._in_flight:
                if self._stop_reason:
                    break
                if self._pending:  # queue full (1029): wait, then try again
                    self._sleep(
                        max(self._queue_full_until - self._clock(), 0.0) or self.poll_interval
                    )
                continue
            job, due = self._next_poll()
            now = self._clock()
            if due > now:
                self._sleep(due - now)
                continue
            if self._poll(job):
                yield job.unit, job, job.info
        if self._stop_reason:
            raise QuotaReachedError(self._stop_reason)

    def _enqueued_anyway(self, export_id: str) -> bool:
        """After a refused enqueue retry: did the try whose answer was lost queue the job?

        CI found it: the lost try queued the job, which ran and completed before the retry,
        so the retry was refused (1003 "only a Created job can be enqueued").
        """
        if not self.exports.maybe_ran_twice():
            return False
        try:
            status = str(self.exports.status(export_id).get("status"))
        except MarketoError:
            return False
        return status in {"Queued", "Processing", "Completed"}

    def create_again(self, unit: ExportUnit, reason: object) -> bool:
        """Put a unit whose job went wrong back to be created once more; False the 2nd time.

        A Failed job and a file that fails its checks twice get the same single retry: the
        chaos soak saw a job whose file kept failing its checksum end the whole run.
        """
        if unit.attempts:
            return False
        unit.attempts += 1
        self.logger.warning("%s; creating it again once", reason)
        self._pending.appendleft(unit)
        return True

    def _next_poll(self) -> tuple[ExportJob, float]:
        """The job to poll next and when; queued jobs only where a slot may be free for them."""
        running = sum(1 for job in self._in_flight if job.status == "Processing")
        free = MAX_EXPORT_SLOTS - running  # slots not held by our jobs: ours may start there
        best: tuple[ExportJob, float] | None = None
        for job in self._in_flight:  # in enqueue order, which is Marketo's (FIFO) order
            if job.status == "Processing":
                due = job.polled_or_queued + self.poll_interval
            elif free > 0:
                free -= 1
                due = self._queued_due(job)
            else:
                continue  # behind our own running jobs: cannot start, its status cannot change
            if best is None or due < best[1]:
                best = (job, due)
        if best is None:  # defensive: with fewer than 2 of ours running, one queued is a candidate
            job = self._in_flight[0]
            return job, job.polled_or_queued + self.poll_interval
        return best

    def _queued_due(self, job: ExportJob) -> float:
        """At its first status refresh after a slot freed, again one later, then slowly."""
        interval = self.poll_interval
        after_free = self._refresh_after(job, self._slot_freed_at)
        if job.last_poll is None:
            return max(job.anchor + interval, after_free)
        if job.last_poll < self._slot_freed_at + STALE_REFRESHES * interval:
            # Its last reply may predate the freed slot or lag its start: poll each refresh.
            return max(job.last_poll + interval, after_free)
        # Still queued a full interval after a slot freed: another API user's job holds it.
        return job.last_poll + SAFETY_POLL_INTERVALS * interval

    def _refresh_after(self, job: ExportJob, moment: float) -> float:
        """The job's first status refresh at or after `moment`."""
        if moment <= job.anchor:
            return job.anchor
        steps = math.ceil((moment - job.anchor) / self.poll_interval)
        return job.anchor + steps * self.poll_interval

    def _top_up(self) -> None:
        """Create and enqueue jobs until our share of the queue is full."""
        while self._pending and len(self._in_flight) < self.max_in_flight:
            if self._stop_reason or self._clock() < self._queue_full_until:
                return
            if self._quota_would_exceed():
                self._stop_reason = quota_stop_reason(self.quota_bytes, self.used_bytes)
                return
            unit = self._pending.popleft()
            try:
                job = self._start(unit)
            except TooManyJobsError as exc:
                self._pending.appendleft(unit)
                self._queue_full_until = self._clock() + self.poll_interval
                self.logger.info(
                    "Marketo's export queue is full (%s); trying again in %.1f s",
                    exc.code,
                    self.poll_interval,
                )
                return
            except ExportQuotaExceededError as exc:
                self._pending.appendleft(unit)
                self._stop_reason = str(exc)
                return
            if job is not None:
                self._in_flight.append(job)
                self._jobs_changed()

    def _start(self, unit: ExportUnit) -> ExportJob | None:
        member_filter = dict(self.member_filter)
        if unit.status_names is not None:
            member_filter["statusNames"] = list(unit.status_names)
        try:
            created = self.exports.create(
                self.fields,
                unit.program_ids,
                updated_at=unit.server_filter,
                column_header_names=self.column_header_names,
                member_filter=member_filter,
            )
        except MarketoAPIError as exc:
            if exc.code == UNSUPPORTED_FILTER and unit.server_filter:
                self._fall_back_to_full_exports(unit, exc)
                return None
            if exc.code == INVALID_DATA and _names_a_status(exc, member_filter):
                self._status_not_found(unit, member_filter["statusNames"], exc)
                return None
            raise
        export_id = str(created["exportId"])
        self.jobs_created += 1
        export_metrics.job(export_id, "Created")
        now = self._clock()
        job = ExportJob(unit, export_id, "Created", now, now, now, info=created)
        self.logger.info("Export %s created (%s)", export_id, unit.describe())
        # Saved before the enqueue (which may wait out retries): a run killed in between
        # leaves a Created job the next run must know as its own, to cancel it.
        self._enqueueing = export_id
        self._jobs_changed()
        try:
            queued = self.exports.enqueue(export_id)
        except TooManyJobsError as exc:
            if "already queued" not in exc.message.lower():
                self._cancel_quietly(export_id)
                raise
            # 1029 "Job already queued": an earlier try of this enqueue reached Marketo.
            queued = {"status": "Queued"}
        except MarketoError:
            if not self._enqueued_anyway(export_id):
                self._cancel_quietly(export_id)
                raise
            queued = {"status": "Queued"}  # the polls read where it really is
        finally:
            self._enqueueing = None
        job.anchor = self._clock()  # the reply carries queuedAt: the status rhythm starts there
        self._set_status(job, str(queued.get("status") or "Queued"), queued)
        return job

    def _status_not_found(self, unit: ExportUnit, names: list[str], exc: MarketoAPIError) -> None:
        """1003: a status name is in none of the job's programs (the extract page's rule).

        With several names Marketo does not say which, so each is asked alone (one job each;
        members have one status, so the files do not overlap); a single name matches nothing.
        """
        if len(names) > 1:
            self.logger.info(
                "Export of %s: Marketo answered %s (%s); asking for each status on its own",
                unit.describe(),
                exc.code,
                exc.message,
            )
            split = [replace(unit, status_names=(name,), attempts=0) for name in names]
            self._pending.extendleft(reversed(split))
            return
        self.logger.warning(
            "Export of %s: no member of these programs has status %s (Marketo %s: %s); "
            "nothing to export",
            unit.describe(),
            names[0],
            exc.code,
            exc.message,
        )
        self._nothing_to_export.append(unit)

    def _fall_back_to_full_exports(self, unit: ExportUnit, exc: MarketoAPIError) -> None:
        """1035: no updatedAt filter on this subscription; export each group whole, filter here."""
        if self.updated_at_filter == "on":
            msg = (
                "updated_at_filter is 'on' but this Marketo subscription does not support the "
                f"updatedAt filter ({exc.code} {exc.message}); set it to 'auto' or 'off'"
            )
            raise ExportError(msg) from exc
        if not self.filter_unsupported:
            self.logger.warning(
                "Marketo answered %s (updatedAt filter not available on this subscription): "
                "exporting each program in full and keeping only rows changed since the bookmark",
                exc.code,
            )
        self.filter_unsupported = True
        by_group: dict[int, list[ExportUnit]] = {unit.group: [unit]}
        for other in self._pending:
            by_group.setdefault(other.group, []).append(other)
        replaced = deque()
        for group, members in by_group.items():
            windowed = [u for u in members if u.server_filter]
            kept = [u for u in members if not u.server_filter]
            replaced.extend(kept)
            if windowed:
                lowers = [u.lower for u in windowed]
                replaced.append(
                    ExportUnit(
                        group=group,
                        seq=min(u.seq for u in windowed),
                        program_ids=windowed[0].program_ids,
                        lower=None if None in lowers else min(lowers),  # type: ignore[type-var]
                        upper=max(u.upper for u in windowed),
                    )
                )
        self._pending = deque(sorted(replaced, key=lambda u: (u.group, u.seq)))

    def _poll(self, job: ExportJob) -> bool:
        """One status poll; True when the job is Completed (its file ready to download)."""
        info = self.exports.status(job.export_id)
        job.last_poll = self._clock()  # counted from the reply: Marketo sees them P apart
        status = str(info.get("status") or job.status)
        self._set_status(job, status, info)
        if status in FINAL_STATUSES:
            self._slot_freed_at = self._clock()  # a queued job of ours may start now
        if status == "Completed":
            self._in_flight.remove(job)
            # Count the file against the quota before deciding on more jobs.
            size = _int_or_none(info.get("fileSize")) or 0
            self.used_bytes += size
            self._run_bytes += size
            self._files_done += 1
            if self._quota_used is not None:
                # Marketo's job lists also show this API user's other exports of today.
                self.used_bytes = max(self.used_bytes, self._quota_used())
            export_metrics.quota(self.used_bytes, self.quota_bytes)
            self._top_up()  # the next jobs take the slot while we download and parse
            self._jobs_changed()
            return True
        if status == "Failed":
            self._in_flight.remove(job)
            self._jobs_changed()
            reason = _failure_reason(info)
            failed = f"Export {job.export_id} ({job.unit.describe()}) Failed ({reason})"
            if self.create_again(job.unit, failed):
                return False
            msg = (
                f"Export {job.export_id} ({job.unit.describe()}) Failed again after one retry "
                f"({reason}). Rerun the tap; if it persists, ask Marketo support about this "
                "exportId"
            )
            raise ExportError(msg)
        if status in FINAL_STATUSES:  # cancelled by someone else
            self._in_flight.remove(job)
            self._jobs_changed()
            msg = f"Export {job.export_id} ({job.unit.describe()}) was {status} outside this run"
            raise ExportError(msg)
        if self._clock() - job.started > self.job_timeout:
            msg = (
                f"Export {job.export_id} ({job.unit.describe()}) still {status} after "
                f"{self.job_timeout / 60:g} minutes (job_timeout_minutes); cancelled"
            )
            raise ExportError(msg)
        return False

    def _set_status(self, job: ExportJob, status: str, info: dict[str, Any]) -> None:
        job.info = info
        if status != job.status:
            now = self._clock()
            self.logger.info(
                "Export %s: %s -> %s after %.1f s (%.1f s since created)",
                job.export_id,
                job.status,
                status,
                now - job.status_since,
                now - job.started,
            )
            # Seconds in a phase are known only when a poll saw the job enter it: a job seen
            # Queued and then Completed reports its queued time, not a processing time.
            if job.status in {"Queued", "Processing"}:
                export_metrics.phase(
                    job.export_id, job.status.lower(), now - job.status_since, status
                )
            if status in FINAL_STATUSES:
                export_metrics.job(job.export_id, status)
            job.status = status
            job.status_since = now

    def _quota_would_exceed(self) -> bool:
        average = self._run_bytes / self._files_done if self._files_done else 0
        return self.used_bytes + average * (len(self._in_flight) + 1) > self.quota_bytes

    def _cancel_quietly(self, export_id: str) -> None:
        try:
            self.exports.cancel(export_id)
        except MarketoError as exc:
            self.logger.debug("Cancel of %s failed: %s", export_id, exc)

    def _jobs_changed(self) -> None:
        if self._on_jobs_changed:
            self._on_jobs_changed(self.live_export_ids)


def _failure_reason(info: Mapping[str, Any]) -> str:
    """A Failed job's `errorMsg`, which Marketo fills in where it knows the reason."""
    message = str(info.get("errorMsg") or "").strip()
    return f"Marketo: {message}" if message else "Marketo gave no reason"


def _names_a_status(exc: MarketoAPIError, member_filter: Mapping[str, Any]) -> bool:
    """A 1003 about the statusNames filter ("Invalid Data"), not some other bad value."""
    text = exc.message.lower()
    return bool(member_filter.get("statusNames")) and ("status" in text or "invalid data" in text)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
