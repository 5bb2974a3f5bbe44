"""The removal check inside the export engine (no SDK): after the rows, on the same quota."""

from __future__ import annotations

import json
import logging

import pytest
from marketo_common import MarketoClient, MarketoSettings
from marketo_sandbox.server import SandboxServer
from tap_marketo_members.engine import Commit, ExportEngine, Rows
from tap_marketo_members.ledger import Ledger
from tap_marketo_members.quota import ExportJobLists
from tap_marketo_members.removals import DELETED_AT
from tap_marketo_members.scheduler import MB
from tap_marketo_members.settings import TapSettings

from .conftest import TIME_SCALE
from .support import config_for

PROGRAMS = [1001, 1002]
FIELDS = ["programId", "leadId", "updatedAt"]
PROPERTIES = {
    "programId": {"type": ["integer"]},
    "leadId": {"type": ["integer"]},
    "updatedAt": {"type": ["string", "null"], "format": "date-time"},
}
LOGGER = logging.getLogger("tests.removals_engine")


@pytest.fixture
def rsb(tmp_path):
    with SandboxServer(
        db_path=tmp_path / "sandbox.db", seed="demo", time_scale=TIME_SCALE
    ) as server:
        yield server


class Run:
    """State kept across engine runs, as the SDK would keep it (plain dicts here)."""

    def __init__(self, sandbox: SandboxServer) -> None:
        self.sandbox = sandbox
        self.partitions: dict[str, dict] = {}
        self.stream_state: dict = {}
        self.ledger: Ledger | None = None

    def client(self) -> MarketoClient:
        return MarketoClient(MarketoSettings.from_config(self.sandbox.config), user_agent="t")

    def engine(self, **extra) -> ExportEngine:
        config = config_for(self.sandbox, program_ids=PROGRAMS, detect_removals=True, **extra)
        self.ledger = Ledger(
            lambda ctx: self.partitions.setdefault(json.dumps(dict(ctx), sort_keys=True), {}),
            self.stream_state,
            replication_key="updatedAt",
            incremental=True,
            start_date=None,
            member_filters=None,
        )
        return ExportEngine(
            self.client(),
            TapSettings.from_config(config),
            self.ledger,
            properties=PROPERTIES,
            fields=FIELDS,
            member_field_names=FIELDS,
            created_at={},
            logger=LOGGER,
        )


def _drain(engine: ExportEngine) -> list[dict]:
    return [r for e in engine.events(PROGRAMS) if isinstance(e, Rows) for c in e.chunks for r in c]


def _remove(run: Run, program_id: int, lead_ids: list[int]) -> None:
    reply = run.client().post(
        f"/rest/v1/programs/{program_id}/members/delete.json",
        json={"input": [{"leadId": lead} for lead in lead_ids]},
    )
    assert all(r.get("status") == "deleted" for r in reply["result"]), reply


def _members(sandbox: SandboxServer, program_id: int) -> list[int]:
    return sorted(m["leadId"] for m in sandbox.admin.dump("program_members", program_id))


def test_snapshots_reach_the_ledger_only_after_the_removal_rows(rsb):
    run = Run(rsb)
    assert not [r for r in _drain(run.engine()) if DELETED_AT in r]  # the baseline
    baseline = run.ledger.removal_snapshots()
    assert baseline
    gone = _members(rsb, 1001)[:2]
    _remove(run, 1001, gone)
    events = run.engine().events(PROGRAMS)
    removed: list[dict] = []
    for event in events:
        if not isinstance(event, Rows):
            continue
        rows = [r for chunk in event.chunks for r in chunk]
        if any(DELETED_AT in r for r in rows):
            removed = rows
            assert run.ledger.removal_snapshots() == baseline  # rows out, state not yet moved
            commit = next(events)
            assert isinstance(commit, Commit)
            assert set(commit.program_ids) == set(PROGRAMS)
            assert run.ledger.removal_snapshots() != baseline
    assert sorted(r["leadId"] for r in removed) == gone
    # the keys-only file is counted in the ledger's bytes of today
    keys = [j for j in rsb.admin.dump("export_jobs") if j["fields"] == ["leadId"]]
    completed = [j for j in rsb.admin.dump("export_jobs") if j["status"] == "Completed"]
    assert any(j["status"] == "Completed" for j in keys)
    assert run.stream_state["export_bytes_today"]["bytes"] == sum(
        int(j["fileSize"]) for j in completed
    )


def test_quota_reached_before_the_check_stops_cleanly_and_keeps_the_old_snapshots(rsb, caplog):
    run = Run(rsb)
    _drain(run.engine())
    baseline = run.ledger.removal_snapshots()
    _remove(run, 1001, _members(rsb, 1001)[:1])
    # A member changed: the updatedAt window has a file, which uses up the quota set here.
    lead = next(m for m in _members(rsb, 1001)[1:] if m not in _members(rsb, 1002))
    status = rsb.admin.dump("program_members", 1002)[0]["statusName"]
    reply = run.client().post(
        "/rest/v1/programs/1002/members/status.json",
        json={"statusName": status, "input": [{"leadId": lead}]},
    )
    assert all(r.get("status") in {"created", "updated"} for r in reply["result"]), reply
    used = ExportJobLists(run.client(), LOGGER).used_today()
    keys_before = [j for j in rsb.admin.dump("export_jobs") if j["fields"] == ["leadId"]]
    with caplog.at_level(logging.WARNING):
        rows = _drain(run.engine(daily_export_quota_mb=(used + 1) / MB))
    assert rows  # the updatedAt window went out
    assert not [r for r in rows if DELETED_AT in r]
    assert run.ledger.removal_snapshots() == baseline  # checked again next run
    queued = [
        j
        for j in rsb.admin.dump("export_jobs")
        if j["fields"] == ["leadId"] and j["queuedAt"] and j not in keys_before
    ]
    assert queued == []  # no keys-only job beyond the quota
    assert "Stopping program_members cleanly" in caplog.text
