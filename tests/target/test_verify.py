"""Read-back verification (verify.py) with a fake REST client and an injected clock."""

from __future__ import annotations

import logging
import threading

import orjson
import pytest
from target_marketo_ingest.checkpoint import Checkpoints
from target_marketo_ingest.context import WriteContext
from target_marketo_ingest.executor import FailureLatch
from target_marketo_ingest.ingestion import IngestionWriter, _Entry
from target_marketo_ingest.methods import REGISTRY
from target_marketo_ingest.rejects import RejectsFile
from target_marketo_ingest.routing import parse_route
from target_marketo_ingest.settings import TargetOptions
from target_marketo_ingest.summary import StreamSummary
from target_marketo_ingest.verify import (
    MemberReadBack,
    ReadBack,
    Verifier,
    Written,
    same_value,
    settle,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class FakeClient:
    """Answers GETs from `rows(path, params, call_number)`."""

    def __init__(self, rows) -> None:
        self.rows = rows
        self.calls: list[tuple[str, dict, dict | None]] = []

    def get(self, path, params=None):
        self.calls.append((path, dict(params or {}), None))
        return {"success": True, "result": self.rows(path, params, len(self.calls))}

    def post(self, path, *, json=None, params=None):
        self.calls.append((path, dict(params or {}), json))
        return {"success": True, "result": self.rows(path, json, len(self.calls))}


@pytest.mark.parametrize(
    ("written", "read", "same"),
    [
        (5, "5", True),
        (5, 6, False),
        ("4.50", 4.5, True),
        (True, "true", True),
        (False, True, False),
        ("", None, True),
        ("x", None, False),
        ("2026-01-02T03:04:05Z", "2026-01-02T03:04:05+00:00", True),
        ("2026-01-02T03:04:05Z", "2026-01-02T04:04:05+01:00", True),
        ("2026-01-02T03:04:05Z", "2026-01-02T03:04:06Z", False),
        ("2026-01-02", "2026-01-02T00:00:00Z", True),
        ("Ann", "Ann ", True),
        ("Ann", "Anne", False),
    ],
)
def test_same_value_normalises_types(written, read, same):
    assert same_value(written, read) is same


def test_leads_applied_when_found_with_written_values_in_batches_of_300():
    people = [{"email": f"P{i}@x.example", "leadScore": i} for i in range(650)]

    def rows(path, params, _n):
        assert path == "/rest/v1/leads.json"
        assert params["filterType"] == "email"
        assert params["fields"] == "email,leadScore"
        emails = params["filterValues"].split(",")
        # Marketo answers emails in its own case; p7 holds another score (not applied).
        return [
            {"id": 1, "email": e.lower(), "leadScore": 0 if e == "P7@x.example" else int(e[1:-10])}
            for e in emails
        ]

    client, clock, calls = FakeClient(rows), FakeClock(), []
    verifier = Verifier(
        client,
        ReadBack("/rest/v1/leads.json", ("email",)),
        timeout=100,
        interval=10,
        on_call=lambda: calls.append(1),
        clock=clock,
        sleep=clock.sleep,
    )
    applied, missing = verifier.verify([Written(p) for p in people])
    assert len(applied) == 649
    (not_applied,) = missing
    assert not_applied.obj["email"] == "P7@x.example"
    assert not_applied.seen["leadScore"] == 0
    first_round = client.calls[:3]
    assert [len(c[1]["filterValues"].split(",")) for c in first_round] == [300, 300, 50]
    # Later rounds read only the one record still pending, until the timeout.
    assert all(c[1]["filterValues"] == "P7@x.example" for c in client.calls[3:])
    assert len(calls) == len(client.calls)
    assert clock.now == pytest.approx(100)
    assert clock.slept[0] == 10  # the first read waits: Marketo never applies at once


def test_record_applied_on_a_later_poll_is_applied():
    def rows(_path, params, n):
        return [] if n < 3 else [{"email": "a@x.example", "firstName": "A"}]

    clock = FakeClock()
    verifier = Verifier(
        FakeClient(rows),
        ReadBack("/rest/v1/leads.json", ("email",)),
        timeout=1000,
        interval=1,
        clock=clock,
        sleep=clock.sleep,
    )
    applied, missing = verifier.verify([Written({"email": "a@x.example", "firstName": "A"})])
    assert (len(applied), missing) == (1, [])
    assert clock.slept == [1, 1.5, 2.25]


def test_timeout_zero_reads_nothing_and_everything_is_not_applied():
    client, clock = FakeClient(lambda *_: []), FakeClock()
    verifier = Verifier(
        client,
        ReadBack("/rest/v1/companies.json", ("externalCompanyId",)),
        timeout=0.0,
        clock=clock,
        sleep=clock.sleep,
    )
    applied, missing = verifier.verify([Written({"externalCompanyId": "c1"})])
    assert applied == []
    assert len(missing) == 1
    assert missing[0].seen is None
    assert client.calls == []


def test_compound_custom_object_key_uses_the_dedupe_fields_query():
    def rows(path, body, _n):
        assert path == "/rest/v1/customobjects/car_c.json"
        assert body["filterType"] == "dedupeFields"
        assert body["input"] == [{"vin": "V1", "year": 2003}, {"vin": "V2", "year": 2004}]
        return [{"vin": "V1", "year": 2003, "make": "Ford"}, {"vin": "V2", "year": 2004}]

    client, clock = FakeClient(rows), FakeClock()
    verifier = Verifier(
        client,
        ReadBack("/rest/v1/customobjects/car_c.json", ("vin", "year"), compound=True),
        timeout=5,
        interval=1,
        clock=clock,
        sleep=clock.sleep,
    )
    items = [
        Written({"vin": "V1", "year": 2003, "make": "Ford"}),
        Written({"vin": "V2", "year": 2004, "make": "Saab"}),  # read back without make: applied
    ]
    applied, missing = verifier.verify(items)
    assert (len(applied), missing) == (2, [])
    assert client.calls[0][1] == {"_method": "GET"}


def test_members_by_program_status_step_and_deletes():
    statuses = {"not in program": "Not in Program", "registered": "Registered"}
    statuses |= {"attended": "Attended"}
    members = {
        (1001, 1): "Attended",  # written Registered: later step, applied (step rule)
        (1001, 2): "Registered",  # written Attended: earlier step, not applied
        (1002, 3): "Registered",  # deleted but still there: not applied
    }

    def rows(path, params, _n):
        program = int(path.split("/")[4])
        assert params["filterType"] == "leadId"
        assert "statusName" in params["fields"].split(",")
        ids = [int(v) for v in params["filterValues"].split(",")]
        return [
            {"leadId": i, "statusName": members[program, i]} for i in ids if (program, i) in members
        ]

    clock = FakeClock()
    verifier = Verifier(
        FakeClient(rows),
        MemberReadBack(lambda _pid: statuses),
        timeout=3,
        interval=1,
        clock=clock,
        sleep=clock.sleep,
    )
    items = [
        Written({"leadId": 1}, group=(1001, "Registered")),
        Written({"leadId": 2}, group=(1001, "Attended")),
        Written({"leadId": 9}, group=(1001, "Registered")),  # not a member: not applied
        Written({"leadId": 3}, group=(1002, None), deleted=True),
        Written({"leadId": 4}, group=(1002, None), deleted=True),  # gone: applied
    ]
    applied, missing = verifier.verify(items)
    assert sorted(i.obj["leadId"] for i in applied) == [1, 4]
    assert sorted(i.obj["leadId"] for i in missing) == [2, 3, 9]


def _no_comma_filter(calls, value):
    for _path, params, body in calls:
        if body is None:
            assert value not in params["filterValues"]


def test_company_key_with_a_comma_is_read_by_another_searchable_field():
    """filterValues splits on commas: 'Acme, Inc' is read by its company name instead."""
    stored = [
        {"externalCompanyId": "Acme, Inc", "company": "Acme", "industry": "Tools"},
        {"externalCompanyId": "c2", "company": "Other", "industry": "Food"},
    ]

    def rows(_path, params, _n):
        values = params["filterValues"].split(",")
        return [r for r in stored if str(r[params["filterType"]]) in values]

    client, clock = FakeClient(rows), FakeClock()
    verifier = Verifier(
        client,
        ReadBack("/rest/v1/companies.json", ("externalCompanyId",), fallbacks=("id", "company")),
        timeout=5,
        interval=1,
        clock=clock,
        sleep=clock.sleep,
    )
    applied, missing = verifier.verify([Written(dict(r)) for r in stored])
    assert (len(applied), missing) == (2, [])
    assert {c[1]["filterType"] for c in client.calls} == {"externalCompanyId", "company"}
    _no_comma_filter(client.calls, "Acme, Inc")


def test_custom_object_key_with_a_comma_goes_in_the_json_body():
    def rows(path, params, _n):
        if "input" in (params or {}):
            return [{"vin": i["vin"], "make": "Ford"} for i in params["input"]]
        return [{"vin": v, "make": "Ford"} for v in params["filterValues"].split(",")]

    client, clock = FakeClient(rows), FakeClock()
    verifier = Verifier(
        client,
        ReadBack("/rest/v1/customobjects/car_c.json", ("vin",), json_input=True),
        timeout=5,
        interval=1,
        clock=clock,
        sleep=clock.sleep,
    )
    items = [Written({"vin": "V1", "make": "Ford"}), Written({"vin": "V,2", "make": "Ford"})]
    applied, missing = verifier.verify(items)
    assert (len(applied), missing) == (2, [])
    gets = [c for c in client.calls if c[2] is None]
    posts = [c for c in client.calls if c[2] is not None]
    assert [c[1]["filterValues"] for c in gets] == ["V1"]
    assert [c[2]["input"] for c in posts] == [[{"vin": "V,2"}]]
    assert posts[0][1] == {"_method": "GET"}


def test_key_with_a_comma_and_no_other_way_stays_accepted_with_a_warning(tmp_path):
    class Ctx:
        stream = "companies"
        route = type("R", (), {"method": "ingest_companies"})()
        summary = StreamSummary("companies", "ingest_companies")
        rejects = RejectsFile(str(tmp_path / "rejects.jsonl"))
        logger = logging.getLogger("test")

        def reject(self, **kw):
            raise AssertionError(kw)

    def rows(_path, params, _n):
        assert "," not in params["filterValues"]
        return [{"externalCompanyId": "c2"}]

    clock = FakeClock()
    verifier = Verifier(
        FakeClient(rows),
        ReadBack("/rest/v1/companies.json", ("externalCompanyId",), fallbacks=("id", "company")),
        timeout=5,
        interval=1,
        clock=clock,
        sleep=clock.sleep,
    )
    entries = [
        _Entry(orjson.dumps({"externalCompanyId": "A,B"}), None, 1, {"x": 1}),
        _Entry(orjson.dumps({"externalCompanyId": "c2"}), None, 2, {"x": 2}),
    ]
    ctx = Ctx()
    settle(ctx, verifier, entries, "req-1", deleted=False)
    ctx.rejects.close()
    assert (ctx.summary.accepted, ctx.summary.applied, ctx.summary.warnings) == (1, 1, 1)
    (entry,) = [
        orjson.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()
    ]
    assert entry["reason"] == "not_verified"
    assert entry["line"] == 1


def test_state_waits_for_the_read_back_inside_the_request_unit(tmp_path):
    """The verifier runs in the ingestion request's executor unit: no STATE until it settles."""
    release, reading = threading.Event(), threading.Event()

    class Client:
        def ingest(self, _path, _body, *, correlation_id):
            return f"req-{correlation_id[:4]}"

        def get(self, _path, params):
            reading.set()
            assert release.wait(10)
            return {"result": [{"externalCompanyId": "c1", "company": "Acme"}]}

    class Validator:
        def to_object(self, record):
            return dict(record)

    states: list = []
    ctx = WriteContext(
        stream="companies",
        route=parse_route("companies", "companies", {"method": "ingest_companies"}),
        client=Client(),
        rejects=RejectsFile(tmp_path / "rejects.jsonl"),
        checkpoints=Checkpoints(states.append),
        summary=StreamSummary("companies", "ingest_companies"),
        options=TargetOptions(poll_interval_seconds=0.001, verify_timeout_seconds=5),
        fatal=FailureLatch(),
        logger=logging.getLogger("test-verify"),
    )
    writer = IngestionWriter(ctx, Validator(), None, REGISTRY["ingest_companies"])
    writer.add({"externalCompanyId": "c1", "company": "Acme"}, 0, 1)  # record number 0
    ctx.checkpoints.add_state({"s": 1}, 1)
    writer.flush()
    assert reading.wait(10)
    assert states == []  # accepted (202) but not yet read back: STATE waits
    release.set()
    writer.close()
    assert states == [{"s": 1}]
    assert (ctx.summary.applied, ctx.summary.accepted) == (1, 0)
