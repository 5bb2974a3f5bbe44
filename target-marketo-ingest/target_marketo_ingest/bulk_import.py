"""Bulk import machinery shared by leads and program members.

Records become CSV rows as they arrive; rows of one future file are held (deduped by key,
last wins) until the file would pass the size limit, then written and handed to a bounded
queue. At most `max_concurrent_imports` jobs are in flight; when the queue is full, `submit`
blocks, so reading input pauses (backpressure) and memory and disk stay bounded.
"""

from __future__ import annotations

import contextlib
import csv
import queue
import shutil
import tempfile
import threading
import time
import typing as t
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from target_marketo_ingest.errors import TargetError

if t.TYPE_CHECKING:
    from target_marketo_ingest.context import WriteContext

PENDING_STATUSES = frozenset({"created", "queued", "importing", "processing"})
DONE_STATUSES = frozenset({"complete", "completed"})
FAILED_STATUSES = frozenset({"failed", "cancelled", "canceled"})
MAX_QUEUE_WAIT_SECONDS = 3600.0  # 1016 for an hour: someone else holds the queue; stop


class _LineSink:
    """csv.writer target that keeps the last rendered line."""

    __slots__ = ("write",)

    def __init__(self, lines: list[str]) -> None:
        self.write = lines.append


class CsvRenderer:
    """Render one row to a CSV line (RFC 4180 quoting: commas, quotes, newlines)."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._writer = csv.writer(_LineSink(self._lines), lineterminator="\n")
        self._pop = self._lines.pop

    def render(self, row: list[str]) -> str:
        """The CSV text of one row, newline included."""
        self._writer.writerow(row)
        return self._pop()


def byte_size(text: str) -> int:
    """UTF-8 size without encoding ASCII text."""
    return len(text) if text.isascii() else len(text.encode("utf-8"))


@dataclass
class ImportFile:
    """A written import file waiting for (or in) a Marketo job."""

    path: Path
    header: list[str]
    line_numbers: list[int]
    size: int
    unit: int
    params: dict[str, t.Any]
    label: str
    keys: frozenset = frozenset()
    after: list[threading.Event] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def rows(self) -> int:
        """Data rows in the file."""
        return len(self.line_numbers)


class ImportFileBuilder:
    """Rows for one file, deduped by key (last wins), sized in bytes."""

    def __init__(self, header: list[str], renderer: CsvRenderer) -> None:
        self.header_line = renderer.render(header)
        self.size = byte_size(self.header_line)
        self.rows: dict[t.Any, tuple[str, int, int]] = {}
        self.unit: int | None = None
        self.opened_at = time.monotonic()

    def add(self, key: t.Any, line: str, line_no: int, nbytes: int) -> int | None:
        """Add a row; returns the input line of the row it superseded, if any."""
        old = self.rows.get(key)
        if old is not None:
            self.size -= old[2]
            del self.rows[key]  # the last record wins, and its position is the latest
        self.rows[key] = (line, line_no, nbytes)
        self.size += nbytes
        return None if old is None else old[1]

    def write(self, directory: Path, name: str) -> tuple[Path, list[int]]:
        """Write the file; returns its path and the input line of each data row."""
        path = directory / name
        lines = [self.header_line]
        numbers: list[int] = []
        for line, line_no, _ in self.rows.values():
            lines.append(line)
            numbers.append(line_no)
        with path.open("w", encoding="utf-8", newline="") as fh:
            fh.write("".join(lines))
        self.rows = {}
        return path, numbers


def match_rows(
    input_rows: t.Iterable[list[str]],
    reported: t.Iterable[list[str]],
) -> list[int | None]:
    """Map each reported row (failure or warning) to an input row index by its values.

    Keys can be empty or duplicated, so this joins on the whole row: each reported row takes
    the first still-unmatched input row with the same values; None when nothing matches.
    """
    waiting: dict[tuple[str, ...], deque[int]] = {}
    for index, row in enumerate(input_rows):
        waiting.setdefault(tuple(row), deque()).append(index)
    matches: list[int | None] = []
    for row in reported:
        slots = waiting.get(tuple(row))
        matches.append(slots.popleft() if slots else None)
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
    """Runs import files through Marketo with at most N jobs in flight and a bounded queue."""

    def __init__(self, ctx: WriteContext, endpoint: BulkEndpoint) -> None:
        self.ctx = ctx
        self.endpoint = endpoint
        opts = ctx.options
        self._queue: queue.Queue[ImportFile | None] = queue.Queue(
            maxsize=max(1, opts.import_queue_files)
        )
        self._workers: list[threading.Thread] = []
        self._n_workers = max(1, min(2, opts.max_concurrent_imports))
        self.in_flight = 0
        self.max_in_flight = 0
        self.backpressure_waits = 0
        self._lock = threading.Lock()
        self._seconds_per_row: float | None = None

    def submit(self, file: ImportFile) -> None:
        """Queue a file; blocks while the queue is full (reading input pauses)."""
        self._start()
        self._raise_fatal()
        if self._queue.full():
            self.backpressure_waits += 1
            self.ctx.logger.info(
                "Stream '%s': %d import files waiting and %d jobs in flight; input paused",
                self.ctx.stream,
                self._queue.qsize(),
                self.in_flight,
            )
        self._put(file)

    def _put(self, item: ImportFile | None) -> None:
        """Put with a timeout so a failed worker stops the reading thread instead of hanging."""
        while True:
            self._raise_fatal()
            with contextlib.suppress(queue.Full):
                self._queue.put(item, timeout=0.5)
                return

    def close(self) -> None:
        """Wait for every queued and running job."""
        if not self._workers:
            return
        for _ in self._workers:
            self._put(None)
        for worker in self._workers:
            worker.join()
        self._workers = []
        self._raise_fatal()

    def _raise_fatal(self) -> None:
        error = self.ctx.fatal.error
        if error is not None:
            if isinstance(error, TargetError):
                raise error
            raise TargetError(str(error)) from error

    def _start(self) -> None:
        if self._workers:
            return
        for index in range(self._n_workers):
            worker = threading.Thread(
                target=self._work, name=f"import-{self.ctx.stream}-{index}", daemon=True
            )
            worker.start()
            self._workers.append(worker)

    def _work(self) -> None:
        while True:
            file = self._queue.get()
            if file is None:
                return
            if self.ctx.fatal.error is not None:
                file.done.set()
                continue  # the run is stopping; its unit stays open so no STATE passes it
            try:
                # A key in an earlier unfinished file: that file must land first (last wins).
                for earlier in file.after:
                    while not earlier.wait(0.5):
                        if self.ctx.fatal.error is not None:
                            raise RuntimeError("stopping")  # noqa: TRY301
                with self._lock:
                    self.in_flight += 1
                    self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    self._run_file(file)
                finally:
                    with self._lock:
                        self.in_flight -= 1
                self.ctx.checkpoints.close_unit(file.unit)
                file.path.unlink(missing_ok=True)
            except BaseException as exc:
                self.ctx.fatal.set(exc)
            finally:
                file.done.set()

    # One file, start to end.

    def _run_file(self, file: ImportFile) -> None:
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
        response = ctx.client.download(path)
        try:
            with tmp.open("wb") as out:
                for chunk in response.iter_content(chunk_size=1 << 16):
                    out.write(chunk)
        finally:
            response.close()
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
            input_rows = list(reader)
        matches = match_rows(input_rows, (values for values, _ in reported))
        for (values, reason), index in zip(reported, matches, strict=True):
            line = file.line_numbers[index] if index is not None else None
            record = dict(
                zip(file.header, input_rows[index] if index is not None else values, strict=False)
            )
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


GroupSpec = tuple[t.Any, dict[str, t.Any], str]
NO_GROUP: GroupSpec = (None, {}, "")


@dataclass
class _Group:
    builder: ImportFileBuilder
    params: dict[str, t.Any]
    label: str
    key: t.Any = None


class BulkImportWriter:
    """Sink-facing side: rows in, files out, one open file per group."""

    def __init__(
        self,
        ctx: WriteContext,
        endpoint: BulkEndpoint,
        header: list[str],
        key_index: list[int],
        *,
        scope_param: str | None = None,
    ) -> None:
        self.ctx = ctx
        # Records of one scope (a program) with the same key are one member: across the open
        # files of different statuses the last record wins too.
        self._scope_param = scope_param
        self._open_keys: dict[tuple, t.Any] = {}
        self._sent: list[ImportFile] = []
        self.header = header
        self._key_index = key_index
        self._single_key = key_index[0] if len(key_index) == 1 else None
        self._renderer = CsvRenderer()
        self._writerow = self._renderer._writer.writerow  # noqa: SLF001 (hot path)
        self._pop = self._renderer._pop  # noqa: SLF001
        self._groups: dict[t.Any, _Group] = {}
        self._open_bytes = 0
        self._max_bytes = ctx.options.max_import_bytes
        self._counter = 0
        self.runner = ImportJobRunner(ctx, endpoint)
        base = ctx.options.work_dir
        self._dir = Path(tempfile.mkdtemp(prefix="target-marketo-ingest-", dir=base))

    def add(self, row: list[str], seq: int, line_no: int, group: GroupSpec = NO_GROUP) -> None:
        """Add one validated row; rolls the group's file when the row would not fit.

        `group` is (key, job parameters, label): one open file per key.
        """
        self._writerow(row)
        line = self._pop()
        nbytes = len(line) if line.isascii() else len(line.encode("utf-8"))
        group_key = group[0]
        open_group = self._groups.get(group_key)
        if open_group is None:
            open_group = self._new_group(group)
        builder = open_group.builder
        if builder.size + nbytes >= self._max_bytes:
            if not builder.rows:
                self.ctx.reject(
                    line=line_no,
                    reason="record_too_large",
                    message=f"one row is {nbytes} bytes; import files must stay under "
                    f"{self._max_bytes} bytes",
                    record=dict(zip(self.header, row, strict=False)),
                )
                return
            self._roll(open_group)
            builder = open_group.builder
        if builder.unit is None:
            builder.unit = self.ctx.checkpoints.open_unit(seq)
        key = (
            row[self._single_key]
            if self._single_key is not None
            else tuple(row[i] for i in self._key_index)
        )
        before = builder.size
        if self._scope_param is not None:
            self._supersede_elsewhere(open_group, group_key, key)
        if builder.add(key, line, line_no, nbytes) is not None:
            self.ctx.summary.add("superseded")
        self._open_bytes += builder.size - before
        if self._open_bytes > 2 * self._max_bytes:
            biggest = max(self._groups.values(), key=lambda g: g.builder.size)
            self._roll(biggest)

    def _supersede_elsewhere(self, group: _Group, group_key: t.Any, key: t.Any) -> None:
        scoped = (group.params.get(self._scope_param), key)
        other_key = self._open_keys.get(scoped)
        if other_key is not None and other_key != group_key:
            other = self._groups.get(other_key)
            old = other.builder.rows.pop(key, None) if other is not None else None
            if old is not None:
                other.builder.size -= old[2]  # type: ignore[union-attr]
                self._open_bytes -= old[2]
                self.ctx.summary.add("superseded")
        self._open_keys[scoped] = group_key

    def _new_group(self, spec: GroupSpec) -> _Group:
        key, params, label = spec
        group = _Group(ImportFileBuilder(self.header, self._renderer), params, label, key)
        self._groups[key] = group
        return group

    def _roll(self, group: _Group) -> None:
        builder = group.builder
        group.builder = ImportFileBuilder(self.header, self._renderer)
        self._open_bytes -= builder.size
        if not builder.rows:
            if builder.unit is not None:
                self.ctx.checkpoints.close_unit(builder.unit)
            return
        self._counter += 1
        size = builder.size
        scope = group.params.get(self._scope_param) if self._scope_param else None
        keys = frozenset((scope, key) for key in builder.rows)
        if self._scope_param is not None:
            for scoped in keys:
                if self._open_keys.get(scoped) == group.key:
                    del self._open_keys[scoped]
        path, numbers = builder.write(self._dir, f"{self.ctx.stream}-{self._counter:05d}.csv")
        file = ImportFile(
            path=path,
            header=self.header,
            line_numbers=numbers,
            size=size,
            unit=t.cast("int", builder.unit),
            params=group.params,
            label=f"{group.label}file {self._counter} " if group.label else f"file {self._counter}",
        )
        file.label = file.label.strip()
        self.ctx.summary.add("files")
        if self.ctx.options.dry_run:
            self.ctx.logger.info(
                "Stream '%s': dry run: built %s (%d rows, %d bytes); not sent",
                self.ctx.stream,
                file.label,
                file.rows,
                size,
            )
            self.ctx.summary.add("dry_run", file.rows)
            path.unlink(missing_ok=True)
            self.ctx.checkpoints.close_unit(file.unit)
            return
        file.keys = keys
        self._sent = [f for f in self._sent if not f.done.is_set()]
        file.after = [f.done for f in self._sent if not keys.isdisjoint(f.keys)]
        self._sent.append(file)
        self.runner.submit(file)

    def flush(self) -> None:
        """Roll every open file (end of input, schema change or an old pending STATE)."""
        for group in list(self._groups.values()):
            self._roll(group)
        self._groups.clear()
        self._open_bytes = 0

    def oldest_open_age(self) -> float:
        """Seconds since the oldest non-empty open file started."""
        now = time.monotonic()
        ages = [now - g.builder.opened_at for g in self._groups.values() if g.builder.rows]
        return max(ages, default=0.0)

    def close(self) -> None:
        """Flush and wait for every job."""
        try:
            self.flush()
            self.runner.close()
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)
