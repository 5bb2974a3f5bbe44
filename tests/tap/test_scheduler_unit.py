"""ExportScheduler decisions with a scripted stand-in for Marketo's export endpoints."""

from __future__ import annotations

import pytest
from marketo_common import ExportQuotaExceededError, TooManyJobsError
from marketo_common.program_member_export import ExportError
from tap_marketo_members.scheduler import ExportScheduler, ExportUnit, QuotaReachedError


class Clock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.001)


class ScriptedExports:
    """Each job's statuses are served in order, one per poll; the last one repeats."""

    def __init__(self, statuses, *, enqueue_errors=(), size=100):
        self.statuses = list(statuses)
        self.enqueue_errors = list(enqueue_errors)
        self.size = size
        self.jobs = {}
        self.cancelled = []
        self.enqueued = []
        self.polls = []

    def create(
        self, fields, program_ids, *, updated_at=None, column_header_names=None, member_filter=None
    ):
        export_id = f"e{len(self.jobs) + 1}"
        script = self.statuses.pop(0) if self.statuses else ["Completed"]
        self.jobs[export_id] = list(script)
        return {"exportId": export_id, "status": "Created"}

    def enqueue(self, export_id):
        if self.enqueue_errors:
            error = self.enqueue_errors.pop(0)
            if error is not None:
                raise error
        self.enqueued.append(export_id)
        return {"exportId": export_id, "status": "Queued"}

    def status(self, export_id):
        self.polls.append(export_id)
        script = self.jobs[export_id]
        status = script.pop(0) if len(script) > 1 else script[0]
        info = {"exportId": export_id, "status": status}
        if status == "Completed":
            info.update(fileSize=self.size, numberOfRecords=1)
        return info

    def cancel(self, export_id):
        self.cancelled.append(export_id)
        return {"exportId": export_id, "status": "Cancelled"}

    def list_jobs(self, statuses=()):
        return []

    def maybe_ran_twice(self):
        return False


def units(n):
    return [
        ExportUnit(0, seq, (1001,), upper=f"2024-01-{seq + 2:02d}T00:00:00Z") for seq in range(n)
    ]


def scheduler(exports, clock, **kw):
    kw.setdefault("poll_interval", 60.0)
    return ExportScheduler(
        exports, fields=["leadId"], column_header_names={}, clock=clock, sleep=clock.sleep, **kw
    )


def test_queue_full_waits_a_poll_interval_then_enqueues():
    clock = Clock()
    exports = ScriptedExports([], enqueue_errors=[TooManyJobsError("Too many jobs", code="1029")])
    with scheduler(exports, clock) as s:
        done = [u.seq for u, _, _ in s.run(units(2))]
    assert sorted(done) == [0, 1]
    assert 60.0 in clock.sleeps  # waited one poll interval after 1029, no busy loop
    assert exports.cancelled == ["e1"]  # the job whose enqueue failed is not left Created


def test_polls_never_closer_than_the_interval():
    clock = Clock()
    exports = ScriptedExports([["Queued", "Processing", "Processing", "Completed"]] * 3)
    with scheduler(exports, clock, poll_interval=60.0) as s:
        list(s.run(units(3)))
    assert all(step >= 0 for step in clock.sleeps)
    assert clock.now >= 4 * 60.0


def test_cancelled_elsewhere_is_an_error_and_others_are_cancelled():
    clock = Clock()
    exports = ScriptedExports([["Cancelled"], ["Processing"], ["Processing"]])
    with (
        pytest.raises(ExportError, match="Cancelled outside this run"),
        scheduler(exports, clock) as s,
    ):
        list(s.run(units(3)))
    assert set(exports.cancelled) == {"e2", "e3"}


def test_quota_error_drains_in_flight_then_stops():
    clock = Clock()
    quota = ExportQuotaExceededError("Export daily quota exceeded", code="1029")
    exports = ScriptedExports([], enqueue_errors=[None, quota])
    got = []
    with pytest.raises(QuotaReachedError, match="quota"), scheduler(exports, clock) as s:
        got.extend(u.seq for u, _, _ in s.run(units(3)))
    assert got == [0]  # the job already enqueued was still read
    assert "e2" in exports.cancelled


def test_configured_quota_uses_average_file_size():
    clock = Clock()
    exports = ScriptedExports([], size=400)
    got = []
    with (
        pytest.raises(QuotaReachedError, match="daily_export_quota_mb"),
        scheduler(exports, clock, quota_bytes=1000, max_concurrent_exports=1) as s,
    ):
        got.extend(u.seq for u, _, _ in s.run(units(5)))
    assert got == [0, 1]  # 800 bytes; a third file of ~400 would pass 1000


def test_outstanding_seqs_track_pending_and_in_flight():
    clock = Clock()
    exports = ScriptedExports([["Completed"], ["Processing"], ["Processing"]])
    with scheduler(exports, clock, max_concurrent_exports=2) as s:
        run = s.run(units(6))
        unit, _, _ = next(run)
        assert unit.seq == 0
        assert s.outstanding_seqs(0) == {1, 2, 3, 4, 5}
        run.close()


def test_job_lists_read_as_files_finish_stop_the_next_job():
    """Other exports of today (Marketo's job lists) count as soon as a file finishes."""
    clock = Clock()
    exports = ScriptedExports([], size=100)
    listed = iter([1000])
    got = []
    with (
        pytest.raises(QuotaReachedError, match="seen used"),
        scheduler(
            exports,
            clock,
            quota_bytes=1000,
            max_concurrent_exports=1,
            quota_used=lambda: next(listed),
        ) as s,
    ):
        got.extend(u.seq for u, _, _ in s.run(units(5)))
    assert got == [0]


def test_file_size_average_counts_only_this_runs_files():
    """Bytes other exports used today do not inflate the expected size of our next file."""
    clock = Clock()
    exports = ScriptedExports([], size=100)
    got = []
    with (
        pytest.raises(QuotaReachedError, match="daily_export_quota_mb"),
        scheduler(exports, clock, quota_bytes=1000, used_bytes=600, max_concurrent_exports=1) as s,
    ):
        got.extend(u.seq for u, _, _ in s.run(units(6)))
    assert got == [0, 1, 2, 3]


def test_a_created_job_is_saved_before_its_enqueue():
    """Soak finding: a run killed while its enqueue was being retried left a Created job
    the next run called "not ours". Its id must be in the saved state before the enqueue."""
    clock = Clock()
    saved = []

    class Watching(ScriptedExports):
        def enqueue(self, export_id):
            assert export_id in saved[-1], "enqueue before the job id was saved"
            return super().enqueue(export_id)

    exports = Watching([["Completed"]])
    with scheduler(exports, clock, on_jobs_changed=lambda ids: saved.append(list(ids))) as s:
        list(s.run(units(1)))
    assert saved[0] == ["e1"]
    assert saved[-1] == []  # finished: nothing left to cancel


def test_an_enqueue_refused_on_retry_after_a_lost_answer_is_followed_not_cancelled():
    """CI found it: the lost try queued the job, which completed before the retry; the retry
    was refused (1003). The job is Marketo's to finish: polled, not cancelled."""
    from marketo_common import MarketoAPIError  # noqa: PLC0415

    clock = Clock()
    refused = MarketoAPIError("Job is Completed, only a Created job can be enqueued", code="1003")

    class LostAnswer(ScriptedExports):
        def maybe_ran_twice(self):
            return True

    exports = LostAnswer([["Completed"]], enqueue_errors=[refused])
    with scheduler(exports, clock) as s:
        done = [u.seq for u, job, _ in s.run(units(1)) if job is not None]
    assert done == [0]
    assert exports.cancelled == []


def test_an_enqueue_refused_without_a_lost_answer_still_fails():
    from marketo_common import MarketoAPIError  # noqa: PLC0415

    clock = Clock()
    refused = MarketoAPIError("Job is Completed, only a Created job can be enqueued", code="1003")
    exports = ScriptedExports([["Completed"]], enqueue_errors=[refused])
    with pytest.raises(MarketoAPIError), scheduler(exports, clock) as s:
        list(s.run(units(1)))
    assert exports.cancelled == ["e1"]
