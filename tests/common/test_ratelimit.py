from __future__ import annotations

import random
import threading
import time

import pytest
from marketo_common import RateLimiter


class FakeClock:
    """Shared fake time: sleeping advances it, so 20-second windows pass instantly."""

    def __init__(self):
        self.now = 0.0
        self.lock = threading.Lock()

    def __call__(self):
        with self.lock:
            return self.now

    def sleep(self, seconds):
        with self.lock:
            self.now += seconds
        time.sleep(0)  # let other threads run


def max_in_any_window(starts, period):
    starts = sorted(starts)
    best = 0
    j = 0
    for i, start in enumerate(starts):
        while starts[j] < start - period:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_never_more_than_100_starts_in_any_20s_window():
    clock = FakeClock()
    limiter = RateLimiter(100, 20.0, 10, clock=clock, sleep=clock.sleep)
    starts = []
    lock = threading.Lock()

    def worker():
        for _ in range(20):
            with limiter, lock:
                starts.append(clock())

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(starts) == 320
    assert max_in_any_window(starts, 20.0) == 100  # saturated, never exceeded
    assert clock.now >= 60.0  # 320 calls need at least three full windows


def test_never_more_than_10_at_once():
    clock = FakeClock()
    limiter = RateLimiter(100, 20.0, 10, clock=clock, sleep=clock.sleep)
    active, peak = [0], [0]
    lock = threading.Lock()
    full = threading.Event()

    def call():
        with limiter:
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
                if active[0] == 10:
                    full.set()
            full.wait(2)  # hold every slot until ten run together
            time.sleep(0.02)  # and give any eleventh the chance to slip in
            with lock:
                active[0] -= 1

    threads = [threading.Thread(target=call) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert full.is_set()
    assert peak[0] == 10


def test_window_waits_for_the_oldest_start_to_leave():
    clock = FakeClock()
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        clock.sleep(seconds)

    limiter = RateLimiter(3, 20.0, 10, clock=clock, sleep=sleep)
    for offset in (0.0, 5.0, 6.0):
        clock.now = offset
        with limiter:
            pass
    with limiter:
        pass
    assert sum(slept) == pytest.approx(14.0, abs=0.01)  # until the start at t=0 is 20 s old
    assert clock.now > 20.0


def test_concurrency_slot_freed_on_exit_even_after_errors():
    limiter = RateLimiter(1000, 20.0, 2)
    for _ in range(5):
        with pytest.raises(RuntimeError), limiter:
            raise RuntimeError
    with limiter, limiter:
        pass


def test_eleventh_concurrent_call_blocks_until_one_ends():
    limiter = RateLimiter(100, 20.0, 10)
    for _ in range(10):
        limiter.acquire()
    entered = threading.Event()

    def eleventh():
        with limiter:
            entered.set()

    thread = threading.Thread(target=eleventh)
    thread.start()
    assert not entered.wait(0.1)
    limiter.release()
    assert entered.wait(2)
    thread.join(2)


def test_a_late_arrival_cannot_squeeze_a_window():
    """Soak bug (b): Marketo counts a call when it arrives, somewhere between our start and
    the end of its answer. A call that reached Marketo late (slow connect, busy machine) and
    one started `period` after it arrived together inside one window: 606."""
    clock = FakeClock()
    limiter = RateLimiter(3, 20.0, 10, clock=clock, sleep=clock.sleep)
    arrivals = []
    with limiter:
        clock.now = 0.9  # the first call reaches Marketo late...
        arrivals.append(clock())
        clock.now = 1.0  # ...and its answer ends
    for _ in range(2):
        with limiter:
            arrivals.append(clock())
    with limiter:  # counting from the start alone let this one go at t=20
        arrivals.append(clock())
    assert max_in_any_window(arrivals, 20.0) == 3
    assert arrivals[-1] > 21.0


def test_arrivals_stay_within_the_window_whatever_the_latency():
    rng = random.Random(7)
    clock = FakeClock()
    limiter = RateLimiter(10, 20.0, 10, clock=clock, sleep=clock.sleep)
    arrivals = []
    for _ in range(300):
        with limiter:
            latency = rng.choice((0.01, 0.05, 0.5, 3.0))
            arrival = clock() + rng.uniform(0, latency)
            arrivals.append(arrival)
            clock.now += latency
    assert max_in_any_window(arrivals, 20.0) <= 10
    # saturated all the same: 300 calls in about 30 windows, not many more
    assert clock.now < 31 * 20.0 + 300 * 3.0
