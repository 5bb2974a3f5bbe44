"""Export lifecycle under Marketo's failure modes, injected through the sb."""

from __future__ import annotations

import pytest
from marketo_common.program_member_export import ExportError
from tap_marketo_members.quota import quota_day
from tap_marketo_members.windows import parse_iso

from .support import catalog_for, config_for, run_tap

EXPORT = "/bulk/v1/program/members/export"
MEMBERS_ONLY = {"program_members": None}


def members_run(sb, **extra):
    config = config_for(sb, **extra)
    return run_tap(config, catalog=catalog_for(config, MEMBERS_ONLY))


def job_ids(sb):
    return {j["exportId"] for j in sb.admin.dump("export_jobs")}


def new_jobs(sb, before):
    return [j for j in sb.admin.dump("export_jobs") if j["exportId"] not in before]


def all_members(sb, program_ids=None):
    return sorted(
        (r["programId"], r["leadId"])
        for r in sb.admin.dump("program_members")
        if program_ids is None or r["programId"] in program_ids
    )


def keys(run):
    return sorted((r["programId"], r["leadId"]) for r in run.members())


def test_updated_at_filter_unsupported_falls_back_to_full_export(sb):
    sb.admin.set_options(updated_at_filter_supported=False)
    dump = sb.admin.dump("program_members")
    start = sorted(r["updatedAt"] for r in dump)[len(dump) // 2]
    before = job_ids(sb)
    run = members_run(sb, start_date=start, window_days=7)
    expected = sorted((r["programId"], r["leadId"]) for r in dump if r["updatedAt"] >= start)
    assert keys(run) == expected
    assert run.logs.count("1035") == 1  # one clear warning
    completed = [j for j in new_jobs(sb, before) if j["status"] == "Completed"]
    assert completed
    assert all("updatedAt" not in job["filter"] for job in completed)


def test_updated_at_filter_on_fails_clearly_on_1035(sb):
    sb.admin.set_options(updated_at_filter_supported=False)
    with pytest.raises(ExportError, match="updated_at_filter"):
        members_run(sb, start_date="2026-01-01T00:00:00Z", updated_at_filter="on")
    assert not [j for j in sb.admin.dump("export_jobs") if j["status"] in ("Queued", "Processing")]


def test_queue_full_1029_waits_then_succeeds(sb):
    sb.admin.inject_fault(f"{EXPORT}/*/enqueue.json", "too_many_jobs", count=1)
    run = members_run(sb)
    assert keys(run) == all_members(sb)
    assert "1029" in run.logs


def test_export_quota_1029_stops_cleanly_with_state(sb):
    dump = sb.admin.dump("program_members")
    start = sorted(r["updatedAt"] for r in dump)[len(dump) // 2]
    sb.admin.inject_fault(f"{EXPORT}/*/enqueue.json", "export_quota", count=100)
    run = members_run(sb, start_date=start)
    assert run.members() == []
    assert "midnight US Central" in run.logs
    assert "rerun" in run.logs
    # clean stop: state written, no bookmark advanced, nothing left running
    parts = run.state["bookmarks"]["program_members"].get("partitions", [])
    assert all("replication_key_value" not in p for p in parts)
    assert not [j for j in sb.admin.dump("export_jobs") if j["status"] in ("Queued", "Processing")]


def test_daily_export_quota_setting_stops_before_marketo_does(sb):
    dump = sb.admin.dump("program_members")
    start = min(r["updatedAt"] for r in dump)
    # The module's earlier runs are in today's job lists (same API user): 0.3 MB above them.
    today = quota_day()
    spent = sum(
        j["fileSize"] or 0
        for j in sb.admin.dump("export_jobs")
        if j["finishedAt"] and quota_day(parse_iso(j["finishedAt"])) == today
    )
    quota_mb = spent / (1024 * 1024) + 0.3
    config = config_for(sb, start_date=start, window_days=7, daily_export_quota_mb=quota_mb)
    catalog = catalog_for(config, MEMBERS_ONLY)
    first = run_tap(config, catalog=catalog)
    assert "daily_export_quota_mb" in first.logs
    assert 0 < len(first.members()) < len(dump)
    # the bookmarks cover exactly the finished windows: the next run (new quota day simulated
    # by a fresh state of the quota counter) reads the rest, each member once
    state = first.state
    state["bookmarks"]["program_members"].pop("export_bytes_today")
    second = run_tap(config_for(sb, start_date=start, window_days=7), state=state, catalog=catalog)
    got = keys(first) + keys(second)
    assert sorted(got) == all_members(sb)


def test_failed_job_is_retried_once(sb):
    sb.admin.inject_fault(f"{EXPORT}/*/enqueue.json", "job_failed", count=1)
    before = job_ids(sb)
    run = members_run(sb)
    assert keys(run) == all_members(sb)
    # the warning carries the status's errorMsg
    assert "Failed (Marketo: Job failed: export error); creating it again once" in run.logs
    statuses = [j["status"] for j in new_jobs(sb, before)]
    assert statuses.count("Failed") == 1


def test_failed_twice_is_reported_and_other_jobs_cancelled(sb):
    dump = sb.admin.dump("program_members")
    start = min(r["updatedAt"] for r in dump if r["programId"] == 1002)
    sb.admin.set_options(job_fixed_seconds=600)  # the other windows are still running
    # every job fails: each is retried once; the first to fail twice ends the run
    sb.admin.inject_fault(f"{EXPORT}/*/enqueue.json", "job_failed", count=0)
    before = job_ids(sb)
    with pytest.raises(ExportError, match="Failed again after one retry"):
        members_run(
            sb, start_date=start, window_days=8, program_ids=[1002], poll_interval_seconds=0.25
        )
    jobs = [j for j in new_jobs(sb, before) if j["fields"] != ["leadId"]]  # not the clock probe
    assert [j["status"] for j in jobs].count("Failed") >= 2
    assert not [j for j in jobs if j["status"] in ("Created", "Queued", "Processing")]
    assert [j for j in jobs if j["status"] == "Cancelled"]


def test_job_timeout_cancels_and_fails(sb):
    sb.admin.set_options(job_fixed_seconds=10**6)
    before = job_ids(sb)
    with pytest.raises(ExportError, match="job_timeout_minutes"):
        members_run(sb, program_ids=[1004], job_timeout_minutes=0.02)
    jobs = new_jobs(sb, before)
    assert jobs
    assert not [j for j in jobs if j["status"] in ("Created", "Queued", "Processing")]


@pytest.mark.parametrize("kind", ["truncate", "reset"])
def test_download_resumes_with_range(sb, kind):
    sb.admin.inject_fault(f"{EXPORT}/*/file.json", kind, count=1)
    calls_before = len(sb.admin.dump("calls"))
    run = members_run(sb)
    assert keys(run) == all_members(sb)
    assert "resuming with Range: bytes=" in run.logs
    calls = sb.admin.dump("calls")[calls_before:]
    downloads = [c for c in calls if c["path"].endswith("/file.json")]
    assert len(downloads) == 2  # the broken one, then the Range request for the rest


def test_checksum_mismatch_downloads_again(sb):
    sb.admin.inject_fault(f"{EXPORT}/*/status.json", "bad_checksum", count=1)
    run = members_run(sb)
    assert keys(run) == all_members(sb)
    assert "downloading it again" in run.logs


def test_checksum_mismatch_twice_is_a_clear_error(sb):
    sb.admin.inject_fault(f"{EXPORT}/*/status.json", "bad_checksum", count=0)
    with pytest.raises(ExportError, match="failed verification twice"):
        members_run(sb)


def test_a_file_failing_its_checks_twice_gets_its_job_created_again_once(sb):
    """Soak finding: one job whose file kept failing its checksum ended the whole run."""
    sb.admin.inject_fault(f"{EXPORT}/*/status.json", "bad_checksum", count=2)
    before = job_ids(sb)
    run = members_run(sb, program_ids=[1004])
    assert keys(run) == all_members(sb, [1004])
    assert "failed verification twice" in run.logs
    assert "creating it again once" in run.logs
    jobs = [j for j in new_jobs(sb, before) if j["fields"] != ["leadId"]]  # not the clock probe
    assert [j["status"] for j in jobs] == ["Completed", "Completed"]


def test_a_create_whose_answer_was_lost_leaves_no_created_job(sb):
    """Soak finding: a create cut after Marketo ran it left a job in Created for ever."""
    sb.admin.inject_fault(f"{EXPORT}/create.json", "reset", count=2)  # the probe's, then a job's
    before = job_ids(sb)
    run = members_run(sb, program_ids=[1004])
    assert keys(run) == all_members(sb, [1004])
    assert "made by a create request whose answer was lost" in run.logs
    statuses = [j["status"] for j in new_jobs(sb, before)]
    assert "Created" not in statuses
    assert statuses.count("Cancelled") >= 2  # the two lost ones (the probe's retry too)


def test_rest_fallback_always(sb):
    dump = sb.admin.dump("program_members")
    start = sorted(r["updatedAt"] for r in dump if r["programId"] == 1002)[-40]
    before = job_ids(sb)
    # Lead fields (GET /rest/v1/leads.json) are tested in test_contract.py.
    run = members_run(
        sb, start_date=start, rest_fallback="always", program_ids=[1002], lead_fields=[]
    )
    expected = sorted(
        (r["programId"], r["leadId"])
        for r in dump
        if r["programId"] == 1002 and r["updatedAt"] >= start
    )
    assert keys(run) == expected
    assert not [j for j in new_jobs(sb, before) if j["status"] != "Cancelled"]
    by_key = {(r["programId"], r["leadId"]): r for r in dump}
    for record in run.members():
        want = by_key[(record["programId"], record["leadId"])]
        for name, value in want.items():
            assert record[name] == (None if value == "" else value), name


def test_rest_fallback_narrows_on_1003(sb):
    sb.admin.set_options(rest_member_filter_limit=20, rest_member_limit_mode="matching")
    dump = sb.admin.dump("program_members")
    start = sorted(r["updatedAt"] for r in dump if r["programId"] == 1001)[-60]
    run = members_run(
        sb, start_date=start, rest_fallback="always", program_ids=[1001], lead_fields=[]
    )
    expected = sorted(
        (r["programId"], r["leadId"])
        for r in dump
        if r["programId"] == 1001 and r["updatedAt"] >= start
    )
    assert keys(run) == expected
    assert "halving the window" in run.logs


def test_rest_fallback_auto_reads_small_programs_through_rest(sb):
    config = config_for(sb, program_ids=[1004], lead_fields=[])
    catalog = catalog_for(config, MEMBERS_ONLY)
    first = run_tap(config, catalog=catalog)  # bulk: learns the program's size
    part = first.state["bookmarks"]["program_members"]["partitions"][0]
    assert part["member_count_max"] == len(first.members())
    sb.admin.touch_members(1004, [first.members()[0]["leadId"]], statusName="Clicked")
    before = job_ids(sb)
    config_auto = {**config, "rest_fallback_max_members": len(first.members())}
    second = run_tap(config_auto, state=first.state, catalog=catalog)
    assert "through the REST query" in second.logs
    assert [r["leadId"] for r in second.members()] == [first.members()[0]["leadId"]]
    enqueued = [j for j in new_jobs(sb, before) if j["status"] != "Cancelled"]
    assert enqueued == []  # only the clock probe, cancelled at once
    # one member fewer than the program's size: back to bulk
    third = run_tap(
        {**config_auto, "rest_fallback_max_members": len(first.members()) - 1},
        state=second.state,
        catalog=catalog,
    )
    assert "through the REST query" not in third.logs
