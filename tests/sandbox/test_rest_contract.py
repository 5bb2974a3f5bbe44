"""REST and data as the published pages state them (issue 13): whole-second updatedAt bounds,
sync data needs a field, every field type of field-types.md, realistic demo and generated data.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from marketo_sandbox import seed
from marketo_sandbox.clock import Clock
from marketo_sandbox.server import SandboxServer
from marketo_sandbox.storage import Store
from sandbox_helpers import error, result
from test_bulk_support import Api, parse

MEMBERS = "/rest/v1/programs/{}/members.json"
PM_FIELDS = "/rest/v1/programs/members/schema/fields.json"
LEAD_FIELDS = "/rest/v1/leads/schema/fields.json"
#: field-types.md's types by their API names (text area is `text`).
DOCUMENTED_TYPES = (
    "datetime", "email", "float", "integer", "formula", "percent", "url", "phone", "text",
    "string", "score", "boolean", "currency", "date", "reference",
)  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    with SandboxServer(
        tmp_path_factory.mktemp("rest") / "s.db", seed="demo", time_scale=3600
    ) as sb:
        yield sb


def _updated_at(start: str, end: str) -> dict[str, str]:
    return {"filterType": "updatedAt", "startAt": start, "endAt": end, "fields": "leadId"}


@pytest.mark.parametrize(
    "bound", ["2024-01-02T00:00:00.000Z", "2024-01-02T00:00:00.123+00:00", "2024-01-02"]
)
def test_rest_updated_at_with_milliseconds_or_without_time_is_1003(rest, bound):
    for params in (
        _updated_at(bound, "2024-01-05T00:00:00Z"),
        _updated_at("2024-01-01T00:00:00Z", bound),
    ):
        code, message = error(rest.get(MEMBERS.format(1002), params=params))
        assert code == "1003"
        assert "milliseconds" in message


def test_rest_updated_at_whole_seconds_and_offsets_accepted(rest):
    for start in ("2024-01-01T00:00:00Z", "2024-01-01T01:00:00+01:00", "2024-01-01T00:00:00"):
        reply = rest.get(MEMBERS.format(1002), params=_updated_at(start, "2024-01-05T00:00:00Z"))
        assert reply.json()["success"] is True
    bad = _updated_at("soon", "2024-01-05T00:00:00Z")
    assert error(rest.get(MEMBERS.format(1002), params=bad))[0] == "1001"


def test_sync_data_without_a_field_to_change_is_skipped(server, rest):
    lead = server.admin.dump("program_members", 1001)[0]["leadId"]
    reply = rest.post(
        MEMBERS.format(1001),
        json={"input": [{"leadId": lead}, {"leadId": lead, "registrationCode": "R-1"}]},
    )
    first, second = result(reply)
    assert first["status"] == "skipped"
    assert first["reasons"][0]["code"] == "1003"
    assert second == {"seq": 1, "status": "updated", "leadId": lead}


def test_every_documented_field_type_can_be_created(rest):
    specs = [
        {"name": f"t{kind.capitalize()}Field", "displayName": f"T {kind} field", "dataType": kind}
        for kind in DOCUMENTED_TYPES
    ]
    replies = result(rest.post(LEAD_FIELDS, json={"input": specs}))
    assert [r["status"] for r in replies] == ["created"] * len(DOCUMENTED_TYPES), replies
    by_name = {f["rest"]["name"]: f for f in result(rest.get("/rest/v1/leads/describe.json"))}
    for spec in specs:
        assert by_name[spec["name"]]["dataType"] == spec["dataType"]


def test_percent_with_decimals_is_stored_as_given(server, rest):
    spec = {"name": "discountShare", "displayName": "Discount Share", "dataType": "percent"}
    assert result(rest.post(PM_FIELDS, json={"input": [spec]}))[0]["status"] == "created"
    leads = [m["leadId"] for m in server.admin.dump("program_members", 1004)[:2]]
    body = {
        "input": [
            {"leadId": leads[0], "discountShare": 12.5},
            {"leadId": leads[1], "discountShare": "30"},
        ]
    }
    assert [r["status"] for r in result(rest.post(MEMBERS.format(1004), json=body))] == [
        "updated",
        "updated",
    ]
    params = {
        "filterType": "leadId",
        "filterValues": ",".join(map(str, leads)),
        "fields": "leadId,discountShare",
    }
    rows = result(rest.get(MEMBERS.format(1004), params=params))
    assert {r["leadId"]: r["discountShare"] for r in rows} == {leads[0]: 12.5, leads[1]: 30}
    _, data = Api(server).run_export(["leadId", "discountShare"], {"programId": 1004})
    cells = {int(r[0]): r[1] for r in parse(data)[1:]}
    assert (cells[leads[0]], cells[leads[1]]) == ("12.5", "30")


def test_formula_fields_are_read_only_and_not_exported(server, rest):
    spec = {"name": "fullLabel", "displayName": "Full Label", "dataType": "formula"}
    assert result(rest.post(PM_FIELDS, json={"input": [spec]}))[0]["status"] == "created"
    lead = server.admin.dump("program_members", 1004)[0]["leadId"]
    [reply] = result(
        rest.post(MEMBERS.format(1004), json={"input": [{"leadId": lead, "fullLabel": "x"}]})
    )
    assert reply["status"] == "skipped"
    body = {"fields": ["leadId", "fullLabel"], "filter": {"programId": 1004}}
    code, _ = Api(server).error("post", "/bulk/v1/program/members/export/create.json", json=body)
    assert code == "1003"


# ---------------------------------------------------------------- realistic data


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z+0000", "Z").replace("Z", "+00:00"))


def _check_history(store: Store) -> None:
    programs = {p["id"]: p for p in store.programs.all()}
    now = store.clock.now()
    created = {pid: _at(p["createdAt"]) for pid, p in programs.items()}
    assert min(created.values()) >= now - timedelta(days=731)
    assert max(created.values()) - min(created.values()) > timedelta(days=365)
    leads = {lead["id"]: lead for lead in store.leads.dump()}
    for member in store.members.dump():
        pid = member["programId"]
        first = _at(member["membershipDate"])
        assert created[pid] <= first <= _at(member["updatedAt"]) <= now
        assert _at(member["createdAt"]) >= created[pid]
        assert _at(leads[member["leadId"]]["createdAt"]) <= first
        statuses = {s["name"]: s for s in programs[pid]["progressionStatuses"]}
        assert member["statusName"] in statuses
        assert member["reachedSuccess"] == statuses[member["statusName"]]["success"]
        engagement = programs[pid]["type"] == "engagement"
        assert (member["nurtureCadence"] in ("pause", "norm")) == engagement
        assert not member["isExhausted"] or engagement
    nurture = [m for m in store.members.dump() if m["programId"] == 1002]
    assert any(m["isExhausted"] for m in nurture)
    assert any(m["nurtureCadence"] == "pause" for m in nurture)


def test_demo_history_is_consistent(tmp_path):
    store = Store(tmp_path / "demo.db", clock=Clock())
    seed.apply(store, "demo")
    assert [p["id"] for p in store.programs.all()] == [1001, 1002, 1003, 1004]
    _check_history(store)
    members = store.members.dump()
    now = store.clock.now()
    joined = [_at(m["membershipDate"]) for m in members]
    assert min(joined) < now - timedelta(days=180)  # a history, not last month only
    # every last change is recent (replays from the oldest change stay a few windows)
    assert min(_at(m["updatedAt"]) for m in members) >= now - timedelta(days=61)
    store.close()


def test_generated_members_are_consistent(tmp_path):
    store = Store(tmp_path / "gen.db", clock=Clock(start=datetime(2026, 3, 1, tzinfo=timezone.utc)))
    seed.apply(store, None, members=4000)
    _check_history(store)
    store.close()
