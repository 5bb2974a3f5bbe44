"""Bulk import machinery shared by leads and program members.

Records become CSV rows as they arrive and go straight to their group's spool file on disk;
memory keeps only a fixed-size key index (dedupe, last record wins) and counters. A file
rolls when the next row would pass the size limit: its live rows are copied into the import
file, which goes to a bounded queue. At most `max_concurrent_imports` jobs are in flight;
when the queue is full, `submit` blocks, so reading input pauses (backpressure) and memory
and disk stay bounded.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import queue
import shutil
import struct
import tempfile
import threading
import time
import typing as t
from array import array
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


GroupSpec = tuple[t.Any, dict[str, t.Any], str]
NO_GROUP: GroupSpec = (None, {}, "")

# A spooled row: live flag, CSV bytes, input line, key hash; then the CSV bytes.
_RECORD = struct.Struct("<BIqq")
_OFFSET_BITS = 40  # a spool file offset; the open file's slot id sits above it
_OFFSET_MASK = (1 << _OFFSET_BITS) - 1
_SPOOL_BUFFER = 1 << 16  # bytes a group buffers before writing to its spool file
MAX_OPEN_FILES = 256  # groups with an open file; more rolls the fullest (file handles, buffers)
INDEX_BITS = 21  # 2M slots, 16 bytes each: 32 MB once, room for 1M keys of open files
_key_hash = hash  # tests swap in a colliding hash to exercise the check against the disk


class KeyIndex:
    """Key hash -> where the row sits on disk, for every row of every open file.

    A Python dict costs about 100 bytes a key and a bulk run can hold a million keys of
    open files, so this is a fixed table of two arrays of 8-byte slots (linear probing,
    backward-shift deletion), allocated once: memory does not grow with input. Hashes can
    collide; the writer checks a candidate against the row on disk before trusting it.
    """

    def __init__(self, bits: int = INDEX_BITS) -> None:
        size = 1 << bits
        self.mask = size - 1
        self.capacity = size // 2  # at most half full, so probes stay short
        self.hashes = array("q", bytes(8 * size))  # 0 = empty slot
        self.values = array("Q", bytes(8 * size))
        self.count = 0

    def put(self, slot: int, key_hash: int, value: int) -> None:
        """Fill the empty slot a probe ended on."""
        self.hashes[slot] = key_hash
        self.values[slot] = value
        self.count += 1

    def delete(self, key_hash: int, value: int) -> None:
        """Remove one entry, shifting later entries of its probe run back."""
        hashes, values, mask = self.hashes, self.values, self.mask
        i = key_hash & mask
        while hashes[i] != key_hash or values[i] != value:
            if hashes[i] == 0:
                return
            i = (i + 1) & mask
        j = i
        while True:
            j = (j + 1) & mask
            moving = hashes[j]
            if moving == 0:
                break
            home = moving & mask
            # Entries whose home lies cyclically in (i, j] are still reachable: leave them.
            if (i < j and i < home <= j) or (i > j and (home > i or home <= j)):
                continue
            hashes[i] = moving
            values[i] = values[j]
            i = j
        hashes[i] = 0
        values[i] = 0
        self.count -= 1


class _Spools:
    """The process's one key index and the open files its values point to.

    One table serves every bulk stream, so memory stays one fixed 32 MB however many
    streams there are; slot ids are process-wide so an index value names one file.
    """

    def __init__(self) -> None:
        self._index: KeyIndex | None = None
        self.by_slot: dict[int, _OpenFile] = {}
        self._free: list[int] = []
        self._next = 1  # 0 would make an empty index value
        self._lock = threading.Lock()

    @property
    def index(self) -> KeyIndex:
        """The table, allocated on first use (runs without bulk streams never pay for it)."""
        if self._index is None:
            with self._lock:
                if self._index is None:
                    self._index = KeyIndex()
        return self._index

    def take_slot(self) -> int:
        """A slot id no open file uses."""
        with self._lock:
            if self._free:
                return self._free.pop()
            self._next += 1
            return self._next - 1

    def release(self, slot: int) -> None:
        """Give a slot id back."""
        with self._lock:
            self.by_slot.pop(slot, None)
            self._free.append(slot)


_SPOOLS = _Spools()


@dataclass(eq=False)
class _OpenFile:
    """One group's file being filled: rows spooled to disk, only counters in memory."""

    slot: int
    owner: t.Any
    path: Path
    fd: int
    params: dict[str, t.Any]
    label: str
    group_key: t.Any
    scope: t.Any
    size: int  # bytes of the import file as it would be written now (header + live rows)
    rows: int = 0  # live rows
    flushed: int = 0  # spool bytes on disk
    buffer: bytearray = field(default_factory=bytearray)
    unit: int | None = None
    opened_at: float = field(default_factory=time.monotonic)

    @property
    def spooled(self) -> int:
        """Spool bytes, superseded rows and record headers included."""
        return self.flushed + len(self.buffer)

    def flush(self) -> None:
        """Write the buffered records to the spool file."""
        if self.buffer:
            os.write(self.fd, self.buffer)
            self.flushed += len(self.buffer)
            self.buffer.clear()

    def read(self, offset: int, size: int) -> bytes:
        """Spool bytes from disk or from the buffer."""
        if offset >= self.flushed:
            start = offset - self.flushed
            return bytes(self.buffer[start : start + size])
        self.flush()
        return os.pread(self.fd, size, offset)

    def kill(self, offset: int) -> None:
        """Mark a spooled row superseded (its live flag is the record's first byte)."""
        if offset >= self.flushed:
            self.buffer[offset - self.flushed] = 0
        else:
            os.pwrite(self.fd, b"\x00", offset)


class BulkImportWriter:
    """Sink-facing side: rows in, files out, one open file per group.

    Each row goes straight to its group's spool file on disk; memory holds only a fixed-size
    key index (dedupe, last record wins) and a few counters per open file, so it stays flat
    however many rows the open files hold, and every file fills to the size limit however
    the groups interleave.
    """

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
        self._sent: list[ImportFile] = []
        self.header = header
        self._key_index = key_index
        self._single_key = key_index[0] if len(key_index) == 1 else None
        self._renderer = CsvRenderer()
        self._writerow = self._renderer._writer.writerow  # noqa: SLF001 (hot path)
        self._pop = self._renderer._pop  # noqa: SLF001
        self._header_bytes = self._renderer.render(header).encode("utf-8")
        self._files: dict[t.Any, _OpenFile] = {}
        self._index = _SPOOLS.index
        self._max_bytes = ctx.options.max_import_bytes
        # Superseded rows stay in the spool until the file rolls; past this the file rolls
        # early rather than let the disk grow with rewrites of the same keys.
        self._max_spool = 4 * self._max_bytes
        self._counter = 0
        self.runner = ImportJobRunner(ctx, endpoint)
        base = ctx.options.work_dir
        self._dir = Path(tempfile.mkdtemp(prefix="target-marketo-ingest-", dir=base))

    def add(self, row: list[str], seq: int, line_no: int, group: GroupSpec = NO_GROUP) -> None:
        """Add one validated row; rolls the group's file when the row would not fit.

        `group` is (key, job parameters, label): one open file per key.
        """
        self._writerow(row)
        data = self._pop().encode("utf-8")
        nbytes = len(data)
        index = self._index
        if index.count >= index.capacity and self._files:
            # The table is full (a million keys in open files): roll this stream's fullest.
            self._roll(max(self._files.values(), key=lambda f: f.rows))
        file = self._files.get(group[0])
        if file is None:
            file = self._open(group)
        if file.size + nbytes >= self._max_bytes or file.spooled >= self._max_spool:
            if not file.rows and file.size + nbytes >= self._max_bytes:
                self.ctx.reject(
                    line=line_no,
                    reason="record_too_large",
                    message=f"one row is {nbytes} bytes; import files must stay under "
                    f"{self._max_bytes} bytes",
                    record=dict(zip(self.header, row, strict=False)),
                )
                return
            self._roll(file)
            file = self._open(group)
        if file.unit is None:
            file.unit = self.ctx.checkpoints.open_unit(seq)
        key = (
            row[self._single_key]
            if self._single_key is not None
            else tuple(row[i] for i in self._key_index)
        )
        key_hash = _key_hash((file.scope, key)) or 1
        offset = file.spooled
        value = file.slot << _OFFSET_BITS | offset
        hashes, mask = index.hashes, index.mask
        slot = key_hash & mask
        while True:
            found = hashes[slot]
            if found == 0:
                index.put(slot, key_hash, value)
                break
            if found == key_hash and self._supersede(index.values[slot], file.scope, key):
                index.values[slot] = value  # the last record wins, at its latest position
                break
            slot = (slot + 1) & mask
        buffer = file.buffer
        buffer += _RECORD.pack(1, nbytes, line_no, key_hash)
        buffer += data
        file.size += nbytes
        file.rows += 1
        if len(buffer) >= _SPOOL_BUFFER:
            file.flush()

    def _supersede(self, value: int, scope: t.Any, key: t.Any) -> bool:
        """If the row at `value` has this scope and key, mark it superseded."""
        other = _SPOOLS.by_slot.get(value >> _OFFSET_BITS)
        if other is None or other.owner is not self or other.scope != scope:
            return False
        offset = value & _OFFSET_MASK
        if offset + _RECORD.size > other.spooled:
            return False  # left by a file that failed to roll; its slot id was reused
        live, nbytes, _, _ = _RECORD.unpack(other.read(offset, _RECORD.size))
        if not live or offset + _RECORD.size + nbytes > other.spooled:
            return False
        text = other.read(offset + _RECORD.size, nbytes).decode("utf-8", "replace")
        old = next(csv.reader(io.StringIO(text, newline="")))
        old_key = (
            old[self._single_key]
            if self._single_key is not None
            else tuple(old[i] for i in self._key_index)
        )
        if old_key != key:
            return False  # a hash collision: a different key
        other.kill(offset)
        other.size -= nbytes
        other.rows -= 1
        self.ctx.summary.add("superseded")
        return True

    def _open(self, spec: GroupSpec) -> _OpenFile:
        if len(self._files) >= MAX_OPEN_FILES:
            self._roll(max(self._files.values(), key=lambda f: f.size))
        group_key, params, label = spec
        slot = _SPOOLS.take_slot()
        path = self._dir / f"spool-{slot}.bin"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        file = _OpenFile(
            slot=slot,
            owner=self,
            path=path,
            fd=fd,
            params=params,
            label=label,
            group_key=group_key,
            scope=params.get(self._scope_param) if self._scope_param else None,
            size=len(self._header_bytes),
        )
        self._files[group_key] = file
        _SPOOLS.by_slot[slot] = file
        return file

    def _release(self, file: _OpenFile) -> None:
        if self._files.get(file.group_key) is file:
            del self._files[file.group_key]
        _SPOOLS.release(file.slot)
        os.close(file.fd)
        file.path.unlink(missing_ok=True)

    def _write_import_file(self, file: _OpenFile, path: Path) -> tuple[array, array]:
        """Copy the live rows of a spool into the import file; drop their index entries.

        Returns the input line and the key hash of each data row.
        """
        file.flush()
        lines, hashes = array("q"), array("q")
        delete = self._index.delete
        unpack, head = _RECORD.unpack_from, _RECORD.size
        base = file.slot << _OFFSET_BITS
        position = 0  # spool offset of pending[0]
        pending = b""
        with path.open("wb") as out:
            out.write(self._header_bytes)
            while position + len(pending) < file.flushed:
                chunk = os.pread(file.fd, 1 << 20, position + len(pending))
                data = pending + chunk
                parts: list[bytes] = []
                i, end_of_data = 0, len(data)
                while i + head <= end_of_data:
                    live, nbytes, line_no, key_hash = unpack(data, i)
                    end = i + head + nbytes
                    if end > end_of_data:
                        break
                    if live:
                        parts.append(data[i + head : end])
                        lines.append(line_no)
                        hashes.append(key_hash)
                        delete(key_hash, base | (position + i))
                    i = end
                out.write(b"".join(parts))
                pending = data[i:]
                position += i
        return lines, hashes

    def _roll(self, file: _OpenFile) -> None:
        if not file.rows:
            self._release(file)
            if file.unit is not None:
                self.ctx.checkpoints.close_unit(file.unit)
            return
        self._counter += 1
        path = self._dir / f"{self.ctx.stream}-{self._counter:05d}.csv"
        try:
            numbers, key_hashes = self._write_import_file(file, path)
        finally:
            self._release(file)
        size = file.size
        label = f"{file.label}file {self._counter} " if file.label else f"file {self._counter}"
        imported = ImportFile(
            path=path,
            header=self.header,
            line_numbers=numbers,  # type: ignore[arg-type]
            size=size,
            unit=t.cast("int", file.unit),
            params=file.params,
            label=label.strip(),
        )
        self.ctx.summary.add("files")
        if self.ctx.options.dry_run:
            self.ctx.logger.info(
                "Stream '%s': dry run: built %s (%d rows, %d bytes); not sent",
                self.ctx.stream,
                imported.label,
                imported.rows,
                size,
            )
            self.ctx.summary.add("dry_run", imported.rows)
            path.unlink(missing_ok=True)
            self.ctx.checkpoints.close_unit(imported.unit)
            return
        imported.key_hashes = key_hashes
        self._sent = [f for f in self._sent if not f.done.is_set()]
        if self._sent:
            # A key hash shared with an unfinished file: wait for it (a collision only waits).
            mine = set(key_hashes)
            imported.after = [f.done for f in self._sent if not mine.isdisjoint(f.key_hashes)]
        self._sent.append(imported)
        self.runner.submit(imported)

    def flush(self) -> None:
        """Roll every open file (end of input, schema change or an old pending STATE)."""
        for file in list(self._files.values()):
            self._roll(file)

    def oldest_open_age(self) -> float:
        """Seconds since the oldest non-empty open file started."""
        now = time.monotonic()
        ages = [now - f.opened_at for f in self._files.values() if f.rows]
        return max(ages, default=0.0)

    def close(self) -> None:
        """Flush and wait for every job."""
        try:
            self.flush()
            self.runner.close()
        finally:
            for file in list(self._files.values()):
                self._release(file)
            shutil.rmtree(self._dir, ignore_errors=True)
