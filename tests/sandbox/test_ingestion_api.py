"""Data Ingestion API in the sandbox: each endpoint's happy path and documented errors."""

from __future__ import annotations

import time

import orjson
import pytest
from sandbox_helpers import FAST, leads_by_email
from test_bulk_support import Api

SUB = "/subscriptions/123-ABC-456"


@pytest.fixture(scope="module")
def sb(fast_sandbox):
    return fast_sandbox


class Ingest:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.headers = {"X-Mkto-User-Token": api.token}

    def post(self, path: str, body, headers=None, **kw):
        return self.api.http.post(
            self.api.base + SUB + path,
            data=body if isinstance(body, (bytes, str)) else orjson.dumps(body),
            headers={"Content-Type": "application/json", **self.headers, **(headers or {})},
            timeout=30,
            **kw,
        )

    def accepted(self, path: str, body, headers=None) -> str:
        reply = self.post(path, body, headers=headers)
        assert reply.status_code == 202, reply.text
        assert reply.content == b""
        return reply.headers["X-Request-Id"]

    def applied(self, path: str, body) -> str:
        """Accepted, then waited for: the sandbox applies requests after the 202."""
        request_id = self.accepted(path, body)
        admin = self.api.sb.admin
        admin.wait_ingestion()
        assert admin.ingestion(request_id)["failures"] == []
        return request_id

    def refused(self, path: str, body, status: int = 400, **kw) -> tuple[str, str]:
        reply = self.post(path, body, **kw)
        assert reply.status_code == status, reply.text
        error = reply.json()
        assert set(error) == {"error_code", "message"}
        return error["error_code"], error["message"]


@pytest.fixture
def ingest(sb):
    sb.admin.clear_faults()
    return Ingest(Api(sb))


# ---------------------------------------------------------------------------- persons


def test_persons_upsert(ingest, sb):
    existing = sb.admin.dump("leads")[0]
    body = {
        "priority": "high",
        "persons": [
            {"email": "brooklyn.parker@karnv.com", "firstName": "Brooklyn", "company": "Karnv"},
            {"email": existing["email"], "lastName": "Ingested"},
        ],
    }
    first = ingest.applied("/persons", body)
    second = ingest.applied("/persons", body)
    assert first != second
    leads = leads_by_email(sb)
    assert leads["brooklyn.parker@karnv.com"]["company"] == "Karnv"
    assert leads[existing["email"].lower()]["lastName"] == "Ingested"
    assert leads[existing["email"].lower()]["id"] == existing["id"]
    assert sum(1 for e in leads if e == "brooklyn.parker@karnv.com") == 1


def test_persons_two_dedupe_fields_are_anded(ingest, sb):
    body = {
        "dedupeFields": {"field1": "email", "field2": "firstName"},
        "persons": [{"email": "and.match@example.com", "firstName": "Ann", "city": "Oslo"}],
    }
    ingest.applied("/persons", body)
    body["persons"][0]["city"] = "Bergen"
    ingest.applied("/persons", body)
    matches = [x for x in sb.admin.dump("leads") if x["email"] == "and.match@example.com"]
    assert [m["city"] for m in matches] == ["Bergen"]


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        (
            {"persons": [{"email": "ok@example.com"}, {"firstName": "NoEmail"}]},
            "4000802",
            "index 1",
        ),
        ({"persons": [{"email": "not-an-email"}]}, "4000802", "index 0"),
        ({"persons": [{"email": "a@example.com", "shoeSize": 44}]}, "4000802", "shoeSize"),
        (
            {"persons": [{"email": "a@example.com", "numberOfEmployees": "many"}]},
            "4000802",
            "index 0",
        ),
        ({"priority": "urgent", "persons": [{"email": "a@example.com"}]}, "4000801", "priority"),
        (
            {"partitionName": "", "persons": [{"email": "a@example.com"}]},
            "4000801",
            "partitionName",
        ),
        (
            {"dedupeFields": {"field1": "unsubscribed"}, "persons": [{"email": "a@x.co"}]},
            "4000801",
            "dedupe",
        ),
        ({"persons": []}, "4000801", "persons"),
        ({"people": [{"email": "a@example.com"}]}, "4000801", "people"),
    ],
)
def test_persons_invalid(ingest, body, code, fragment):
    got_code, message = ingest.refused("/persons", body)
    assert got_code == code
    assert fragment in message


def test_persons_limits_1000_objects_and_1_mb(ingest):
    many = {"persons": [{"email": f"p{i}@example.com"} for i in range(1001)]}
    assert ingest.refused("/persons", many)[0] == "4000801"
    big = {"persons": [{"email": "big@example.com", "leadNotes": "x" * (1024 * 1024)}]}
    assert ingest.refused("/persons", big, status=413)[0] == "4130801"


def test_token_only_in_header(ingest, sb):
    body = {"persons": [{"email": "token@example.com"}]}
    token = ingest.api.token
    reply = ingest.api.http.post(
        f"{sb.base_url}{SUB}/persons",
        params={"access_token": token},
        json=body,
        timeout=30,
    )
    assert reply.status_code == 403  # no X-Mkto-User-Token: "Oauth token is missing"
    assert reply.json()["error_code"] == "403010"
    reply = ingest.api.http.post(
        f"{sb.base_url}{SUB}/persons",
        headers={"Authorization": f"Bearer {token}"},
        json=body,
        timeout=30,
    )
    assert reply.status_code == 403
    assert reply.json()["error_code"] == "403010"
    code, _ = ingest.refused("/persons", body, status=401, headers={"X-Mkto-User-Token": "nope"})
    assert code == "401013"


def test_json_only_and_malformed(ingest):
    body = '{"persons": [{"email": "a@example.com"}]}'
    code, message = ingest.refused("/persons", body, headers={"Content-Type": "text/plain"})
    assert (code, "application/json" in message) == ("4000801", True)
    assert ingest.refused("/persons", "{nope")[0] == "4000801"
    assert ingest.refused("/persons", "[1, 2]")[0] == "4000801"


def test_unknown_subscription_and_object(ingest, sb):
    reply = ingest.api.http.post(
        f"{sb.base_url}/subscriptions/999-ZZZ-999/persons",
        headers={**ingest.headers, "Content-Type": "application/json"},
        data=b'{"persons": [{"email": "a@example.com"}]}',
        timeout=30,
    )
    assert reply.status_code == 404
    assert reply.json()["error_code"] == "404040"
    code, _ = ingest.refused("/customobjects/spaceships", {"customObjects": [{"x": 1}]}, status=404)
    assert code == "404040"


# ---------------------------------------------------------------------------- companies


def test_companies(ingest, sb):
    body = {
        "action": "createOrUpdate",
        "dedupeBy": "dedupeFields",
        "input": [
            {"externalCompanyId": "ext-001", "company": "Acme", "numberOfEmployees": 5000},
            {"externalCompanyId": "ext-002", "company": "Globex", "industry": "Manufacturing"},
        ],
    }
    ingest.applied("/companies", body)
    companies = {c["externalCompanyId"]: c for c in sb.admin.dump("companies")}
    assert companies["ext-001"]["numberOfEmployees"] == 5000
    update = {
        "action": "updateOnly",
        "dedupeBy": "IDFIELD",
        "companies": [{"id": companies["ext-001"]["id"], "company": "Acme (Renamed)"}],
    }
    ingest.applied("/companies", update)
    create_only = {
        "action": "createOnly",
        "input": [{"externalCompanyId": "ext-002", "company": "X"}],
    }
    request_id = ingest.accepted("/companies", create_only)
    sb.admin.wait_ingestion()
    [failure] = sb.admin.ingestion(request_id)["failures"]
    assert (failure["record"], failure["kind"]) == ("input[0]", "companies")
    companies = {c["externalCompanyId"]: c for c in sb.admin.dump("companies")}
    assert companies["ext-001"]["company"] == "Acme (Renamed)"
    assert companies["ext-002"]["company"] == "Globex"  # createOnly leaves existing ones alone


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        ({"action": "createorupdate", "input": [{"externalCompanyId": "e"}]}, "4000801", "action"),
        ({"dedupeBy": "name", "input": [{"externalCompanyId": "e"}]}, "4000801", "dedupeBy"),
        ({"dedupeBy": "idField", "input": [{"id": 1}]}, "4000801", "updateOnly"),
        ({"input": [{"externalCompanyId": "e"}, {"company": "no key"}]}, "4000802", "index 1"),
        ({"input": [{"externalCompanyId": "e", "id": 4}]}, "4000802", "'id'"),
        (
            {
                "action": "updateOnly",
                "dedupeBy": "idField",
                "input": [{"id": 1, "externalCompanyId": "e"}],
            },
            "4000802",
            "externalCompanyId",
        ),
        ({"input": [{"externalCompanyId": "e"}], "companies": []}, "4000801", "only one"),
    ],
)
def test_companies_invalid(ingest, body, code, fragment):
    got, message = ingest.refused("/companies", body)
    assert got == code
    assert fragment in message


# ---------------------------------------------------------------------------- custom objects


def test_custom_objects(ingest, sb):
    people = [{"email": "brooklyn.parker@karnv.com"}, {"email": "johnny.neal@yvu30.com"}]
    ingest.applied("/persons", {"persons": people})
    body = {
        "dedupeBy": "dedupeFields",
        "priority": "high",
        "customObjects": [
            {"email": "brooklyn.parker@karnv.com", "vin": "V-1", "make": "BMW", "year": 2003},
            {"email": "johnny.neal@yvu30.com", "vin": "V-2", "make": "BMW", "year": 1989},
        ],
    }
    ingest.applied("/customobjects/purchases", body)
    body["customObjects"] = [{"vin": "V-1", "model": "3-Series 330i"}]
    ingest.applied("/customobjects/purchases", body)
    records = {r["vin"]: r for r in sb.admin.dump("custom_objects")}
    assert records["V-1"]["model"] == "3-Series 330i"
    assert records["V-1"]["year"] == 2003
    guid = records["V-2"]["marketoGUID"]
    by_id = {"dedupeBy": "marketoGUID", "customObjects": [{"marketoGUID": guid, "year": 1990}]}
    ingest.applied("/customobjects/purchases", by_id)
    assert {r["vin"]: r for r in sb.admin.dump("custom_objects")}["V-2"]["year"] == 1990


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        ({"customObjects": [{"vin": "A"}, {"make": "no vin"}]}, "4000802", "index 1"),
        ({"dedupeBy": "marketoGUID", "customObjects": [{"vin": "A"}]}, "4000802", "marketoGUID"),
        ({"dedupeBy": "idField", "customObjects": [{"vin": "A"}]}, "4000801", "dedupeBy"),
        ({"input": [{"vin": "A"}]}, "4000801", "input"),
        ({"dedupeBy": "guid", "customObjects": [{"vin": "A"}]}, "4000801", "dedupeBy"),
        ({"customObjects": [{"vin": "A", "year": "old"}]}, "4000802", "year"),
    ],
)
def test_custom_objects_invalid(ingest, body, code, fragment):
    got, message = ingest.refused("/customobjects/purchases", body)
    assert got == code
    assert fragment in message


# ---------------------------------------------------------------------------- program members


def test_program_members_sync_and_delete(ingest, sb):
    leads = [x["id"] for x in sb.admin.dump("leads")]
    in_1002 = {m["leadId"] for m in sb.admin.dump("program_members", 1002)}
    outsiders = [lead for lead in leads if lead not in in_1002][:3]
    body = {
        "programs": [
            {
                "programId": 1002,
                "status": "Engaged",
                "members": [{"leadId": i} for i in outsiders[:2]],
            },
            {"programId": 1002, "statusName": "influenced", "input": [{"leadId": outsiders[2]}]},
        ]
    }
    ingest.applied("/programmembers", body)
    members = {m["leadId"]: m for m in sb.admin.dump("program_members", 1002)}
    assert [members[i]["statusName"] for i in outsiders] == ["Engaged", "Engaged", "Influenced"]
    delete = {"programs": [{"programId": 1002, "members": [{"leadId": outsiders[0]}]}]}
    ingest.applied("/programmembers/delete", delete)
    members = {m["leadId"] for m in sb.admin.dump("program_members", 1002)}
    assert outsiders[0] not in members
    assert outsiders[1] in members


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        (
            {
                "programs": [
                    {"programId": 1002, "status": "Not in Program", "members": [{"leadId": 1}]}
                ]
            },
            "4000801",
            "Not in Program",
        ),
        (
            {"programs": [{"programId": 1002, "status": "Bogus", "members": [{"leadId": 1}]}]},
            "4000801",
            "Bogus",
        ),
        ({"programs": [{"programId": 1002, "members": [{"leadId": 1}]}]}, "4000801", "status"),
        (
            {"programs": [{"programId": 999999, "status": "Member", "members": [{"leadId": 1}]}]},
            "4000801",
            "999999",
        ),
        (
            {
                "programs": [
                    {
                        "programId": 1002,
                        "status": "Member",
                        "members": [{"leadId": 1}, {"leadId": "x"}],
                    }
                ]
            },
            "4000802",
            "programs[0].members[1]",
        ),
        (
            {
                "programs": [
                    {
                        "programId": 1002,
                        "status": "Member",
                        "members": [{"leadId": 1}, {"leadId": 1}],
                    }
                ]
            },
            "4000802",
            "twice",
        ),
    ],
)
def test_program_members_invalid(ingest, body, code, fragment):
    got, message = ingest.refused("/programmembers", body)
    assert got == code
    assert fragment in message


def test_program_members_1000_references_across_programs(ingest):
    half = [{"leadId": i} for i in range(1, 502)]
    body = {
        "programs": [
            {"programId": 1001, "status": "Invited", "members": half},
            {"programId": 1002, "status": "Member", "members": half},
        ]
    }
    code, message = ingest.refused("/programmembers", body)
    assert code == "4000801"
    assert "1002 lead references" in message
    delete = {
        "programs": [{"programId": 1001, "members": half}, {"programId": 1002, "members": half}]
    }
    assert ingest.refused("/programmembers/delete", delete)[0] == "4000801"


# ---------------------------------------------------------------------------- limits, delay


def test_rate_and_daily_object_limits(sandbox_factory):
    sb = sandbox_factory(
        seed="demo",
        time_scale=FAST,
        options={"ingestion_requests_per_second": 2, "ingestion_daily_object_limit": 5},
    )
    ingest = Ingest(Api(sb))
    body = {"persons": [{"email": f"rate{i}@example.com"} for i in range(2)]}
    ingest.accepted("/persons", body)
    ingest.accepted("/persons", body)
    assert ingest.refused("/persons", body, status=429)[0] == "429001"
    time.sleep(1.05)
    code, message = ingest.refused(
        "/persons", {"persons": [{"email": f"q{i}@x.co"} for i in range(2)]}, status=429
    )
    assert code == "4290801"
    assert "quota" in message
    ingest.accepted("/persons", {"persons": [{"email": "last.one@example.com"}]})
    sb.admin.advance(86400)
    time.sleep(1.05)
    ingest.accepted("/persons", body)


def test_apply_delay_and_restart(sandbox_factory):
    sb = sandbox_factory(
        seed="demo", time_scale=60.0, options={"ingestion_apply_delay_seconds": 120}
    )
    ingest = Ingest(Api(sb))
    ingest.accepted("/persons", {"persons": [{"email": "later@example.com"}]})
    assert "later@example.com" not in leads_by_email(sb)  # accepted, not applied yet
    sb.restart()
    deadline = time.monotonic() + 15
    while "later@example.com" not in leads_by_email(sb):
        assert time.monotonic() < deadline, "the parked request was never applied"
        time.sleep(0.1)


# ---------------------------------------------------------------------------- round 2: the page


def test_every_response_carries_x_request_id(ingest, sb):
    """Responses section: "Every response returns a unique request ID", errors included."""
    person = {"persons": [{"email": "rid@example.com"}]}
    replies = [
        ingest.post("/persons", person),  # 202
        ingest.post("/persons", {"persons": []}),  # 400
        ingest.post("/persons", person, headers={"X-Mkto-User-Token": "nope"}),  # 401
        ingest.api.http.post(f"{sb.base_url}{SUB}/persons", json=person, timeout=30),  # 403
        ingest.post("/nothing-here", person),  # 404
        ingest.post("/persons", {"persons": [{"email": "a@x.co", "leadNotes": "x" * 1100000}]}),
    ]
    sb.admin.inject_fault(f"{SUB}/persons", "http_503")
    replies.append(ingest.post("/persons", person))
    assert [r.status_code for r in replies] == [202, 400, 401, 403, 404, 413, 503]
    ids = [r.headers.get("X-Request-Id") for r in replies]
    assert all(ids), ids
    assert len(set(ids)) == len(ids)
    assert replies[4].json()["error_code"] == "404040"


def test_missing_token_403010_invalid_token_401013(ingest, sb):
    body = {"persons": [{"email": "tok@example.com"}]}
    reply = ingest.api.http.post(f"{sb.base_url}{SUB}/persons", json=body, timeout=30)
    assert (reply.status_code, reply.json()["error_code"]) == (403, "403010")
    code, message = ingest.refused("/persons", body, 401, headers={"X-Mkto-User-Token": "x:ab"})
    assert (code, message) == ("401013", "Oauth token is invalid")


@pytest.mark.parametrize(("header", "limit"), [("X-Correlation-Id", 255), ("X-Request-Source", 50)])
def test_trace_headers_have_the_pages_maximum_lengths(ingest, header, limit):
    body = {"persons": [{"email": "trace@example.com"}]}
    ingest.accepted("/persons", body, headers={header: "c" * limit})
    code, message = ingest.refused("/persons", body, headers={header: "c" * (limit + 1)})
    assert code == "4000801"
    assert header in message


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/companies", {"priority": "high", "input": [{"externalCompanyId": "p-1"}]}),
        (
            "/programmembers",
            {
                "priority": "high",
                "programs": [{"programId": 1001, "status": "Invited", "members": [{"leadId": 1}]}],
            },
        ),
        ("/programmembers/delete", {"priority": "normal", "programs": []}),
        ("/persons", {"action": "createOnly", "persons": [{"email": "a@example.com"}]}),
    ],
)
def test_attributes_the_endpoint_table_does_not_list_are_4000801(ingest, path, body):
    code, message = ingest.refused(path, body)
    assert code == "4000801"
    assert "Unknown attribute" in message


def test_company_field_names_are_case_insensitive(ingest, sb):
    body = {"input": [{"EXTERNALCOMPANYID": "ci-1", "Company": "Case Co", "numberofemployees": 7}]}
    ingest.applied("/companies", body)
    company = {c["externalCompanyId"]: c for c in sb.admin.dump("companies")}["ci-1"]
    assert (company["company"], company["numberOfEmployees"]) == ("Case Co", 7)
    twice = {"input": [{"externalCompanyId": "ci-2", "company": "A", "COMPANY": "B"}]}
    assert ingest.refused("/companies", twice)[0] == "4000802"


def test_program_member_sync_takes_custom_fields_any_case(ingest, sb):
    in_1001 = {m["leadId"] for m in sb.admin.dump("program_members", 1001)}
    lead = next(x["id"] for x in sb.admin.dump("leads") if x["id"] not in in_1001)
    member = {"leadId": lead, "MYCUSTOMFIELD": "from ingestion", "sessionsattended": 3}
    body = {"programs": [{"programId": 1001, "status": "Registered", "members": [member]}]}
    ingest.applied("/programmembers", body)
    row = {m["leadId"]: m for m in sb.admin.dump("program_members", 1001)}[lead]
    assert (row["myCustomField"], row["sessionsAttended"]) == ("from ingestion", 3)
    standard = {"leadId": lead, "reachedSuccess": True}
    bad = {"programs": [{"programId": 1001, "status": "Registered", "members": [standard]}]}
    code, message = ingest.refused("/programmembers", bad)
    assert (code, "reachedSuccess" in message) == ("4000802", True)
    wrong_type = {"leadId": lead, "sessionsAttended": "many"}
    bad["programs"][0]["members"] = [wrong_type]
    assert ingest.refused("/programmembers", bad)[0] == "4000802"
    delete = {
        "programs": [{"programId": 1001, "members": [{"leadId": lead, "myCustomField": "x"}]}]
    }
    assert ingest.refused("/programmembers/delete", delete)[0] == "4000802"


def test_persons_partition_must_exist(ingest, sb):
    body = {"partitionName": "EMEA", "persons": [{"email": "emea@example.com"}]}
    code, message = ingest.refused("/persons", body)
    assert (code, "EMEA" in message) == ("4000801", True)
    ingest.applied("/persons", {"partitionName": "Default", "persons": body["persons"]})
    sb.admin.set_options(lead_partitions=["Default", "EMEA"])
    try:
        ingest.applied("/persons", body)
    finally:
        sb.admin.set_options(lead_partitions=None)


def test_applied_after_the_202_and_failures_recorded_with_the_request_id(sandbox_factory):
    """Asynchronous: nothing is applied at the 202; records that fail, fail after it."""
    sb = sandbox_factory(
        seed="demo", time_scale=60.0, options={"ingestion_apply_delay_seconds": 60}
    )
    ingest = Ingest(Api(sb))
    trace = {"X-Correlation-Id": "corr-1", "X-Request-Source": "pytest"}
    rid = ingest.accepted("/persons", {"persons": [{"email": "async@example.com"}]}, trace)
    assert "async@example.com" not in leads_by_email(sb)
    assert sb.admin.ingestion()["pending"] == 1
    assert sb.admin.wait_ingestion() == []
    assert "async@example.com" in leads_by_email(sb)
    unknown_lead = {
        "programs": [{"programId": 1001, "status": "Invited", "members": [{"leadId": 9999999}]}]
    }
    rid = ingest.accepted("/programmembers", unknown_lead, trace)
    missing = {"action": "updateOnly", "input": [{"externalCompanyId": "nobody"}]}
    rid2 = ingest.accepted("/companies", missing)
    sb.admin.wait_ingestion()
    [failure] = sb.admin.ingestion(rid)["failures"]
    assert failure["record"] == "programs[0].members[0]"
    assert "Lead not found" in failure["reason"]
    assert (failure["correlationId"], failure["requestSource"]) == ("corr-1", "pytest")
    [failure] = sb.admin.ingestion(rid2)["failures"]
    assert (failure["record"], failure["kind"]) == ("input[0]", "companies")
    assert sb.admin.dump("ingestion_failures")[-1]["requestId"] == rid2


def test_custom_object_waits_65_minutes_for_its_person(sandbox_factory):
    """The page: a missing linked person is retried for 65 minutes, then the record fails."""
    sb = sandbox_factory(seed="demo", time_scale=60.0, options={"ingestion_apply_delay_seconds": 1})
    ingest = Ingest(Api(sb))
    body = {"customObjects": [{"email": "late@example.com", "vin": "LATE-1"}]}
    late = ingest.accepted("/customobjects/purchases", body)
    never = ingest.accepted(
        "/customobjects/purchases",
        {"customObjects": [{"email": "never@example.com", "vin": "N-1"}]},
    )
    time.sleep(0.5)  # 30 sandbox seconds: tried once, both wait for the next try (5 minutes)
    assert sb.admin.ingestion()["pending"] == 2
    assert sb.admin.dump("custom_objects") == []
    ingest.accepted("/persons", {"persons": [{"email": "late@example.com"}]})
    sb.admin.advance(20 * 60)  # the next try finds the person of the first
    deadline = time.monotonic() + 15
    while not sb.admin.dump("custom_objects"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert sb.admin.ingestion()["pending"] == 1
    sb.admin.advance(50 * 60)  # past the 65-minute window
    failures = sb.admin.wait_ingestion()
    assert [r["vin"] for r in sb.admin.dump("custom_objects")] == ["LATE-1"]
    assert [f["requestId"] for f in failures] == [never]
    assert "65-minute" in failures[0]["reason"]
    assert sb.admin.ingestion(late)["failures"] == []
