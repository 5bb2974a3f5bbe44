"""The one executor of bulk, ingestion and REST units: slots, key order, failure latch."""

from __future__ import annotations

import threading
import time

import pytest
from target_marketo_ingest.checkpoint import Checkpoints
from target_marketo_ingest.errors import TargetError
from target_marketo_ingest.executor import FailureLatch, UnitExecutor


def _executor(workers: int, queued: int) -> tuple[UnitExecutor, list]:
    emitted: list = []
    checkpoints = Checkpoints(emitted.append)
    executor = UnitExecutor(
        name="t", workers=workers, queued=queued, latch=FailureLatch(), checkpoints=checkpoints
    )
    return executor, emitted


def test_units_sharing_a_key_run_in_order_others_in_parallel():
    executor, _ = _executor(workers=3, queued=0)
    order: list[str] = []
    first_may_end = threading.Event()

    def first():
        first_may_end.wait(5)
        order.append("first")

    executor.submit(first, keys={"a"})
    second = executor.submit(lambda: order.append("second"), keys={"a", "b"})
    executor.submit(lambda: order.append("other"), keys={"c"})
    deadline = time.monotonic() + 5
    while "other" not in order and time.monotonic() < deadline:
        time.sleep(0.01)
    assert order == ["other"]  # "second" waits for "first"; "other" does not
    assert len(second.after) == 1
    first_may_end.set()
    executor.close()
    assert order == ["other", "first", "second"]


def test_submit_blocks_when_every_slot_is_taken():
    executor, _ = _executor(workers=1, queued=1)
    release = threading.Event()
    executor.submit(lambda: release.wait(5))
    executor.submit(lambda: None)
    assert executor.full
    threading.Timer(0.2, release.set).start()
    started = time.monotonic()
    executor.submit(lambda: None)
    assert time.monotonic() - started >= 0.15
    assert executor.backpressure_waits == 1
    executor.close()
    assert executor.max_in_flight == 1


def test_a_worker_failure_is_latched_and_later_units_keep_their_checkpoint_open():
    executor, emitted = _executor(workers=1, queued=4)
    checkpoints = executor._checkpoints
    boom = checkpoints.open_unit(0)
    later = checkpoints.open_unit(1)

    def fail():
        raise RuntimeError("disk full")

    executor.submit(fail, unit=boom)
    executor.submit(lambda: None, unit=later)
    with pytest.raises(TargetError, match="disk full"):
        executor.close()
    checkpoints.add_state({"s": 1}, 1)
    assert emitted == []  # neither unit closed: no STATE passes the failed work
    with pytest.raises(TargetError, match="disk full"):
        executor.submit(lambda: None)


def test_inline_units_run_in_the_calling_thread_and_raise_there():
    executor, emitted = _executor(workers=0, queued=0)
    unit = executor._checkpoints.open_unit(0)
    threads = []
    executor.submit(lambda: threads.append(threading.current_thread()), unit=unit)
    assert threads == [threading.current_thread()]
    executor._checkpoints.add_state({"s": 1}, 1)
    assert emitted == [{"s": 1}]
    with pytest.raises(ValueError, match="bad"):
        executor.submit(lambda: (_ for _ in ()).throw(ValueError("bad")))
