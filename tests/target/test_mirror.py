"""MirrorWriter's plan and hand-over with a fake membership and a fake write method."""

from __future__ import annotations

import logging

import pytest
from marketo_common import ConfigError
from target_marketo_ingest.checkpoint import Checkpoints
from target_marketo_ingest.context import WriteContext
from target_marketo_ingest.errors import TargetError
from target_marketo_ingest.executor import FailureLatch
from target_marketo_ingest.membership import Membership as RestMembership
from target_marketo_ingest.mirror import MirrorWriter, mirror_line
from target_marketo_ingest.rejects import RejectsFile
from target_marketo_ingest.routing import parse_route
from target_marketo_ingest.settings import TargetOptions
from target_marketo_ingest.summary import StreamSummary
from target_marketo_ingest.validation import RecordRejected

STATUSES = {"not in program": "Not in Program", "member": "Member", "engaged": "Engaged"}


class Catalog:
    def statuses(self, program_id):
        return STATUSES if program_id in {1, 2} else None


class Membership:
    def __init__(self, members):
        self.members = members
        self.read_programs = []

    def read(self, program_id):
        self.read_programs.append(program_id)
        yield from self.members.get(program_id, {}).items()


class Inner:
    """Records what reaches the write method; refuses removals of the leads in `refuse`."""

    def __init__(self, ctx, refuse=()):
        self.ctx = ctx
        self.refuse = set(refuse)
        self.added = []
        self.closed = False

    def add(self, record, seq, line):
        if record.get("_sdc_deleted_at") and record["leadId"] in self.refuse:
            raise RecordRejected("marketo_error", f"lead {record['leadId']} could not be removed")
        self.added.append((record, seq, line))
        self.ctx.summary.add("accepted")

    def flush(self):
        pass

    def close(self):
        self.closed = True


def _ctx(tmp_path, route, states, **options):
    return WriteContext(
        stream="s",
        route=parse_route("s", "s", route),
        client=None,
        rejects=RejectsFile(tmp_path / "rejects.jsonl"),
        checkpoints=Checkpoints(states.append),
        summary=StreamSummary("s", route["method"]),
        options=TargetOptions(**options),
        fatal=FailureLatch(),
        logger=logging.getLogger("test-mirror"),
    )


def _writer(tmp_path, members, route=None, refuse=(), **options):
    states = []
    route = route or {"method": "rest_program_members", "mirror": True}
    ctx = _ctx(tmp_path, route, states, **options)
    inner = Inner(ctx, refuse)
    membership = Membership(members)
    writer = MirrorWriter(ctx, inner, Catalog(), membership)
    return writer, inner, ctx, states, membership


def _feed(writer, ctx, rows, start=0):
    for seq, row in enumerate(rows, start):
        ctx.summary.received += 1
        writer.add(row, seq, seq + 1)


def test_plan_then_input_then_removals_and_state_after_all(tmp_path):
    members = {1: {10: "Member", 11: "Member", 12: "Engaged", 13: "Member"}, 2: {20: "Engaged"}}
    writer, inner, ctx, states, membership = _writer(tmp_path, members)
    _feed(
        writer,
        ctx,
        [
            {"leadId": 10, "programId": 1, "statusName": "member"},  # unchanged (any case)
            {"leadId": 11, "programId": 1, "statusName": "Engaged"},  # status change
            {"leadId": 14, "programId": 1, "statusName": "Member"},  # add
            {"leadId": 20, "programId": 2, "statusName": "Engaged"},  # unchanged
            {"leadId": 13, "programId": 1, "_sdc_deleted_at": "2026-01-01"},  # removal (input)
        ],
    )
    ctx.checkpoints.add_state({"at": 5}, 5)
    assert inner.added == []  # nothing goes out before the input ends
    assert states == []
    writer.flush()
    assert inner.added == []
    writer.close()

    plans = {p.program_id: p for p in writer.plans}
    assert plans[1].line() == (
        "program 1: 1 adds, 1 status changes, 2 removals, 1 unchanged (current members 4)"
    )
    assert (plans[2].unchanged, plans[2].removals) == (1, 0)
    assert membership.read_programs == [1, 2]
    sent = [(r["leadId"], bool(r.get("_sdc_deleted_at"))) for r, _, _ in inner.added]
    assert sent == [(10, False), (11, False), (14, False), (20, False), (13, True), (12, True)]
    removal, seq, line = inner.added[-1]
    assert (removal["programId"], seq, line) == (1, 0, None)
    assert inner.closed
    assert ctx.summary.received == 6
    assert dict(ctx.summary.plan) == {
        "adds": 1,
        "status_changes": 1,
        "removals": 2,
        "unchanged": 2,
    }
    assert states == [{"at": 5}]
    assert mirror_line(ctx.summary.as_dict()["mirror"]) == (
        ", mirror: adds 1, status changes 1, removals 2, unchanged 2"
    )


def test_a_removal_that_fails_is_a_reject_with_its_reason(tmp_path):
    members = {1: {10: "Member", 11: "Member"}}
    writer, _, ctx, _, _ = _writer(tmp_path, members, refuse={11})
    _feed(writer, ctx, [{"leadId": 10, "programId": 1, "statusName": "Member"}])
    writer.close()
    assert ctx.summary.rejected_by_reason == {"marketo_error": 1}
    assert ctx.summary.received == ctx.summary.with_outcome == 2
    ctx.rejects.close()
    text = (tmp_path / "rejects.jsonl").read_text()
    assert "lead 11 could not be removed" in text


def test_fraction_guard_counts_per_program_and_nothing_is_sent(tmp_path):
    members = {1: dict.fromkeys(range(1, 11), "Member")}
    route = {"method": "ingest_program_members", "mirror": True, "max_removals": 0.3}
    writer, inner, ctx, states, _ = _writer(tmp_path, members, route)
    _feed(writer, ctx, [{"leadId": i, "programId": 1, "statusName": "Member"} for i in range(1, 7)])
    with pytest.raises(TargetError, match=r"would remove 4 of 10 members of program 1 \(limit 3\)"):
        writer.close()
    assert inner.added == []
    assert states == []


def test_records_without_program_or_lead_are_rejected_when_read(tmp_path):
    writer, _, _, _, _ = _writer(tmp_path, {})
    with pytest.raises(RecordRejected) as caught:
        writer.add({"leadId": 1, "statusName": "Member"}, 0, 1)
    assert caught.value.reason == "missing_program"
    with pytest.raises(RecordRejected) as caught:
        writer.add({"leadId": "x", "programId": 1, "statusName": "Member"}, 1, 2)
    assert caught.value.field == "leadId"


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ({"method": "ingest_persons", "mirror": True}, "streams.s.mirror: only ingest_program"),
        ({"method": "bulk_program_members", "mirror": True}, "streams.s.mirror: only ingest_"),
        ({"method": "bulk_leads", "verify": True}, "streams.s.verify: only Data Ingestion"),
        ({"method": "rest_program_members", "mirror": "yes"}, "streams.s.mirror: expected true"),
        ({"method": "rest_program_members", "max_removals": 2.5}, "streams.s.max_removals:"),
        ({"method": "rest_program_members", "max_removals": -1}, "streams.s.max_removals:"),
    ],
)
def test_route_options_are_checked(route, message):
    with pytest.raises(ConfigError, match=message):
        parse_route("s", "s", route)


def test_route_options_parse():
    route = parse_route(
        "s", "s", {"method": "ingest_program_members", "mirror": True, "max_removals": "0.25"}
    )
    assert (route.mirror, route.max_removals, route.verify) == (True, 0.25, None)
    assert parse_route("s", "s", {"method": "ingest_persons", "verify": False}).verify is False


def test_membership_with_a_comma_in_a_status_name_is_listed_by_reached_success():
    """filterValues splits on commas, so such a status cannot be named in it."""

    class Client:
        def __init__(self):
            self.calls = []

        def get(self, path, params):
            self.calls.append(dict(params))
            return {"result": [{"leadId": 7, "statusName": "Registered, Waitlist"}]}

    class CommaCatalog:
        def statuses(self, _program_id):
            return {"not in program": "Not in Program", "rw": "Registered, Waitlist"}

    client = Client()
    rows = list(RestMembership(client, CommaCatalog(), lambda: None).read(5))
    assert rows == [(7, "Registered, Waitlist")]
    assert client.calls[0]["filterType"] == "reachedSuccess"
    assert client.calls[0]["filterValues"] == "true,false"
    plain = Client()
    list(RestMembership(plain, Catalog(), lambda: None).read(1))
    assert plain.calls[0]["filterType"] == "statusName"
