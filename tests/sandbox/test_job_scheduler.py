"""The sandbox's job scheduler on its own: a reset waits for workers still applying rows."""

import threading
import time

from marketo_sandbox.jobs import Pool, Scheduler


def test_paused_waits_for_a_working_worker_and_no_tick_runs_inside():
    """`/_sandbox/reset` rebuilds the db inside `paused()`: no worker may still be writing.

    A bulk import worker that kept applying rows wrote a lead into the rebuilt table and the
    seed's lead of the same id then failed the reset (a flaky CI run).
    """
    sched = Scheduler(store=None, clock=None)  # a tick would need both: none may run
    started, finished = threading.Event(), threading.Event()

    def work(job, should_stop):
        started.set()
        while not should_stop():
            time.sleep(0.005)
        time.sleep(0.2)  # the chunk it was applying when told to stop
        finished.set()
        return {}, 0

    pool = Pool(
        name="imports",
        table="bulk_import_jobs",
        queued="Queued",
        running="Importing",
        done="Complete",
        max_running=lambda: 2,
        work=work,
        duration=lambda rows: 0.0,
    )
    sched.add_pool(pool)
    sched._spawn(pool, {"id": 1})  # a running job's worker, as a tick starts it
    assert started.wait(5)
    with sched.paused():
        assert finished.is_set()
        assert pool.workers == {}
        sched.tick()  # paused: touches neither the store nor the clock
    assert not sched._paused
