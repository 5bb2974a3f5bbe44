"""Bulk import under Marketo's limits and failures: 1016, Failed jobs, backpressure, STATE."""

from __future__ import annotations

import threading

from target_helpers import LEAD_SCHEMA, record, run_target, schema, state, target_config
from target_marketo_ingest import bulk_import
from target_marketo_ingest.target import TargetMarketoIngest


def _leads(prefix: str, n: int, start: int = 0) -> list[dict]:
    return [
        record("leads", {"email": f"{prefix}{i}@example.com", "firstName": f"F{i}"})
        for i in range(start, start + n)
    ]


def test_1016_waits_and_resubmits(fast_sandbox, tmp_path):
    fast_sandbox.admin.inject_fault("/bulk/v1/leads.json", "too_many_imports", count=3)
    config = target_config(fast_sandbox, tmp_path, max_retries=0)
    run = run_target(config, [schema("leads", LEAD_SCHEMA), *_leads("busy", 10)])
    summary = run.summary("leads")
    assert summary["imported"] == 10
    assert summary["files"] == 1
    assert summary["api_calls"] >= 4 + 1  # three refused creates, one accepted, then polls
    emails = {lead["email"] for lead in fast_sandbox.admin.dump("leads")}
    assert {f"busy{i}@example.com" for i in range(10)} <= emails


def test_failed_job_is_resubmitted_once(fast_sandbox, tmp_path):
    fast_sandbox.admin.inject_fault("/bulk/v1/leads.json", "job_failed", count=1)
    run = run_target(
        target_config(fast_sandbox, tmp_path), [schema("leads", LEAD_SCHEMA), *_leads("f1_", 5)]
    )
    assert run.summary("leads")["imported"] == 5
    jobs = fast_sandbox.admin.dump("import_jobs")
    assert [j["status"] for j in jobs] == ["Failed", "Complete"]


def test_failed_twice_rejects_the_rows_with_the_message(fast_sandbox, tmp_path):
    fast_sandbox.admin.inject_fault("/bulk/v1/leads.json", "job_failed", count=2)
    run = run_target(
        target_config(fast_sandbox, tmp_path),
        [schema("leads", LEAD_SCHEMA), *_leads("f2_", 4), state({"s": 1})],
    )
    summary = run.summary("leads")
    assert summary["imported"] == 0
    assert summary["rejected_by_reason"] == {"import_failed": 4}
    assert {r["line"] for r in run.rejects} == {2, 3, 4, 5}
    assert all("Import failed" in r["message"] for r in run.rejects)
    assert run.states == [{"s": 1}]  # every record has an outcome (rejected), so STATE moves


def test_backpressure_bounds_files_in_flight_and_queued(fast_sandbox, tmp_path, monkeypatch):
    """Many small files, slow jobs: input pauses; never more than 2 jobs and 2 queued files."""
    fast_sandbox.admin.set_options(job_fixed_seconds=120)  # 0.2 s real per job at 600x
    peak = {"files": 0, "in_flight": 0}
    original = bulk_import.ImportJobRunner.submit
    lock = threading.Lock()

    def watching_submit(self, file):
        with lock:
            on_disk = len(list(file.path.parent.glob("*.csv")))
            peak["files"] = max(peak["files"], on_disk)
            peak["in_flight"] = max(peak["in_flight"], self.in_flight)
        original(self, file)

    monkeypatch.setattr(bulk_import.ImportJobRunner, "submit", watching_submit)
    config = target_config(fast_sandbox, tmp_path, max_import_file_mb=0.0015)
    run = run_target(config, [schema("leads", LEAD_SCHEMA), *_leads("bp", 400)])
    summary = run.summary("leads")
    assert summary["imported"] == 400
    assert summary["files"] >= 6
    runner = run.target._sinks_active["leads"].writer.bulk.runner
    assert runner.max_in_flight == 2
    assert runner.backpressure_waits > 0
    # 2 running + 2 queued + the one being handed over, never the whole input
    assert peak["files"] <= 5
    jobs = fast_sandbox.admin.dump("import_jobs")
    assert len(jobs) == summary["files"]


def test_state_only_after_every_earlier_record_has_an_outcome(fast_sandbox, tmp_path, monkeypatch):
    fast_sandbox.admin.set_options(job_fixed_seconds=60)
    seen = []
    config = target_config(fast_sandbox, tmp_path, max_import_file_mb=0.002)
    messages = [schema("leads", LEAD_SCHEMA)]
    messages += _leads("st", 30)
    messages.append(state({"after": 30}))
    messages += _leads("st", 30, start=30)
    messages.append(state({"after": 60}))
    messages += _leads("st", 5, start=60)

    original = TargetMarketoIngest._emit_state

    def watching_emit(self, value):
        summary = self.summaries[0]
        seen.append((value["after"], summary.imported + summary.rejected + summary.superseded))
        original(self, value)

    monkeypatch.setattr(TargetMarketoIngest, "_emit_state", watching_emit)
    run = run_target(config, messages)
    assert run.states[-1] == {"after": 60}
    assert seen
    for after, with_outcome in seen:
        assert with_outcome >= after
    assert run.summary("leads")["imported"] == 65


def test_an_old_pending_state_flushes_open_files(shared_sandbox, tmp_path, monkeypatch):
    """A STATE is not held until 10 MB accumulate: past the record age limit files go out."""
    lines = [schema("leads", LEAD_SCHEMA)]
    for chunk in range(3):
        lines += _leads(f"age{chunk}-", 5)
        lines.append(state({"chunk": chunk}))
    run = run_target(target_config(shared_sandbox, tmp_path / "a"), lines)
    assert run.summary("leads")["files"] == 1  # everything fits in one file

    monkeypatch.setattr(TargetMarketoIngest, "_MAX_RECORD_AGE_IN_MINUTES", 0.0)
    run = run_target(target_config(shared_sandbox, tmp_path / "b"), lines)
    assert run.summary("leads")["files"] == 3  # one per STATE
    assert run.states[-1] == {"chunk": 2}
