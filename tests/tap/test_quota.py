"""The daily export quota counted over this API user's lead, activity and program member jobs."""

from __future__ import annotations

import datetime as dt

import pytest
from marketo_sandbox.server import SandboxServer

from .conftest import TIME_SCALE
from .support import config_for, run_tap

MB = 1024 * 1024


def _today() -> str:
    """Now on the local clock, the one the tap's quota day is taken from."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def qsb(tmp_path):
    """A sandbox of its own: the jobs injected here must not reach other tests' quota."""
    with SandboxServer(
        db_path=tmp_path / "sandbox.db", seed="demo", time_scale=TIME_SCALE
    ) as server:
        yield server


def test_other_exports_of_today_stop_the_run_before_any_job(qsb):
    qsb.admin.inject_export_job("activities", int(0.4 * MB), finishedAt=_today())
    qsb.admin.inject_export_job("leads", int(0.2 * MB), finishedAt=_today())
    run = run_tap(config_for(qsb, daily_export_quota_mb=0.5))
    assert qsb.admin.dump("export_jobs") == []  # not even the clock probe
    assert run.members() == []
    assert run.states  # state saved
    assert "0.6 MB of today's export quota seen used" in run.logs
    assert "resets at midnight US Central time (" in run.logs


def test_jobs_of_other_days_do_not_count(qsb):
    yesterday = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)
    qsb.admin.inject_export_job(
        "activities", 10 * MB, finishedAt=yesterday.strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    run = run_tap(config_for(qsb, daily_export_quota_mb=1, program_ids=[1004]))
    assert run.members()


def test_listed_bytes_count_as_files_finish(qsb):
    """Two windows, one job at a time: after the first file, today's listed bytes stop it."""
    now = dt.datetime.fromisoformat(qsb.admin.now().replace("Z", "+00:00"))
    start = (now - dt.timedelta(days=50)).strftime("%Y-%m-%dT%H:%M:%SZ")
    # an earlier run's file
    qsb.admin.inject_export_job("program_members", int(0.9 * MB), finishedAt=_today())
    config = config_for(
        qsb,
        daily_export_quota_mb=1,
        program_ids=[1001],
        start_date=start,
        max_concurrent_exports=1,
    )
    run = run_tap(config)
    enqueued = [j for j in qsb.admin.dump("export_jobs") if j["queuedAt"]]
    assert len(enqueued) == 1  # the second window would cross 1 MB
    assert "seen used" in run.logs
    bookmark = run.state["bookmarks"]["program_members"]["partitions"][0]
    assert bookmark["replication_key_value"] == enqueued[0]["filter"]["updatedAt"]["endAt"]


def test_plan_only_reports_the_quota_seen_in_the_job_lists(qsb, capsys):
    qsb.admin.inject_export_job("leads", 100 * MB, finishedAt=_today())
    run = run_tap(config_for(qsb, plan_only=True))
    assert qsb.admin.dump("export_jobs") == []
    assert not run.states
    assert "quota left today: 400.0 of 500 MB (100.0 MB used" in capsys.readouterr().err
