"""detect_removals: members who left a program come out as `_sdc_deleted_at` records."""

from __future__ import annotations

import pytest
from marketo_common import MarketoClient, MarketoSettings
from marketo_sandbox.server import SandboxServer

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
