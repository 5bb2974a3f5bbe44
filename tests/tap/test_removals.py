"""detect_removals: members who left a program come out as `_sdc_deleted_at` records."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from marketo_common import ConfigError, MarketoClient, MarketoSettings
from marketo_sandbox.server import SandboxServer
from tap_marketo_members.settings import TapSettings
from target_marketo_ingest.target import TargetMarketoIngest

from .conftest import TIME_SCALE
from .support import config_for, key, run_tap

PROGRAMS = [1001, 1002]
DAY = 24 * 3600


@pytest.fixture
def rsb(tmp_path):
    """A sandbox of its own: members are removed and its clock moved here."""
    with SandboxServer(
        db_path=tmp_path / "sandbox.db", seed="demo", time_scale=TIME_SCALE
    ) as server:
        yield server


def _client(sandbox: SandboxServer) -> MarketoClient:
    return MarketoClient(MarketoSettings.from_config(sandbox.config), user_agent="tests")


def _remove(sandbox: SandboxServer, program_id: int, lead_ids: list[int]) -> None:
    """Marketo's REST delete (program-members.md: Delete Program Members)."""
    reply = _client(sandbox).post(
        f"/rest/v1/programs/{program_id}/members/delete.json",
        json={"input": [{"leadId": lead} for lead in lead_ids]},
    )
    assert all(r.get("status") == "deleted" for r in reply["result"]), reply


def _members(sandbox: SandboxServer, program_id: int) -> list[int]:
    return sorted(
        m["leadId"] for m in sandbox.admin.dump("program_members") if m["programId"] == program_id
    )


def _deleted(run) -> list[dict]:
    return [r for r in run.members() if r.get("_sdc_deleted_at")]


def _config(sandbox: SandboxServer, **extra) -> dict:
    return config_for(sandbox, program_ids=PROGRAMS, detect_removals=True, **extra)


def test_baseline_then_removal_detected(rsb):
    first = run_tap(_config(rsb))
    assert first.members()
    assert _deleted(first) == []  # the first check only takes a baseline
    snapshots = first.state["bookmarks"]["program_members"]["removal_snapshots"]
    assert {p for s in snapshots for p in s["programIds"]} == set(PROGRAMS)
    gone = _members(rsb, 1001)[:2] + _members(rsb, 1002)[-1:]
    _remove(rsb, 1001, gone[:2])
    _remove(rsb, 1002, gone[2:])
    second = run_tap(_config(rsb), state=first.state)
    removed = _deleted(second)
    assert sorted(key(r) for r in removed) == sorted(
        [(1001, gone[0]), (1001, gone[1]), (1002, gone[2])]
    )
    for record in removed:
        assert set(record) == {"programId", "leadId", "_sdc_deleted_at"}
        assert record["_sdc_deleted_at"].endswith("Z")
    # the previous snapshot is replaced: a third check lists nothing again
    third = run_tap(_config(rsb), state=second.state)
    assert _deleted(third) == []


def _add(sandbox: SandboxServer, program_id: int, lead_ids: list[int], status: str) -> None:
    """Marketo's REST status sync adds the leads as members (program-members.md)."""
    reply = _client(sandbox).post(
        f"/rest/v1/programs/{program_id}/members/status.json",
        json={"statusName": status, "input": [{"leadId": lead} for lead in lead_ids]},
    )
    assert all(r.get("status") in {"created", "updated"} for r in reply["result"]), reply


def _status_of(sandbox: SandboxServer, program_id: int, lead_id: int) -> str:
    rows = sandbox.admin.dump("program_members", program_id)
    return next(m["statusName"] for m in rows if m["leadId"] == lead_id)


def _snapshots(run) -> list[dict]:
    return run.state["bookmarks"]["program_members"]["removal_snapshots"]


def _keys_only_jobs(sandbox: SandboxServer) -> list[dict]:
    return [
        j for j in sandbox.admin.dump("export_jobs") if j["fields"] == ["leadId"] and j["queuedAt"]
    ]


def test_member_removed_and_added_again_is_not_removed(rsb):
    first = run_tap(_config(rsb))
    lead, other = _members(rsb, 1001)[:2]
    status = _status_of(rsb, 1001, lead)
    _remove(rsb, 1001, [lead, other])
    _add(rsb, 1001, [lead], status)
    second = run_tap(_config(rsb), state=first.state)
    assert [key(r) for r in _deleted(second)] == [(1001, other)]
    assert (1001, lead) in {key(r) for r in second.members() if not r.get("_sdc_deleted_at")}


def test_without_detect_removals_nothing_is_checked(rsb):
    run = run_tap(config_for(rsb, program_ids=PROGRAMS))
    assert "removal_snapshots" not in run.state["bookmarks"]["program_members"]
    assert _keys_only_jobs(rsb) == []
    assert all("_sdc_deleted_at" not in r for r in run.members())


def test_interval_is_respected(rsb):
    config = _config(rsb, removal_check_interval_hours=24)
    first = run_tap(config)
    assert len(_keys_only_jobs(rsb)) == 1
    lead = _members(rsb, 1002)[0]
    _remove(rsb, 1002, [lead])
    rsb.admin.advance(3600)  # an hour later: not due
    second = run_tap(config, state=first.state)
    assert len(_keys_only_jobs(rsb)) == 1
    assert _deleted(second) == []
    assert _snapshots(second) == _snapshots(first)
    assert "no program due" in second.logs
    rsb.admin.advance(24 * 3600)  # a day after the snapshot: due
    third = run_tap(config, state=second.state)
    assert len(_keys_only_jobs(rsb)) == 2
    assert [key(r) for r in _deleted(third)] == [(1002, lead)]


@pytest.mark.parametrize("answer", ["1003", "404"])
def test_previous_file_expired_gives_a_warning_and_a_new_baseline(rsb, answer):
    rsb.admin.set_options(export_file_retention_days=1, export_expired_file_answer=answer)
    first = run_tap(_config(rsb))
    lead = _members(rsb, 1001)[0]
    _remove(rsb, 1001, [lead])
    rsb.admin.advance(2 * DAY)  # past the (shortened) retention: Marketo no longer has the file
    second = run_tap(_config(rsb), state=first.state)
    assert _deleted(second) == []
    assert "cannot be read" in second.logs
    assert "this check's snapshot is the new baseline" in second.logs
    old = {s["exportId"] for s in _snapshots(first)}
    assert {s["exportId"] for s in _snapshots(second)}.isdisjoint(old)
    other = _members(rsb, 1001)[0]
    _remove(rsb, 1001, [other])
    third = run_tap(_config(rsb), state=second.state)  # from the new baseline on
    assert [key(r) for r in _deleted(third)] == [(1001, other)]


def test_snapshot_older_than_seven_days_is_not_asked_for(rsb):
    first = run_tap(_config(rsb))
    _remove(rsb, 1002, _members(rsb, 1002)[:1])
    rsb.admin.advance(8 * DAY)
    second = run_tap(_config(rsb), state=first.state)
    assert _deleted(second) == []
    assert "older than Marketo's seven-day file retention" in second.logs


def test_unknown_previous_job_gives_a_new_baseline(rsb):
    first = run_tap(_config(rsb))
    state = json.loads(json.dumps(first.state))
    for snap in state["bookmarks"]["program_members"]["removal_snapshots"]:
        snap["exportId"] = "00000000-0000-0000-0000-000000000000"
    second = run_tap(_config(rsb), state=state)
    assert _deleted(second) == []
    assert "cannot be read" in second.logs


def test_state_size_does_not_grow_with_members(rsb):
    first = run_tap(_config(rsb))
    size = len(json.dumps(_snapshots(first)))
    members = {m["leadId"] for m in rsb.admin.dump("program_members", 1001)}
    leads = [lead["id"] for lead in rsb.admin.dump("leads") if lead["id"] not in members][:300]
    assert len(leads) == 300
    _add(rsb, 1001, leads, _status_of(rsb, 1001, min(members)))
    second = run_tap(_config(rsb), state=first.state)
    assert _deleted(second) == []
    assert len(json.dumps(_snapshots(second))) == size
    assert size < 300  # two programs in one job: one entry of a few dozen bytes


def test_keys_only_snapshot_counts_against_the_quota(rsb):
    run = run_tap(_config(rsb))
    jobs = [j for j in rsb.admin.dump("export_jobs") if j["status"] == "Completed"]
    assert len(_keys_only_jobs(rsb)) == 1
    counted = run.state["bookmarks"]["program_members"]["export_bytes_today"]["bytes"]
    assert counted == sum(int(j["fileSize"]) for j in jobs)
    keys_only = _keys_only_jobs(rsb)[0]
    assert keys_only["filter"] == {"programIds": PROGRAMS}  # full membership, no updatedAt
    members = len([m for m in rsb.admin.dump("program_members") if m["programId"] in PROGRAMS])
    assert int(keys_only["fileSize"]) / members < 16  # bytes per member per check


def test_interval_beyond_file_retention_is_refused():
    with pytest.raises(ConfigError, match=r"removal_check_interval_hours.*0 to 144"):
        TapSettings.from_config({"detect_removals": True, "removal_check_interval_hours": 168})
    with pytest.raises(ConfigError, match="detect_removals"):
        TapSettings.from_config({"detect_removals": "yes"})


def test_removal_records_remove_the_member_through_our_target(rsb, tmp_path):
    """Round trip: what the tap lists as removed in one instance, our target removes in another."""
    replica = SandboxServer(db_path=tmp_path / "replica.db", seed="demo", time_scale=TIME_SCALE)
    with replica:
        assert _members(replica, 1001) == _members(rsb, 1001)
        first = run_tap(_config(rsb))
        gone = _members(rsb, 1001)[3:5]
        _remove(rsb, 1001, gone)
        second = run_tap(_config(rsb), state=first.state)
        lines = [
            m
            for m in second.raw
            if m.get("stream") == "program_members"
            and m["type"] in {"SCHEMA", "RECORD"}
            and (m["type"] == "SCHEMA" or m["record"].get("_sdc_deleted_at"))
        ]
        assert [m["record"]["leadId"] for m in lines if m["type"] == "RECORD"] == gone
        target = TargetMarketoIngest(
            config={**replica.config, "rejects_path": str(tmp_path / "rejects.jsonl")}
        )
        data = "".join(json.dumps(m) + "\n" for m in lines).encode()
        with contextlib.redirect_stdout(io.StringIO()):
            target.listen(io.BytesIO(data))
        assert _members(replica, 1001) == _members(rsb, 1001)  # the member left there too
        assert (
            not (tmp_path / "rejects.jsonl").exists()
            or not (tmp_path / "rejects.jsonl").read_text()
        )
