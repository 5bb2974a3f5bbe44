"""The mirror reads large programs through a keys-only program member export (membership.py).

The sandbox's programs are small, so the REST page limit is made small (10 members a page, one
page) or the sandbox's REST member limit (1003 past it) is lowered.
"""

from __future__ import annotations

import logging

import pytest
from target_helpers import (
    MEMBER_SCHEMA,
    mirror_input,
    program_members,
    record,
    run_target,
    schema,
    state,
    target_config,
    wait_ingested,
)
from target_marketo_ingest import membership
from target_marketo_ingest.errors import TargetError

NURTURE, OTHER = 1002, 1004
EXPORT = "/bulk/v1/program/members/export"


def _members(sandbox, program_id):
    return program_members(sandbox, program_id)


def _desired(sandbox):
    """1002: keep 10, move 5, add 4, drop the rest; 1004 stays exactly as it is."""
    _, nurture, removed = mirror_input(sandbox, NURTURE)
    return {NURTURE: nurture, OTHER: _members(sandbox, OTHER)}, len(removed)


def _messages(desired):
    messages = [schema("mirror", MEMBER_SCHEMA)]
    for program_id, members in desired.items():
        messages += [
            record("mirror", {"leadId": lead, "programId": program_id, "statusName": status})
            for lead, status in members.items()
        ]
    messages.append(state({"mirror": "end"}))
    return messages


def _config(sandbox, tmp_path, **extra):
    route = {"method": "ingest_program_members", "mirror": True}
    return target_config(sandbox, tmp_path, streams={"mirror": route}, **extra)


def _plan_lines(caplog):
    return sorted(
        r.getMessage().split("mirror plan for ")[1]
        for r in caplog.records
        if "mirror plan for" in r.getMessage()
    )


def _keys_jobs(sandbox):
    return [j for j in sandbox.admin.dump("export_jobs") if j["fields"] == ["leadId", "statusName"]]


@pytest.fixture
def small_rest_limit(monkeypatch):
    """Programs over 10 members pass the REST page limit (one page of 10)."""
    monkeypatch.setattr(membership, "PAGE", 10)
    monkeypatch.setattr(membership, "REST_PAGE_LIMIT", 1)


def _dry_plan(sandbox, tmp_path, desired, caplog, name):
    caplog.clear()
    config = _config(sandbox, tmp_path / name, dry_run=True)
    with caplog.at_level(logging.INFO):
        run = run_target(config, _messages(desired))
    return _plan_lines(caplog), run.summary("mirror")


def test_large_program_is_read_through_one_keys_only_export(
    fast_sandbox, tmp_path, caplog, monkeypatch
):
    desired, removed = _desired(fast_sandbox)
    rest_plan, rest_summary = _dry_plan(fast_sandbox, tmp_path, desired, caplog, "rest")
    assert _keys_jobs(fast_sandbox) == []

    monkeypatch.setattr(membership, "PAGE", 10)
    monkeypatch.setattr(membership, "REST_PAGE_LIMIT", 1)
    export_plan, export_summary = _dry_plan(fast_sandbox, tmp_path, desired, caplog, "export")
    assert export_plan == rest_plan
    assert export_summary["mirror"] == rest_summary["mirror"]
    assert export_summary["mirror"]["removals"] == removed
    assert f"program {NURTURE}: more than 10 members; reading it through a keys-only" in (
        caplog.text
    )
    jobs = _keys_jobs(fast_sandbox)
    assert len(jobs) == 1  # both programs in one job (programIds)
    assert sorted(jobs[0]["filter"]["programIds"]) == [NURTURE, OTHER]
    assert jobs[0]["status"] == "Completed"

    caplog.clear()
    with caplog.at_level(logging.INFO):
        run = run_target(_config(fast_sandbox, tmp_path / "write"), _messages(desired))
    summary = run.summary("mirror")
    assert summary["mirror"] == rest_summary["mirror"]
    assert summary["rejected"] == 0, run.rejects
    assert summary["without_outcome"] == 0
    assert "checksum ok" in caplog.text
    wait_ingested(fast_sandbox)
    assert set(_members(fast_sandbox, NURTURE)) == set(desired[NURTURE])
    assert _members(fast_sandbox, OTHER) == desired[OTHER]
    assert run.states == [{"mirror": "end"}]


def test_rest_refusal_1003_reads_the_program_through_an_export(fast_sandbox, tmp_path, caplog):
    desired, _ = _desired(fast_sandbox)
    rest_plan, rest_summary = _dry_plan(fast_sandbox, tmp_path, desired, caplog, "rest")
    # Marketo's 100,000-member limit, lowered: REST answers 1003 for both programs.
    fast_sandbox.admin.set_options(rest_member_filter_limit=5, rest_member_limit_mode="total")
    export_plan, export_summary = _dry_plan(fast_sandbox, tmp_path, desired, caplog, "export")
    assert "REST refused it" in caplog.text
    assert export_plan == rest_plan
    assert export_summary["mirror"] == rest_summary["mirror"]
    assert len(_keys_jobs(fast_sandbox)) == 1


def test_export_file_failing_its_checksum_is_downloaded_again(
    fast_sandbox, tmp_path, caplog, small_rest_limit
):
    desired, _ = _desired(fast_sandbox)
    fast_sandbox.admin.inject_fault(f"{EXPORT}/*/status.json", "bad_checksum", count=1)
    with caplog.at_level(logging.INFO):
        run = run_target(_config(fast_sandbox, tmp_path, dry_run=True), _messages(desired))
    assert "file check failed (sha256 does not match fileChecksum); downloading it again" in (
        caplog.text
    )
    assert "checksum ok" in caplog.text
    assert run.summary("mirror")["mirror"]["adds"] == 4


def test_pending_export_is_cancelled_when_the_run_stops(fast_sandbox, tmp_path, monkeypatch):
    desired, _ = _desired(fast_sandbox)
    before = _members(fast_sandbox, NURTURE)
    monkeypatch.setattr(membership, "PAGE", 10)
    monkeypatch.setattr(membership, "REST_PAGE_LIMIT", 1)

    def interrupted(_seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(membership.Membership, "sleep", staticmethod(interrupted))
    with pytest.raises(KeyboardInterrupt):
        run_target(_config(fast_sandbox, tmp_path), _messages(desired))
    jobs = _keys_jobs(fast_sandbox)
    assert [j["status"] for j in jobs] == ["Cancelled"]
    assert _members(fast_sandbox, NURTURE) == before


def test_full_export_queue_1029_is_waited_out(fast_sandbox, tmp_path, caplog, small_rest_limit):
    desired, _ = _desired(fast_sandbox)
    # max_retries=2: the client's own retries take 3, the fourth refusal reaches the mirror.
    fast_sandbox.admin.inject_fault(f"{EXPORT}/*/enqueue.json", "too_many_jobs", count=4)
    with caplog.at_level(logging.INFO):
        run = run_target(_config(fast_sandbox, tmp_path, dry_run=True), _messages(desired))
    assert "Marketo's export queue is full (1029); waiting" in caplog.text
    assert run.summary("mirror")["mirror"]["adds"] == 4
    assert [j["status"] for j in _keys_jobs(fast_sandbox)] == ["Completed"]


def test_export_queue_full_too_long_is_one_clear_error(
    fast_sandbox, tmp_path, monkeypatch, small_rest_limit
):
    desired, _ = _desired(fast_sandbox)
    monkeypatch.setattr(membership, "MAX_QUEUE_WAIT_SECONDS", 0.1)
    fast_sandbox.admin.inject_fault(f"{EXPORT}/*/enqueue.json", "too_many_jobs", count=100)
    with pytest.raises(TargetError) as caught:
        run_target(_config(fast_sandbox, tmp_path), _messages(desired))
    message = str(caught.value)
    assert "\n" not in message
    assert "export queue stayed full (1029)" in message
    assert f"programs {NURTURE}, {OTHER}" in message
    # The job that could not be queued is cancelled, not left in Created.
    assert [j["status"] for j in _keys_jobs(fast_sandbox)] == ["Cancelled"]


def test_export_quota_used_up_stops_with_the_reset_hint(fast_sandbox, tmp_path, small_rest_limit):
    desired, _ = _desired(fast_sandbox)
    before = _members(fast_sandbox, NURTURE)
    fast_sandbox.admin.inject_fault(f"{EXPORT}/*/enqueue.json", "export_quota", count=100)
    with pytest.raises(TargetError, match="midnight US Central"):
        run_target(_config(fast_sandbox, tmp_path), _messages(desired))
    assert [j["status"] for j in _keys_jobs(fast_sandbox)] == ["Cancelled"]
    assert _members(fast_sandbox, NURTURE) == before


def test_failed_export_stops_the_run_before_any_change(fast_sandbox, tmp_path, small_rest_limit):
    desired, _ = _desired(fast_sandbox)
    before = _members(fast_sandbox, NURTURE)
    fast_sandbox.admin.inject_fault(f"{EXPORT}/*/enqueue.json", "job_failed", count=1)
    with pytest.raises(TargetError) as caught:
        run_target(_config(fast_sandbox, tmp_path), _messages(desired))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("mirror: the keys-only export ")
    assert "ended Failed" in message
    assert _members(fast_sandbox, NURTURE) == before


def test_an_export_that_never_finishes_is_cancelled_after_the_job_timeout(
    fast_sandbox, tmp_path, monkeypatch, small_rest_limit
):
    desired, _ = _desired(fast_sandbox)
    before = _members(fast_sandbox, NURTURE)
    monkeypatch.setattr(membership, "MAX_JOB_SECONDS", 0.0)
    with pytest.raises(TargetError) as caught:
        run_target(_config(fast_sandbox, tmp_path), _messages(desired))
    message = str(caught.value)
    assert "\n" not in message
    assert "was still Queued after" in message
    assert [j["status"] for j in _keys_jobs(fast_sandbox)] == ["Cancelled"]
    assert _members(fast_sandbox, NURTURE) == before
