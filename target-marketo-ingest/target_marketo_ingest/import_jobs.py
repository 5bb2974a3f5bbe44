"""Bulk import jobs: upload a file, poll it to the end, map failures and warnings back.

Files come from `bulk_import.BulkImportWriter`; jobs run on the shared `UnitExecutor`
(at most `max_concurrent_imports` in flight, a bounded queue, key order, one failure latch).
"""

from __future__ import annotations

import csv
import threading
import time
import typing as t
from array import array
from collections import deque
from dataclasses import dataclass, field

from target_marketo_ingest.errors import TargetError
from target_marketo_ingest.executor import UnitExecutor

if t.TYPE_CHECKING:
    from pathlib import Path

    from target_marketo_ingest.context import WriteContext

PENDING_STATUSES = frozenset({"created", "queued", "importing", "processing"})
DONE_STATUSES = frozenset({"complete", "completed"})
FAILED_STATUSES = frozenset({"failed", "cancelled", "canceled"})
MAX_QUEUE_WAIT_SECONDS = 3600.0  # 1016 for an hour: someone else holds the queue; stop


@dataclass
class ImportFile:
    """A written import file waiting for (or in) a Marketo job."""

    path: Path
    header: list[str]
    line_numbers: t.Sequence[int]
    size: int
    unit: int
    params: dict[str, t.Any]
    label: str
    key_hashes: array = field(default_factory=lambda: array("q"))
    after: list[threading.Event] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def rows(self) -> int:
        """Data rows in the file."""
        return len(self.line_numbers)


def match_rows(
    input_rows: t.Iterable[list[str]],
    reported: t.Iterable[list[str]],
) -> list[int | None]:
    """Map each reported row (failure or warning) to an input row index by its values.

    Keys can be empty or duplicated, so this joins on the whole row: each reported row takes
    the first still-unmatched input row with the same values; None when nothing matches.
    """
    return [None if hit is None else hit[0] for hit in _match_stream(input_rows, reported)]


def _match_stream(
    input_rows: t.Iterable[list[str]],
    reported: t.Iterable[list[str]],
) -> list[tuple[int, list[str]] | None]:
    """`match_rows` with the matched input row; holds only the reported rows in memory.

    The input (a whole import file) is streamed: reported rows are few, input rows are not.
    """
    waiting: dict[tuple[str, ...], deque[int]] = {}
    count = 0
    for count, row in enumerate(reported, start=1):
        waiting.setdefault(tuple(row), deque()).append(count - 1)
    matches: list[tuple[int, list[str]] | None] = [None] * count
    for index, row in enumerate(input_rows):
        if not waiting:
            break
        values = tuple(row)
        slots = waiting.get(values)
        if slots:
            matches[slots.popleft()] = (index, row)
            if not slots:
                del waiting[values]
    return matches


class BulkEndpoint(t.Protocol):
    """The Marketo calls of one bulk import API (leads or program members)."""

    name: str

    def create(self, client: t.Any, file: ImportFile, content: bytes) -> dict:
        """Upload a file as a new job; returns the job (batchId, status)."""

    def status(self, client: t.Any, batch_id: t.Any) -> dict:
        """The job's current status."""

    def failures_path(self, batch_id: t.Any) -> str:
        """Path of the failures file."""

    def warnings_path(self, batch_id: t.Any) -> str:
        """Path of the warnings file."""


class ImportJobRunner:
    """Runs import files through Marketo: at most N jobs in flight and a bounded queue."""

    def __init__(self, ctx: WriteContext, endpoint: BulkEndpoint) -> None:
        self.ctx = ctx
        self.endpoint = endpoint
        opts = ctx.options
        self.executor = UnitExecutor(
            name=f"import-{ctx.stream}",
            workers=max(1, min(2, opts.max_concurrent_imports)),
            queued=max(1, opts.import_queue_files),
            latch=ctx.fatal,
            checkpoints=ctx.checkpoints,
        )
        self._lock = threading.Lock()
        self._seconds_per_row: float | None = None

    @property
    def in_flight(self) -> int:
        """Jobs running now."""
        return self.executor.in_flight

    @property
    def max_in_flight(self) -> int:
        """Most jobs that ran at once."""
        return self.executor.max_in_flight

    @property
    def backpressure_waits(self) -> int:
        """Times reading input paused for a free slot."""
        return self.executor.backpressure_waits

    def submit(self, file: ImportFile) -> None:
        """Queue a file; blocks while every slot is taken (reading input pauses).

        A file sharing a key with an earlier unfinished one starts after it (last wins).
        """
        if self.executor.full:
            self.ctx.logger.info(
                "Stream '%s': %d import files waiting or in flight; input paused",
                self.ctx.stream,
                self.executor.waiting,
            )
        task = self.executor.submit(
            lambda: self._run_file(file), keys=file.key_hashes, unit=file.unit
        )
        file.after, file.done = task.after, task.done

    def close(self) -> None:
        """Wait for every queued and running job."""
        self.executor.close()

    # One file, start to end.

    def _run_file(self, file: ImportFile) -> None:
        try:
            self._run_job(file)
        finally:
            file.path.unlink(missing_ok=True)

    def _run_job(self, file: ImportFile) -> None:
        from marketo_common import MarketoAPIError, TooManyImportsError  # noqa: PLC0415

        ctx = self.ctx
        content = file.path.read_bytes()
        failed_once = False
        while True:
            started = time.monotonic()
            try:
                created = self._create(file, content)
            except TooManyImportsError:
                raise  # _create waits on 1016 itself; only reached if it gives up
            except MarketoAPIError as exc:
                if exc.retryable:
                    raise
                self._reject_file(
                    file, reason="import_rejected", code=exc.code, message=exc.message
                )
                return
            batch_id = created.get("batchId")
            status = self._poll(file, batch_id, created)
            state = str(status.get("status", "")).lower()
            elapsed = time.monotonic() - started
            if state in FAILED_STATUSES:
                message = status.get("message") or "import job failed"
                if not failed_once:
                    failed_once = True
                    ctx.logger.warning(
                        "Stream '%s': import %s (%s) failed after %.1fs: %s; resubmitting once",
                        ctx.stream,
                        batch_id,
                        file.label,
                        elapsed,
                        message,
                    )
                    continue
                ctx.logger.error(
                    "Stream '%s': import %s (%s) failed again: %s; rejecting its %d rows",
                    ctx.stream,
                    batch_id,
                    file.label,
                    message,
                    file.rows,
                )
                self._reject_file(file, reason="import_failed", code=None, message=message)
                return
            self._complete(file, batch_id, status, elapsed)
            return

    def _create(self, file: ImportFile, content: bytes) -> dict:
        from marketo_common import TooManyImportsError  # noqa: PLC0415

        ctx = self.ctx
        wait = ctx.options.poll_interval_seconds
        waited = 0.0
        while True:
            try:
                ctx.api_call()
                result = self.endpoint.create(ctx.client, file, content)
            except TooManyImportsError:
                if waited >= MAX_QUEUE_WAIT_SECONDS:
                    msg = (
                        f"Marketo's import queue stayed full (1016) for {waited:.0f}s; "
                        "other jobs hold all 10 slots"
                    )
                    raise TargetError(msg) from None
                ctx.logger.info(
                    "Stream '%s': Marketo import queue is full (1016); waiting %.1fs to "
                    "resubmit %s",
                    ctx.stream,
                    wait,
                    file.label,
                )
                time.sleep(wait)
                waited += wait
                wait = min(wait * 2, ctx.options.poll_max_seconds * 2)
                continue
            ctx.summary.add("requests")
            ctx.logger.info(
                "Stream '%s': import %s created for %s (%d rows, %d bytes) status %s",
                ctx.stream,
                result.get("batchId"),
                file.label,
                file.rows,
                file.size,
                result.get("status"),
            )
            return result

    def _poll(self, file: ImportFile, batch_id: t.Any, created: dict) -> dict:
        """Poll between the minimum and maximum interval (5-30 s by default), adaptively.

        Without history the interval grows by half while nothing changes. Once a job has
        finished, the seconds per row it took predict when the next one ends: sleep until
        then (at most the maximum interval at a time), then poll at the minimum interval,
        so a finished job is seen within one short interval and its slot is reused at once.
        """
        ctx = self.ctx
        low, high = ctx.options.poll_interval_seconds, ctx.options.poll_max_seconds
        status = created
        last = str(status.get("status", "")).lower()
        interval = low
        started = time.monotonic()
        expected = self._expected_seconds(file.rows)
        last_pending_at = started
        while last in PENDING_STATUSES or not last:
            if expected is not None:
                remaining = started + expected - time.monotonic()
                wait = min(high, max(low, remaining))
            else:
                wait = interval
                interval = min(interval * 1.5, high)
            time.sleep(wait)
            ctx.api_call()
            status = self.endpoint.status(ctx.client, batch_id)
            now = str(status.get("status", "")).lower()
            polled_at = time.monotonic()
            if now != last:
                ctx.logger.info(
                    "Stream '%s': import %s (%s) %s -> %s after %.1fs",
                    ctx.stream,
                    batch_id,
                    file.label,
                    last or "?",
                    now,
                    polled_at - started,
                )
                interval = low
            if now in PENDING_STATUSES:
                last_pending_at = polled_at
            else:
                # The job ended between the last two polls. Aim late in that bracket: polling
                # just after the end costs less than polling just before it.
                ended = last_pending_at + 0.75 * (polled_at - last_pending_at)
                self._learn(ended - started, file.rows)
            last = now
        return status

    def _expected_seconds(self, rows: int) -> float | None:
        with self._lock:
            return None if self._seconds_per_row is None else self._seconds_per_row * rows

    def _learn(self, seconds: float, rows: int) -> None:
        if rows <= 0 or seconds <= 0:
            return
        observed = seconds / rows
        with self._lock:
            previous = self._seconds_per_row
            self._seconds_per_row = observed if previous is None else (previous + observed) / 2

    def _complete(self, file: ImportFile, batch_id: t.Any, status: dict, elapsed: float) -> None:
        ctx = self.ctx
        failed = int(status.get("numOfRowsFailed") or 0)
        warned = int(status.get("numOfRowsWithWarning") or 0)
        rejected = 0
        if failed:
            rejected = self._report(file, self.endpoint.failures_path(batch_id), warning=False)
        warned_rows = 0
        if warned:
            warned_rows = self._report(file, self.endpoint.warnings_path(batch_id), warning=True)
        imported = file.rows - rejected
        if ctx.options.warnings_as_rejects:
            imported -= warned_rows
        ctx.summary.add("imported", imported)
        ctx.logger.info(
            "Stream '%s': import %s (%s) complete in %.1fs: %d rows imported, %d failed, "
            "%d with warnings",
            ctx.stream,
            batch_id,
            file.label,
            elapsed,
            imported,
            rejected,
            warned_rows,
        )

    def _report(self, file: ImportFile, path: str, *, warning: bool) -> int:
        """Fetch a failures/warnings file and write each row's entry; returns the row count."""
        ctx = self.ctx
        tmp = file.path.with_suffix(".warnings.csv" if warning else ".failures.csv")
        ctx.api_call()
        ctx.client.save_file(path, tmp)
        try:
            return self._map_report(file, tmp, warning=warning)
        finally:
            tmp.unlink(missing_ok=True)

    def _map_report(self, file: ImportFile, report_path: Path, *, warning: bool) -> int:
        ctx = self.ctx
        with report_path.open(encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            report_header = next(reader, None) or []
            positions = [
                report_header.index(name) if name in report_header else None for name in file.header
            ]
            extra = [i for i in range(len(report_header)) if i not in positions]
            reported: list[tuple[list[str], str]] = []
            for row in reader:
                values = [row[p] if p is not None and p < len(row) else "" for p in positions]
                reason = " ".join(row[i] for i in extra if i < len(row)) or "no reason given"
                reported.append((values, reason))
        with file.path.open(encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            matches = _match_stream(reader, (values for values, _ in reported))
        for (values, reason), hit in zip(reported, matches, strict=True):
            line = file.line_numbers[hit[0]] if hit is not None else None
            record = dict(zip(file.header, hit[1] if hit is not None else values, strict=False))
            if warning:
                ctx.warn(line=line, message=reason, record=record)
            else:
                ctx.reject(line=line, reason="marketo_failure", message=reason, record=record)
        return len(reported)

    def _reject_file(self, file: ImportFile, *, reason: str, code: t.Any, message: str) -> None:
        with file.path.open(encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            for line, row in zip(file.line_numbers, reader, strict=False):
                self.ctx.reject(
                    line=line,
                    reason=reason,
                    message=message,
                    record=dict(zip(file.header, row, strict=False)),
                    code=code,
                )
