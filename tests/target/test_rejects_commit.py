"""Reject lines reach the file with the STATE that covers their record, never before.

Found by the chaos soak: a record rejected `not_applied` by a run that was then SIGKILLed
before its STATE went out was sent again by the rerun and applied, yet its reject line from
the killed run stayed in the file (217 records "rejected" but in Marketo).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from target_helpers import LEAD_SCHEMA, record, schema, state, target_config
from target_marketo_ingest import lines
from target_marketo_ingest.checkpoint import Checkpoints
from target_marketo_ingest.rejects import REJECT, RejectsFile


def _reject(rejects: RejectsFile, line: int | None) -> None:
    rejects.write(
        kind=REJECT,
        stream="leads",
        line=line,
        reason="r",
        message="m",
        record={"n": line},
        method="bulk_leads",
    )


def _lines_in(path) -> list:
    if not path.exists():
        return []
    return [json.loads(raw)["line"] for raw in path.read_text().splitlines()]


def test_an_entry_waits_for_the_state_that_covers_its_record(tmp_path):
    path = tmp_path / "rejects.jsonl"
    rejects = RejectsFile(path)
    emitted = []
    cp = Checkpoints(lambda s: emitted.append((s, _lines_in(path))), before_emit=rejects.commit)
    unit = cp.open_unit(0)
    _reject(rejects, 2)  # record at line 2 (record 0)
    _reject(rejects, 4)  # a record after the STATE at line 3, rejected early
    cp.add_state({"s": 1}, received=1, line=3)
    assert emitted == []
    assert _lines_in(path) == []  # held: a kill now leaves no line for a replayed record
    cp.close_unit(unit)
    assert emitted == [({"s": 1}, [2])]  # written just before the STATE, line 4 still held
    rejects.close()
    assert _lines_in(path) == [2, 4]  # the run ended: every outcome is in the file
    entries = [json.loads(raw) for raw in path.read_text().splitlines()]
    assert {e["run"] for e in entries} == {rejects.run}


def test_entries_without_a_line_go_with_the_next_state(tmp_path):
    path = tmp_path / "rejects.jsonl"
    rejects = RejectsFile(path)
    _reject(rejects, None)
    rejects.commit(1)
    assert _lines_in(path) == [None]


def test_batch_rows_belong_to_their_batch_message_line(tmp_path):
    path = tmp_path / "rejects.jsonl"
    rejects = RejectsFile(path)
    base = lines.register_file("file:///x.jsonl", 7)
    _reject(rejects, base + 3)
    rejects.commit(7)
    assert _lines_in(path) == []
    rejects.commit(8)
    assert _lines_in(path) == ["file:///x.jsonl#3"]


def test_held_entries_spill_to_disk_and_keep_their_order(tmp_path, monkeypatch):
    monkeypatch.setattr(RejectsFile, "SPILL_BYTES", 600)
    path = tmp_path / "rejects.jsonl"
    rejects = RejectsFile(path)
    for line in range(1, 41):
        _reject(rejects, line)
    assert rejects._spill is not None  # the test exercises the spill file
    rejects.commit(21)
    assert _lines_in(path) == list(range(1, 21))
    for line in range(41, 46):
        _reject(rejects, line)
    rejects.commit(31)
    assert _lines_in(path) == list(range(1, 31))
    rejects.close()
    assert _lines_in(path) == list(range(1, 46))


def test_a_kill_before_the_state_leaves_no_line_for_the_replayed_record(fast_sandbox, tmp_path):
    """The soak's failure at its smallest: reject, SIGKILL before the STATE, rerun applies."""
    config = target_config(fast_sandbox, tmp_path)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    err = (tmp_path / "target.err").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from target_marketo_ingest.target import TargetMarketoIngest as T; T.cli()",
            "--config",
            str(config_path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=err,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    keys = ["email"]
    head = [
        schema("leads", LEAD_SCHEMA, keys),
        record("leads", {"firstName": "no key"}),  # line 2: rejected, missing 'email'
        state({"s": 1}),
        record("leads", {"firstName": "no key either"}),  # line 4: rejected, then killed
        {"type": "ACTIVATE_VERSION", "stream": "leads", "version": 1},  # logged when read
    ]
    proc.stdin.write("".join(json.dumps(m) + "\n" for m in head).encode())
    proc.stdin.flush()
    assert json.loads(proc.stdout.readline()) == {"s": 1}
    deadline = time.monotonic() + 60
    while b"ACTIVATE_VERSION" not in (tmp_path / "target.err").read_bytes():
        assert proc.poll() is None
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    err.close()
    rejects = [json.loads(raw) for raw in Path(config["rejects_path"]).read_text().splitlines()]
    assert [r["line"] for r in rejects] == [2]  # line 4 had no STATE yet: the rerun decides
