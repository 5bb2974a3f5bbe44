"""A crash mid-run and a rerun from the last STATE lose nothing; schema changes mid-stream."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from target_helpers import (
    LEAD_SCHEMA,
    messages_to_text,
    record,
    run_target,
    schema,
    state,
    target_config,
)
from target_marketo_ingest.bulk_leads import BulkLeadImport
from target_marketo_ingest.errors import TargetError
from target_marketo_ingest.target import TargetMarketoIngest


def _input(n_chunks: int, per_chunk: int) -> list[dict]:
    lines = [schema("leads", LEAD_SCHEMA, ["email"])]
    for chunk in range(n_chunks):
        lines += [
            record("leads", {"email": f"crash{chunk}-{i}@example.com", "firstName": "C"})
            for i in range(per_chunk)
        ]
        lines.append(state({"chunk": chunk}))
    return lines


def test_crash_then_rerun_from_last_state_loses_nothing(shared_sandbox, tmp_path, monkeypatch):
    lines = _input(n_chunks=6, per_chunk=40)
    config = target_config(shared_sandbox, tmp_path, max_import_file_mb=0.0015)
    original = BulkLeadImport.create
    calls = {"n": 0}

    def crashing_create(self, client, file, content):
        calls["n"] += 1
        if calls["n"] > 3:
            msg = "simulated crash: connection lost for good"
            raise RuntimeError(msg)
        return original(self, client, file, content)

    monkeypatch.setattr(BulkLeadImport, "create", crashing_create)
    target = TargetMarketoIngest(config=config)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(TargetError):
        target.listen(io.BytesIO(messages_to_text(lines).encode()))
    emitted = [json.loads(line) for line in out.getvalue().splitlines() if line]
    assert emitted  # some progress was saved before the crash...
    last = emitted[-1]
    assert last != {"chunk": 5}  # ...but the run did not finish

    # Rerun: the tap resumes after the last STATE the target emitted.
    monkeypatch.setattr(BulkLeadImport, "create", original)
    cut = next(i for i, m in enumerate(lines) if m.get("value") == last)
    rest = [lines[0], *lines[cut + 1 :]]
    run = run_target(target_config(shared_sandbox, tmp_path / "rerun"), rest)
    assert run.states[-1] == {"chunk": 5}
    emails = {lead["email"] for lead in shared_sandbox.admin.dump("leads")}
    expected = {m["record"]["email"] for m in lines if m["type"] == "RECORD"}
    assert expected <= emails


def test_schema_change_mid_stream_sends_old_records_first(shared_sandbox, tmp_path):
    wider = {"properties": {**LEAD_SCHEMA["properties"], "title": {"type": ["string", "null"]}}}
    lines = [
        schema("leads", LEAD_SCHEMA),
        record("leads", {"email": "sc1@example.com", "firstName": "Old"}),
        state({"s": 1}),
        schema("leads", wider),
        record("leads", {"email": "sc2@example.com", "title": "CTO"}),
        state({"s": 2}),
    ]
    run = run_target(target_config(shared_sandbox, tmp_path), lines)
    assert run.states[-1] == {"s": 2}
    assert sum(s.imported for s in run.target.summaries) == 2
    leads = {lead["email"]: lead for lead in shared_sandbox.admin.dump("leads")}
    assert leads["sc2@example.com"]["title"] == "CTO"
    assert leads["sc1@example.com"]["firstName"] == "Old"
