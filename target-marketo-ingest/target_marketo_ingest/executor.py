"""One executor for every write method: bounded units in flight, key order, one failure latch.

A unit is what one write sends at a time: an import file, a Data Ingestion request, a REST
batch. Bulk imports and ingestion requests run on worker threads; REST batches run in the
reading thread (`workers=0`), where an error simply propagates. In every case:

- at most `workers + queued` units are in flight or waiting; `submit` blocks past that, so
  reading input pauses (backpressure) and memory and disk stay bounded;
- a unit that shares a key with an earlier unfinished unit starts after it, so the last
  record of a key is the one Marketo keeps;
- the first worker failure is latched; the reading thread raises it at its next check, and
  units not yet started are skipped, leaving their checkpoint units open (no STATE passes).
"""

from __future__ import annotations

import queue
import threading
import typing as t
from dataclasses import dataclass, field

from target_marketo_ingest.errors import TargetError

if t.TYPE_CHECKING:
    from target_marketo_ingest.checkpoint import Checkpoints

WAIT_SECONDS = 0.5  # how often a blocked thread looks at the failure latch


class FailureLatch:
    """The first failure seen by a worker thread; the reading thread raises it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.error: BaseException | None = None

    def set(self, error: BaseException) -> None:
        """Keep the first error only."""
        with self._lock:
            if self.error is None:
                self.error = error

    def check(self) -> None:
        """Raise the latched failure as a TargetError (one line for the user)."""
        error = self.error
        if error is not None:
            if isinstance(error, TargetError):
                raise error
            raise TargetError(str(error)) from error


@dataclass(eq=False)
class Task:
    """One submitted unit: its work, the keys it writes, and when it is done."""

    work: t.Callable[[], None]
    keys: t.Collection[t.Hashable]
    unit: int | None
    after: list[threading.Event] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        """The unit ended: drop its work and keys, so the records they hold go now.

        A done task stays in the executor's pending list until the next `submit` (and a
        worker keeps its last one); without this, up to workers + queued finished units
        kept every record, its JSON and the request's read-back with them.
        """
        self.work = _nothing
        self.keys = ()
        self.after = []
        self.done.set()


def _nothing() -> None:
    """The work of a unit that has ended."""


class UnitExecutor:
    """Runs units on `workers` threads (or inline when 0) with the guarantees above."""

    def __init__(
        self,
        *,
        name: str,
        workers: int,
        queued: int,
        latch: FailureLatch,
        checkpoints: Checkpoints,
    ) -> None:
        self.name = name
        self.latch = latch
        self._checkpoints = checkpoints
        self._n_workers = max(0, workers)
        self._slots = threading.BoundedSemaphore(max(1, self._n_workers + max(0, queued)))
        self._queue: queue.SimpleQueue[Task | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._pending: list[Task] = []
        self._lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.backpressure_waits = 0

    @property
    def full(self) -> bool:
        """True when the next `submit` would wait for a slot."""
        if not self._slots.acquire(blocking=False):
            return True
        self._slots.release()
        return False

    @property
    def waiting(self) -> int:
        """Units submitted and not yet done."""
        return sum(1 for task in self._pending if not task.done.is_set())

    def submit(
        self,
        work: t.Callable[[], None],
        *,
        keys: t.Collection[t.Hashable] = (),
        unit: int | None = None,
    ) -> Task:
        """Queue one unit; blocks while every slot is taken. Closes `unit` when work ends."""
        self.latch.check()
        task = Task(work, keys, unit)
        if not self._n_workers:
            try:
                work()  # inline: an error propagates to the reading thread as it is
            finally:
                task.release()
            self._close(task)
            return task
        self._pending = [p for p in self._pending if not p.done.is_set()]
        if keys and self._pending:
            mine = keys if isinstance(keys, (set, frozenset)) else set(keys)
            task.after = [p.done for p in self._pending if not mine.isdisjoint(p.keys)]
        if not self._slots.acquire(blocking=False):
            self.backpressure_waits += 1
            while not self._slots.acquire(timeout=WAIT_SECONDS):
                self.latch.check()
        self._pending.append(task)
        self._start()
        self._queue.put(task)
        return task

    def close(self) -> None:
        """Wait for every unit, then raise a latched failure."""
        threads, self._threads = self._threads, []
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join()
        self.latch.check()

    def _start(self) -> None:
        while len(self._threads) < self._n_workers:
            thread = threading.Thread(
                target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _work(self) -> None:
        while True:
            task = self._queue.get()
            if task is None:
                return
            try:
                self._run(task)
            finally:
                task.release()
                self._slots.release()

    def _run(self, task: Task) -> None:
        latch = self.latch
        try:
            if latch.error is not None:
                return  # the run is stopping; the unit stays open so no STATE passes it
            for earlier in task.after:
                while not earlier.wait(WAIT_SECONDS):
                    if latch.error is not None:
                        return
            with self._lock:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                task.work()
            finally:
                with self._lock:
                    self.in_flight -= 1
            self._close(task)
        except BaseException as exc:
            latch.set(exc)

    def _close(self, task: Task) -> None:
        if task.unit is not None:
            self._checkpoints.close_unit(task.unit)
