"""METRIC lines of export jobs read back from a run against the sandbox, and `--test`."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections import defaultdict

from singer_sdk import metrics
from tap_marketo_members.scheduler import MB

from .support import catalog_for, config_for, parse_lines, run_tap

EXPORT = "/bulk/v1/program/members/export"


def _metric_lines(sb, **extra):
    """Run the tap (program_members only) and return its parsed METRIC points."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Collect(level=logging.INFO)
    logger = metrics.get_metrics_logger()
    logger.addHandler(handler)
    try:
        config = config_for(sb, **extra)
        run = run_tap(config, catalog=catalog_for(config, {"program_members": None}))
    finally:
        logger.removeHandler(handler)
    points = [json.loads(line.removeprefix("METRIC: ")) for line in lines if "METRIC: " in line]
    return run, points


def test_export_job_metrics_add_up(sandbox_factory):
    """Jobs created, Completed and Failed, time Queued and Processing, bytes and quota."""
    sb = sandbox_factory(seed="demo", time_scale=600.0, options={"job_fixed_seconds": 1200})
    sb.admin.inject_fault(f"{EXPORT}/*/enqueue.json", "job_failed", count=1)
    run, points = _metric_lines(sb, daily_export_quota_mb=50)

    jobs = [j for j in sb.admin.dump("export_jobs") if j["fields"] != ["leadId"]]  # not the probe
    by_status: dict[str, set[str]] = defaultdict(set)
    for p in points:
        if p["metric"] == "export_job_count":
            assert p["type"] == "counter"
            assert p["value"] == 1
            assert p["tags"]["stream"] == "program_members"
            by_status[p["tags"]["status"]].add(p["tags"]["export_id"])
    assert by_status["Created"] == {j["exportId"] for j in jobs}
    assert by_status["Completed"] == {j["exportId"] for j in jobs if j["status"] == "Completed"}
    assert by_status["Failed"] == {j["exportId"] for j in jobs if j["status"] == "Failed"}
    assert len(by_status["Failed"]) == 1
    assert by_status["Completed"] | by_status["Failed"] == by_status["Created"]

    phases: dict[str, dict[str, float]] = defaultdict(dict)
    for p in points:
        if p["metric"] == "job_duration" and p["tags"].get("job_type", "").startswith("export_"):
            assert p["type"] == "timer"
            assert p["value"] >= 0
            phases[p["tags"]["export_id"]][p["tags"]["job_type"]] = p["value"]
    # every job was seen Queued; jobs taking 2 s of wall time were also seen Processing (polls every
    # 0.1 s: 0.5 s was missed on a loaded CI machine)
    assert set(phases) == by_status["Created"]
    assert all("export_queued" in seen for seen in phases.values())
    assert sum("export_processing" in seen for seen in phases.values()) >= len(phases) - 1

    downloaded = {
        p["tags"]["export_id"]: p["value"]
        for p in points
        if p["metric"] == "export_bytes_downloaded"
    }
    sizes = {j["exportId"]: j["fileSize"] for j in jobs if j["status"] == "Completed"}
    assert downloaded == sizes
    used = [p["value"] for p in points if p["metric"] == "export_quota_used_bytes"]
    left = [p["value"] for p in points if p["metric"] == "export_quota_left_bytes"]
    assert used[0] == 0
    assert used[-1] == sum(sizes.values()) > 0
    assert left[-1] == 50 * MB - used[-1]
    assert len(used) == len(left) == 1 + len(sizes)
    assert used == sorted(used)
    # the SDK's own record count sits beside them, in the same format
    counted = sum(
        p["value"]
        for p in points
        if p["metric"] == "record_count" and p["tags"].get("stream") == "program_members"
    )
    assert counted == len(run.members())


def test_dry_run_with_test_flag_reads_one_record_per_stream(shared_sandbox, tmp_path):
    """`--test`: one record per selected stream, and at most one export job for it."""
    sb = shared_sandbox
    before = {j["exportId"] for j in sb.admin.dump("export_jobs")}
    config = config_for(sb)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    proc = subprocess.run(
        [sys.executable, "-m", "tap_marketo_members.tap", "--config", str(path), "--test"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    messages = parse_lines(proc.stdout)
    records: dict[str, int] = defaultdict(int)
    for message in messages:
        if message["type"] == "RECORD":
            records[message["stream"]] += 1
    selected = {m["stream"] for m in messages if m["type"] == "SCHEMA"}
    assert "program_members" in selected
    assert selected == set(records)
    assert all(count == 1 for count in records.values()), dict(records)
    assert "Traceback" not in proc.stderr
    # The parent stream stops after one program, so one export job of that one program; the
    # clock probe (a leadId-only job, cancelled before it runs) exports nothing.
    new = [j for j in sb.admin.dump("export_jobs") if j["exportId"] not in before]
    member_jobs = [j for j in new if j["fields"] != ["leadId"]]
    assert len(member_jobs) == 1, [j["filter"] for j in member_jobs]
    assert len(member_jobs[0]["filter"]["programIds"]) == 1
    assert all(j["status"] == "Cancelled" for j in new if j["fields"] == ["leadId"])
