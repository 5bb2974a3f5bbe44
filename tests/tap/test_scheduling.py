"""Export scheduling: both slots busy, within Marketo's budget, polls paced, programs grouped."""

from __future__ import annotations

import datetime as dt
import itertools
from collections import defaultdict

import pytest
from tap_marketo_members.tap import TapMarketoMembers
from tap_marketo_members.windows import parse_iso

from .conftest import TIME_SCALE
from .support import catalog_for, config_for, run_tap


def overlap_max(intervals):
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    current = best = 0
    for _, delta in events:
        current += delta
        best = max(best, current)
    return best


@pytest.mark.parametrize("slots", [2, 1])
def test_many_windows_keep_slots_running_within_budget(sb, slots):
    dump = sb.admin.dump("program_members")
    start = min(r["updatedAt"] for r in dump if r["programId"] == 1002)
    before = {j["exportId"] for j in sb.admin.dump("export_jobs")}
    calls_before = len(sb.admin.dump("calls"))
    sb.admin.set_options(job_fixed_seconds=600)  # 10 sandbox minutes per job: slots fill up
    # polls every 150 sandbox seconds keep the run under Marketo's 100 calls / 20 s
    config = config_for(
        sb,
        start_date=start,
        window_days=8 if slots == 2 else 20,  # one slot runs jobs one by one: fewer of them
        program_ids=[1002],
        poll_interval_seconds=0.25,
        max_concurrent_exports=slots,
    )
    run = run_tap(config, catalog=catalog_for(config, {"program_members": None}))
    expected = sorted(r["leadId"] for r in dump if r["programId"] == 1002)
    assert sorted(r["leadId"] for r in run.members()) == expected

    jobs = [
        j
        for j in sb.admin.dump("export_jobs")
        if j["exportId"] not in before and j["status"] == "Completed"
    ]
    assert len(jobs) >= (6 if slots == 2 else 3)
    for job in jobs:
        span = job["filter"]["updatedAt"]
        assert parse_iso(span["endAt"]) - parse_iso(span["startAt"]) <= dt.timedelta(days=31)
    processing = [(parse_iso(j["startedAt"]), parse_iso(j["finishedAt"])) for j in jobs]
    ours_in_queue = [(parse_iso(j["queuedAt"]), parse_iso(j["finishedAt"])) for j in jobs]
    assert overlap_max(processing) == slots  # every slot we may use is used, never more
    # with both slots: 2 running + 2 waiting, far under Marketo's 10; with one: only one
    assert overlap_max(ours_in_queue) <= (4 if slots == 2 else 1)

    # status polls of one job never closer than poll_interval_seconds (60 s of sandbox time)
    polls = defaultdict(list)
    for call in sb.admin.dump("calls")[calls_before:]:
        if call["path"].endswith("/status.json"):
            polls[call["path"]].append(parse_iso(call["at"]))
    assert polls
    interval = dt.timedelta(seconds=config["poll_interval_seconds"] * TIME_SCALE - 2)
    for times in polls.values():
        for a, b in itertools.pairwise(times):
            assert b - a >= interval, (a, b)
    assert "Queued -> Processing" in run.logs or "Queued -> Completed" in run.logs


def test_programs_grouped_ten_per_job(sb):
    tap = TapMarketoMembers(config=config_for(sb, start_date="2026-01-01T00:00:00Z"))
    stream = tap.streams["program_members"]
    units = stream.engine().plan(list(range(1, 26)), "2026-01-20T00:00:00Z")
    assert [len(u.program_ids) for u in units] == [10, 10, 5]
    assert all(u.server_filter == ("2025-12-31T23:59:59Z", "2026-01-20T00:00:00Z") for u in units)
    # programs with different bookmarks are never in the same job
    stream.get_context_state({"programId": 3})["replication_key_value"] = "2026-01-10T00:00:00Z"
    units = stream.engine().plan([1, 2, 3], "2026-01-20T00:00:00Z")
    assert sorted(u.program_ids for u in units) == [(1, 2), (3,)]
    # FULL_TABLE: one unfiltered export per group of ten
    stream.forced_replication_method = "FULL_TABLE"
    units = stream.engine().plan(list(range(1, 13)), None)
    assert [(len(u.program_ids), u.server_filter, u.upper) for u in units] == [
        (10, None, None),
        (2, None, None),
    ]


def test_status_calls_per_job_stay_within_job_time_over_60_s_plus_2(sandbox_factory):
    """Marketo's advice: status refreshes once a minute, so a job needs about J/60 polls."""
    # Slower than the module's sandbox so that a call is far shorter than the 60-s rhythm
    # (0.4 s here) even on a loaded machine; 6 jobs of 300 s, 3 rounds, run in about 6 s.
    scale, job_seconds = 150.0, 300
    sb = sandbox_factory(seed="demo", time_scale=scale, options={"job_fixed_seconds": job_seconds})
    now = parse_iso(sb.admin.now())
    start = now - dt.timedelta(days=6) + dt.timedelta(hours=3)  # one-day windows: 6 jobs
    config = config_for(
        sb,
        start_date=start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        window_days=1,
        program_ids=[1002],
        updated_at_filter="on",
        poll_interval_seconds=60 / scale,
        rate_limit_period=20 / scale,  # Marketo's 100 calls / 20 s on the sandbox's clock
    )
    run_tap(config, catalog=catalog_for(config, {"program_members": None}))

    jobs = [j for j in sb.admin.dump("export_jobs") if j["queuedAt"]]
    assert len(jobs) == 6
    assert all(j["status"] == "Completed" for j in jobs)
    calls = [c["path"] for c in sb.admin.dump("calls")]
    status_calls = {
        j["exportId"]: calls.count(f"/bulk/v1/program/members/export/{j['exportId']}/status.json")
        for j in jobs
    }
    # Jobs kept queued behind our two running ones used to be polled all along (about 10 each).
    # The goal is per job: its own processing time / 60 s + 2 (the sandbox's assumed duration
    # jitter makes some jobs longer than job_seconds, and those are polled more, rightly).
    for job in jobs:
        took = (parse_iso(job["finishedAt"]) - parse_iso(job["startedAt"])).total_seconds()
        assert took >= job_seconds * 0.4, job  # the fixed time (jitter at most +-50 %) applies
        assert status_calls[job["exportId"]] <= took / 60 + 2, (job, status_calls)

    # Fewer polls, same slot use: every later job starts as one of ours frees its slot.
    finished = sorted(parse_iso(j["finishedAt"]) for j in jobs)
    for job in sorted(jobs, key=lambda j: j["startedAt"])[2:]:
        started = parse_iso(job["startedAt"])
        freed = max(f for f in finished if f <= started)
        assert started - freed <= dt.timedelta(seconds=30), job
