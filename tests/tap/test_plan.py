"""plan_only: the next run's plan, with no export job, no RECORD and no STATE."""

from __future__ import annotations

import contextlib
import io
import re

from tap_marketo_members.plan import quota_days, wall_seconds
from tap_marketo_members.scheduler import MB

from .support import config_for, run_tap


def plan_run(config: dict, state: dict | None = None) -> tuple[object, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        run = run_tap({**config, "plan_only": True}, state=state)
    return run, err.getvalue()


def test_plan_only_creates_no_job_and_emits_no_record_or_state(sb):
    jobs_before = len(sb.admin.dump("export_jobs"))
    run, plan = plan_run(config_for(sb, start_date="2000-01-01T00:00:00Z"))
    assert len(sb.admin.dump("export_jobs")) == jobs_before  # not even the clock probe
    assert not [m for m in run.messages if m["type"] in ("RECORD", "STATE", "BATCH")]
    assert "local clock" in plan
    assert "programs 1002,1004,1003,1001: full export kept from 2000-01-01" in plan
    assert "export jobs: 1" in plan
    assert "expected bytes: unknown" in plan
    assert "quota left today: 500.0 of 500 MB" in plan
    assert "quota days: unknown" in plan


def test_plan_expects_the_bytes_of_the_last_run(sb):
    """Sizes from a full run's state (bookmarks dropped: a backfill again) give its file sizes."""
    config = config_for(sb, program_ids=[1001, 1003])
    jobs_before = len(sb.admin.dump("export_jobs"))
    first = run_tap(config)
    spent = sum(
        j.get("fileSize") or 0
        for j in sb.admin.dump("export_jobs")[jobs_before:]
        if j.get("status") == "Completed"
    )
    assert spent > 0
    state = first.state
    partitions = state["bookmarks"]["program_members"]["partitions"]
    assert all(p["bytes_per_member"] > 0 for p in partitions)
    # No fraction in any STATE: SDK targets parse it as Decimal and fail to write it back.
    floats = [
        value
        for message in first.raw
        if message["type"] == "STATE"
        for value in _leaves(message["value"])
        if isinstance(value, float)
    ]
    assert not floats, floats
    for partition in partitions:
        partition.pop("replication_key_value")
    jobs_before = len(sb.admin.dump("export_jobs"))
    _, plan = plan_run(config, state=state)
    assert len(sb.admin.dump("export_jobs")) == jobs_before
    expected = int(re.search(r"expected bytes: (\d+)", plan).group(1))
    assert abs(expected - spent) <= spent * 0.01
    assert "quota days: 1" in plan
    assert re.search(r"quota left today: [\d.]+ of 500 MB \([\d.]+ MB used", plan)


def test_plan_counts_quota_days_beyond_today():
    assert quota_days(100 * MB, 120 * MB, 500 * MB) == 1
    assert quota_days(600 * MB, 100 * MB, 500 * MB) == 2
    assert quota_days(1200 * MB, 0, 500 * MB) == 4
    # two jobs at once halve the work time of four equal jobs
    assert wall_seconds(4, 40 * MB, 2) == wall_seconds(2, 20 * MB, 1)


def _leaves(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def test_plan_counts_the_removal_check_when_due(sb):
    """detect_removals: the keys-only jobs and their bytes (member counts x measured size)."""
    programs = [1001, 1003]
    config = config_for(sb, program_ids=programs, detect_removals=True)
    # No member counts in state yet: the check's jobs are planned, its bytes unknown.
    _, plan = plan_run(config)
    assert "removal check (detect_removals): programs 1001,1003: 1 keys-only jobs" in plan
    assert "export jobs: 2" in plan
    assert re.search(r"keys-only jobs; expected bytes unknown", plan)
    jobs_before = len(sb.admin.dump("export_jobs"))
    first = run_tap(config)
    keys_only = [
        j
        for j in sb.admin.dump("export_jobs")[jobs_before:]
        if j.get("status") == "Completed" and j.get("fields") == ["leadId"]
    ]
    assert len(keys_only) == 1, keys_only
    spent = int(keys_only[0]["fileSize"])
    assert first.state["bookmarks"]["program_members"]["removal_bytes_per_member"] > 0
    state = first.state
    for partition in state["bookmarks"]["program_members"]["partitions"]:
        partition.pop("replication_key_value")  # a full export planned: one job, not zero
    _, plan = plan_run(config, state=state)
    found = re.search(r"1 keys-only jobs; expected bytes (\d+) .*measured\)", plan)
    assert found, plan
    # Rounded bytes per member (an integer in state) times the members: within half a byte each.
    members = len([m for m in sb.admin.dump("program_members") if m["programId"] in programs])
    assert abs(int(found.group(1)) - spent) <= members / 2 + 1
    assert "export jobs: 2" in plan  # the updatedAt window and the check
    # Not due (checked less than the interval ago): no keys-only job planned.
    _, plan = plan_run({**config, "removal_check_interval_hours": 24}, state=state)
    assert "removal check" not in plan
    assert "export jobs: 1" in plan
