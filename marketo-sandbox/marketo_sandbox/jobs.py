"""Marketo's bulk job queues: FIFO, a few processing at once, a bounded queue, all on sandbox time.

Every job lives in SQLite (so a restart keeps it) and moves Queued → running → final. The work of a
running job (writing an export file, applying an import) runs in a worker thread; the job is shown
as finished once that work is done *and* its simulated processing time (rows ÷ rate, or a fixed
number of seconds, on the sandbox clock) has passed. A driver thread advances the queues every
few milliseconds of wall time. After a restart, a job found running without a worker is started
again from the beginning (exports rewrite their file, imports re-apply: both are idempotent).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

log = logging.getLogger("marketo_sandbox.bulk")

FINAL = frozenset({"Completed", "Failed", "Cancelled", "Complete"})
_TICK_WALL_SECONDS = 0.02


def fetch_all(conn: Any, sql: str, params: tuple | list = ()) -> list[dict]:
    """Rows as dicts, whatever row factory the connection uses."""
    cur = conn.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def fetch_one(conn: Any, sql: str, params: tuple | list = ()) -> dict | None:
    """The first row as a dict, or None."""
    rows = fetch_all(conn, sql, params)
    return rows[0] if rows else None


def next_seq(conn: Any, table: str) -> int:
    """The queue position of a job enqueued now (FIFO by seq)."""
    return fetch_one(conn, f"SELECT COALESCE(MAX(seq), 0) + 1 AS s FROM {table}")["s"]  # noqa: S608


def every(seconds: float, hook: Callable[[float], None]) -> Callable[[float], None]:
    """A scheduler hook that runs `hook` at most once per `seconds` of sandbox time."""
    state = {"next": 0.0}

    def throttled(now: float) -> None:
        if now < state["next"]:
            return
        state["next"] = now + seconds
        hook(now)

    return throttled


@dataclass
class Pool:
    """One queue of jobs sharing slots (all export types share one; all import types share one)."""

    name: str
    table: str
    queued: str  # status name while waiting
    running: str  # status name while working ("Processing" or "Importing")
    done: str  # status name of success ("Completed" or "Complete")
    max_running: Callable[[], int]
    #: Run the job's work; gets the job row and a should_stop callable; returns columns to store
    #: and the number of rows (for the simulated duration).
    work: Callable[[dict, Callable[[], bool]], tuple[dict, int]]
    #: Sandbox seconds the job should appear to take for this many rows.
    duration: Callable[[int], float]
    on_cancel: Callable[[dict], None] | None = None
    #: Factor on the job's simulated duration (assumed load jitter); None: exactly `duration`.
    jitter: Callable[[dict], float] | None = None
    #: Running workers by job id, each with the event that tells it to stop.
    workers: dict[Any, threading.Event] = field(default_factory=dict)


class Scheduler:
    """Advances every pool on the sandbox clock; one per app."""

    def __init__(self, store: Any, clock: Any) -> None:
        self.store = store
        self.clock = clock
        self.pools: dict[str, Pool] = {}
        self.hooks: list[Callable[[float], None]] = []
        self.lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._threads: set[threading.Thread] = set()  # live workers, joined by `paused`
        self._paused = False

    def now(self) -> float:
        """Sandbox time as epoch seconds."""
        return self.clock.timestamp()

    def add_pool(self, pool: Pool) -> None:
        """Register a queue to advance."""
        self.pools[pool.name] = pool

    def start(self) -> None:
        """Start the driver thread (idempotent)."""
        with self.lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._run, name="bulk-scheduler", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the driver thread; running workers notice and stop."""
        self._stop.set()
        self._wake.set()

    def wake(self) -> None:
        """Advance the queues now rather than at the next tick."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # the driver must survive anything a single tick hits
                log.exception("bulk scheduler tick failed")
            self._wake.wait(_TICK_WALL_SECONDS)
            self._wake.clear()

    @contextlib.contextmanager
    def paused(self, timeout: float = 30.0) -> Iterator[None]:
        """No job advances and no worker writes inside (`/_sandbox/reset` rebuilds the db).

        Workers are told to stop and waited for first: a bulk import worker still applying
        rows wrote a lead into the rebuilt table, and the seed's own lead of that id then
        failed the reset (UNIQUE constraint, a flaky CI run).
        """
        with self.lock:
            self._paused = True
            threads = list(self._threads)
        self.forget_all()
        for thread in threads:
            thread.join(timeout)
        try:
            yield
        finally:
            with self.lock:
                self._paused = False
            self.wake()

    def tick(self) -> None:
        """Advance every pool and run the hooks once."""
        if self._paused:
            return
        now = self.now()
        for pool in self.pools.values():
            self._advance(pool, now)
        for hook in self.hooks:
            hook(now)

    def counts(self, pool: Pool) -> tuple[int, int]:
        """(queued, running) jobs in the pool right now."""
        with self.store.db.tx() as conn:
            rows = fetch_all(
                conn,
                f"SELECT status, COUNT(*) AS n FROM {pool.table} "  # noqa: S608
                "WHERE status IN (?, ?) GROUP BY status",
                (pool.queued, pool.running),
            )
        by = {r["status"]: r["n"] for r in rows}
        return by.get(pool.queued, 0), by.get(pool.running, 0)

    def _needs_work(self, pool: Pool, now: float) -> bool:
        """A read-only look first, so an idle tick never takes SQLite's write lock."""
        rows = fetch_all(
            self.store.db.conn(),
            f"SELECT id, status, work_done, due_at FROM {pool.table} "  # noqa: S608
            "WHERE status IN (?, ?)",
            (pool.queued, pool.running),
        )
        running = [r for r in rows if r["status"] == pool.running]
        if len(running) < pool.max_running() and len(running) < len(rows):
            return True
        return any(
            (r["work_done"] and now >= (r["due_at"] or 0))
            or (not r["work_done"] and r["id"] not in pool.workers)
            for r in running
        )

    def _advance(self, pool: Pool, now: float) -> None:
        if not self._needs_work(pool, now):
            return
        with self.lock, self.store.db.tx() as conn:
            if self._paused:
                return
            running = fetch_all(
                conn,
                f"SELECT * FROM {pool.table} WHERE status = ? ORDER BY seq",  # noqa: S608
                (pool.running,),
            )
            still_running = 0
            for job in running:
                if job["work_done"]:
                    if now >= (job["due_at"] or 0):
                        final = "Failed" if job["fail_message"] else pool.done
                        finished = max(job["due_at"] or now, job["started_at"] or now)
                        conn.execute(
                            f"UPDATE {pool.table} SET status = ?, finished_at = ? "  # noqa: S608
                            "WHERE id = ? AND status = ?",
                            (final, min(finished, now), job["id"], pool.running),
                        )
                        log.info("%s job %s %s", pool.name, job["id"], final)
                        continue
                elif job["id"] not in pool.workers:
                    # Found running without a worker: the server restarted mid-job.
                    log.info("%s job %s resumed after restart", pool.name, job["id"])
                    self._spawn(pool, job)
                still_running += 1
            free = pool.max_running() - still_running
            if free > 0:
                queued = fetch_all(
                    conn,
                    f"SELECT * FROM {pool.table} WHERE status = ? ORDER BY seq LIMIT ?",  # noqa: S608
                    (pool.queued, free),
                )
                for job in queued:
                    conn.execute(
                        f"UPDATE {pool.table} SET status = ?, started_at = ? WHERE id = ?",  # noqa: S608
                        (pool.running, now, job["id"]),
                    )
                    job = {**job, "status": pool.running, "started_at": now}  # noqa: PLW2901
                    log.info("%s job %s %s", pool.name, job["id"], pool.running)
                    self._spawn(pool, job)

    def _spawn(self, pool: Pool, job: dict) -> None:
        stop = threading.Event()
        thread = threading.Thread(
            target=self._work, args=(pool, job, stop), name=f"{pool.name}-{job['id']}", daemon=True
        )
        pool.workers[job["id"]] = stop
        self._threads.add(thread)
        thread.start()

    def _work(self, pool: Pool, job: dict, stop: threading.Event) -> None:
        job_id = job["id"]

        def should_stop() -> bool:
            return stop.is_set() or self._stop.is_set()

        columns: dict[str, Any] = {}
        rows = 0
        try:
            if not job.get("fail_message"):
                columns, rows = pool.work(job, should_stop)
        except Exception as exc:
            log.exception("%s job %s failed", pool.name, job_id)
            columns = {"fail_message": f"Internal error: {type(exc).__name__}"}
        try:
            if should_stop():
                return
            started = job.get("started_at") or self.now()
            factor = pool.jitter(job) if pool.jitter is not None else 1.0
            due = started + max(0.0, float(pool.duration(rows)) * factor)
            columns = {**columns, "work_done": 1, "due_at": due}
            names = ", ".join(f"{k} = ?" for k in columns)
            with self.lock, self.store.db.tx() as conn:
                if not stop.is_set():
                    conn.execute(
                        f"UPDATE {pool.table} SET {names} WHERE id = ? AND status = ?",  # noqa: S608
                        (*columns.values(), job_id, pool.running),
                    )
        finally:
            with self.lock:
                if pool.workers.get(job_id) is stop:
                    del pool.workers[job_id]
                self._threads.discard(threading.current_thread())
            self.wake()

    def cancel(self, pool: Pool, job: dict) -> None:
        """Mark a job Cancelled now; a running worker notices and stops writing."""
        with self.lock, self.store.db.tx() as conn:
            conn.execute(
                f"UPDATE {pool.table} SET status = 'Cancelled', finished_at = ? WHERE id = ?",  # noqa: S608
                (self.now(), job["id"]),
            )
            stop = pool.workers.pop(job["id"], None)
            if stop is not None:
                stop.set()
        if pool.on_cancel is not None:
            pool.on_cancel(job)
        self.wake()

    def forget_all(self) -> None:
        """Stop every worker and forget them (the data they worked on was reset)."""
        with self.lock:
            for pool in self.pools.values():
                for stop in pool.workers.values():
                    stop.set()
                pool.workers.clear()


def iter_chunks(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    """Group an iterator into lists of ``size`` without materialising it."""
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
