"""Polling economy: status calls per job against Marketo's queue, slots and 60-s status rhythm.

`MarketoQueue` models what the Bulk Program Member Extract documents say: two jobs Processing at
once, the rest Queued in FIFO order, and a status that is refreshed once every 60 s from the job's
`queuedAt`. Calls take no time; the clock only moves when the scheduler sleeps.
"""

from __future__ import annotations

import math
from collections import Counter

from tap_marketo_members.scheduler import SAFETY_POLL_INTERVALS, ExportScheduler, ExportUnit

RHYTHM = 60.0


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        assert seconds > 0, "busy loop"
        self.now += seconds


class MarketoQueue:
    """Fixed job time; `busy_until` holds slots with other API users' jobs until then."""

    def __init__(self, clock, *, job_seconds, busy_until=(0.0, 0.0)):
        self.clock = clock
        self.job_seconds = job_seconds
        self.slot_free_at = list(busy_until)
        self.jobs = {}
        self.polls = Counter()
        self.queued_replies = Counter()  # polls answered "Queued"
        self.downloads = {}

    def create(
        self, fields, program_ids, *, updated_at=None, column_header_names=None, member_filter=None
    ):
        export_id = f"e{len(self.jobs) + 1}"
        self.jobs[export_id] = {}
        return {"exportId": export_id, "status": "Created"}

    def enqueue(self, export_id):
        # FIFO with a fixed job time: the job takes the slot that frees first.
        now = self.clock()
        slot = min(range(len(self.slot_free_at)), key=self.slot_free_at.__getitem__)
        start = max(now, self.slot_free_at[slot])
        self.slot_free_at[slot] = start + self.job_seconds
        self.jobs[export_id] = {
            "queued": now,
            "started": start,
            "finished": start + self.job_seconds,
        }
        return {"exportId": export_id, "status": "Queued"}

    def status(self, export_id):
        job = self.jobs[export_id]
        self.polls[export_id] += 1
        refreshes = math.floor((self.clock() - job["queued"]) / RHYTHM + 1e-9)
        snapshot = job["queued"] + refreshes * RHYTHM
        info = {"exportId": export_id, "queuedAt": job["queued"]}
        if job["finished"] <= snapshot:
            info.update(status="Completed", fileSize=10, numberOfRecords=1)
        elif job["started"] <= snapshot:
            info.update(status="Processing", startedAt=job["started"])
        else:
            info.update(status="Queued")
            self.queued_replies[export_id] += 1
        return info

    def cancel(self, export_id):
        return {"exportId": export_id, "status": "Cancelled"}

    def list_jobs(self, statuses=()):
        return []


def run_units(marketo, clock, n):
    units = [ExportUnit(0, seq, (1001,), upper=f"2024-01-{seq + 2:02d}") for seq in range(n)]
    with ExportScheduler(
        marketo,
        fields=["leadId"],
        column_header_names={},
        poll_interval=RHYTHM,
        clock=clock,
        sleep=clock.sleep,
    ) as scheduler:
        done = []
        for unit, job, _ in scheduler.run(units):
            marketo.downloads[job.export_id] = clock()  # the caller downloads it now
            done.append(unit.seq)
        return done


def test_status_calls_per_job_stay_within_job_time_over_60_s_plus_2():
    clock = Clock()
    marketo = MarketoQueue(clock, job_seconds=600.0)
    done = run_units(marketo, clock, 10)

    assert sorted(done) == list(range(10))
    allowed = 600.0 / RHYTHM + 2
    assert max(marketo.polls.values()) <= allowed, marketo.polls
    # A job kept queued behind our two running ones is not polled until a slot frees.
    assert sum(marketo.queued_replies.values()) == 0, marketo.queued_replies


def test_fewer_polls_keep_both_slots_busy():
    clock = Clock()
    marketo = MarketoQueue(clock, job_seconds=600.0)
    run_units(marketo, clock, 10)

    starts = sorted(job["started"] for job in marketo.jobs.values())
    # Each pair starts the moment the previous pair frees its slots: the queue-ahead did it.
    assert starts == [600.0 * (i // 2) for i in range(10)]
    # Each file is fetched at the first status refresh that can show it Completed.
    for export_id, job in marketo.jobs.items():
        first_visible = job["queued"] + RHYTHM * math.ceil(
            (job["finished"] - job["queued"]) / RHYTHM
        )
        assert marketo.downloads[export_id] == first_visible
    assert max(marketo.downloads.values()) == 5 * 600.0  # ceil(10 / 2) x job time: no slack


def test_slots_held_by_another_user_get_a_slow_safety_poll():
    clock = Clock()
    # Both slots are busy with someone else's jobs for 25 minutes: ours wait in the queue.
    marketo = MarketoQueue(clock, job_seconds=600.0, busy_until=(1500.0, 1500.0))
    done = run_units(marketo, clock, 3)

    assert sorted(done) == [0, 1, 2]
    assert marketo.jobs["e1"]["started"] == 1500.0
    # Polled once a refresh after it was queued, then every SAFETY_POLL_INTERVALS refreshes.
    safety = SAFETY_POLL_INTERVALS * RHYTHM
    assert marketo.queued_replies["e1"] == math.ceil((1500.0 - RHYTHM) / safety)  # 5, not 25
    assert marketo.queued_replies["e2"] == marketo.queued_replies["e1"]
    # e3 queued behind e1 and e2, which hold both slots from 1500 on: never polled while queued
    # after that, and its file is still fetched at the first refresh showing it Completed.
    assert marketo.jobs["e3"]["started"] == 2100.0
    assert marketo.queued_replies["e3"] <= marketo.queued_replies["e1"]
    assert marketo.downloads["e3"] - marketo.jobs["e3"]["finished"] < RHYTHM
