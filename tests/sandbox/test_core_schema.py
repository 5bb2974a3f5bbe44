"""Describe, field schema and program endpoints."""

from __future__ import annotations

import pytest
from marketo_sandbox.server import SandboxServer
from sandbox_helpers import error

PM_DESCRIBE = "/rest/v1/programs/members/describe.json"
PM_FIELDS = "/rest/v1/programs/members/schema/fields.json"
STANDARD_PM = {
    "acquiredBy",
    "attendanceLikelihood",
    "createdAt",
    "isExhausted",
    "leadId",
    "membershipDate",
    "nurtureCadence",
    "program",
    "programId",
    "reachedSuccess",
    "reachedSuccessDate",
    "registrationLikelihood",
    "statusName",
    "statusReason",
    "trackName",
    "updatedAt",
    "waitlistPriority",
    "registrationCode",
    "webinarUrl",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    with SandboxServer(tmp_path_factory.mktemp("schema") / "s.db", seed="demo") as sb:
        yield sb


@pytest.fixture
def sandbox(server: SandboxServer) -> SandboxServer:
    """The module's sandbox (fields cannot be deleted: tests use distinct names)."""
    return server


def result(reply) -> list:
    body = reply.json()
    assert body["success"] is True, body
    assert "#" in body["requestId"]
    return body.get("result", [])


def test_program_member_describe(rest) -> None:
    [desc] = result(rest.get(PM_DESCRIBE))
    assert desc["name"] == "API Program Membership"
    assert desc["dedupeFields"] == ["leadId", "programId"]
    fields = {f["name"]: f for f in desc["fields"]}
    assert set(fields) >= STANDARD_PM
    assert fields["nurtureCadence"]["length"] == 4
    assert fields["registrationCode"] == {
        "name": "registrationCode",
        "displayName": "Registration Code",
        "dataType": "string",
        "length": 100,
        "updateable": True,
        "crmManaged": False,
    }
    types = {fields[n]["dataType"] for n in fields if n not in STANDARD_PM}
    assert {"string", "integer", "boolean", "datetime"} <= types
    assert ["leadId"] in desc["searchableFields"]
    assert ["statusName"] in desc["searchableFields"]
    assert ["myCustomField"] in desc["searchableFields"]


def test_lead_describe_and_describe2(rest) -> None:
    v1 = result(rest.get("/rest/v1/leads/describe.json"))
    by_name = {f["rest"]["name"]: f for f in v1}
    for name in (
        "email",
        "firstName",
        "lastName",
        "company",
        "title",
        "phone",
        "leadScore",
        "createdAt",
        "updatedAt",
        "id",
    ):
        assert name in by_name
    assert by_name["leadScore"]["dataType"] == "score"
    assert by_name["id"]["rest"]["readOnly"] is True
    [v2] = result(rest.get("/rest/v1/leads/describe2.json"))
    assert v2["name"] == "API Lead"
    types = {f["dataType"] for f in v2["fields"]}
    assert {
        "email",
        "string",
        "phone",
        "score",
        "currency",
        "boolean",
        "date",
        "datetime",
        "integer",
        "float",
        "text",
        "url",
    } <= types
    assert ["email"] in v2["searchableFields"]


def test_browse_fields_pages_with_next_page_token(rest) -> None:
    seen, token = [], None
    while True:
        params = {"batchSize": 5, **({"nextPageToken": token} if token else {})}
        body = rest.get(PM_FIELDS, params=params).json()
        assert len(body["result"]) <= 5
        seen += body["result"]
        if not body["moreResult"]:
            break
        token = body["nextPageToken"]
    names = [f["name"] for f in seen]
    assert len(names) == len(set(names))
    assert set(names) >= STANDARD_PM
    assert {"isHidden", "isCustom", "isApiCreated", "isSensitive"} <= set(seen[0])
    leads = result(rest.get("/rest/v1/leads/schema/fields.json"))
    assert "email" in {f["name"] for f in leads}


def test_browse_bad_parameters(rest) -> None:
    assert error(rest.get(PM_FIELDS, params={"batchSize": "x"}))[0] == "1001"
    assert error(rest.get(PM_FIELDS, params={"batchSize": 301}))[0] == "1003"
    assert error(rest.get(PM_FIELDS, params={"nextPageToken": "garbage"}))[0] == "1003"


def test_get_field_by_name(rest) -> None:
    [field] = result(rest.get("/rest/v1/programs/members/schema/fields/statusName.json"))
    assert field["displayName"] == "Status"
    assert field["isCustom"] is False
    assert field["length"] == 255
    code, _ = error(rest.get("/rest/v1/programs/members/schema/fields/nope.json"))
    assert code == "1006"


def test_programs_browse_and_by_id(rest) -> None:
    programs = result(rest.get("/rest/asset/v1/programs.json", params={"maxReturn": 200}))
    assert [p["id"] for p in programs] == [1001, 1002, 1003, 1004]
    assert {p["channel"] for p in programs} == {"Webinar", "Nurture", "Event", "Email Send"}
    second = result(rest.get("/rest/asset/v1/programs.json", params={"offset": 1, "maxReturn": 2}))
    assert [p["id"] for p in second] == [1002, 1003]
    [webinar] = result(rest.get("/rest/asset/v1/program/1001.json"))
    statuses = [s["name"] for s in webinar["progressionStatuses"]]
    assert "Attended" in statuses
    assert "Registered" in statuses
    none = rest.get("/rest/asset/v1/program/999.json").json()
    assert none["success"] is True
    assert "result" not in none
    assert none["warnings"]
    empty = rest.get("/rest/asset/v1/programs.json", params={"offset": 50}).json()
    assert empty["warnings"]
    assert error(rest.get("/rest/asset/v1/programs.json", params={"maxReturn": 201}))[0] == "1003"
    [by_name] = result(
        rest.get("/rest/asset/v1/program/byName.json", params={"name": "Customer Nurture"})
    )
    assert by_name["id"] == 1002


def test_channels(rest) -> None:
    channels = result(rest.get("/rest/asset/v1/channels.json"))
    assert {c["name"] for c in channels} >= {"Webinar", "Nurture"}
    [nurture] = result(rest.get("/rest/asset/v1/channel/byName.json", params={"name": "Nurture"}))
    steps = [s["step"] for s in nurture["progressionStatuses"]]
    assert steps == sorted(steps)


# --- field creation and update (each test on a fresh sandbox: fields cannot be deleted) ---------


def test_create_field_appears_in_describe_and_member_rows(sandbox, sandbox_rest) -> None:
    rest = sandbox_rest(sandbox)
    spec = {
        "displayName": "Lunch Preference",
        "name": "lunchPreference",
        "dataType": "string",
        "description": "food",
    }
    assert result(rest.post(PM_FIELDS, json={"input": [spec]})) == [
        {"name": "lunchPreference", "status": "created"}
    ]
    [desc] = result(rest.get(PM_DESCRIBE))
    created = next(f for f in desc["fields"] if f["name"] == "lunchPreference")
    assert created["updateable"] is True
    assert ["lunchPreference"] in desc["searchableFields"]
    [field] = result(rest.get("/rest/v1/programs/members/schema/fields/lunchPreference.json"))
    assert field["isCustom"] is True
    assert field["isApiCreated"] is True
    # usable at once: write it, query on it, see it in dumps
    lead = sandbox.admin.dump("program_members", program_id=1001)[0]["leadId"]
    upd = result(
        rest.post(
            "/rest/v1/programs/1001/members.json",
            json={"input": [{"leadId": lead, "lunchPreference": "vegan"}]},
        )
    )
    assert upd == [{"seq": 0, "status": "updated", "leadId": lead}]
    members = result(
        rest.get(
            "/rest/v1/programs/1001/members.json",
            params={
                "filterType": "lunchPreference",
                "filterValues": "vegan",
                "fields": "leadId,lunchPreference",
            },
        )
    )
    assert members == [{"seq": 0, "leadId": lead, "lunchPreference": "vegan"}]
    dump = sandbox.admin.dump("program_members", program_id=1001)
    assert "lunchPreference" in dump[0]


def test_create_field_request_errors(sandbox, sandbox_rest) -> None:
    rest = sandbox_rest(sandbox)
    assert (
        error(rest.post(PM_FIELDS, data="{bad json", headers={"Content-Type": "application/json"}))[
            0
        ]
        == "609"
    )
    assert (
        error(rest.post(PM_FIELDS, data="input=x", headers={"Content-Type": "text/plain"}))[0]
        == "612"
    )
    assert error(rest.post(PM_FIELDS, json={}))[0] == "1002"
    assert error(rest.post(PM_FIELDS, json={"input": "x"}))[0] == "1001"
    assert error(rest.post(PM_FIELDS, json={"input": [{}] * 301}))[0] == "1003"


def test_update_field(sandbox, sandbox_rest) -> None:
    rest = sandbox_rest(sandbox)
    path = "/rest/v1/programs/members/schema/fields/myCustomField.json"
    out = result(rest.post(path, json={"input": [{"displayName": "Lunch Pref", "isHidden": True}]}))
    assert out == [{"name": "myCustomField", "status": "updated"}]
    [field] = result(rest.get(path))
    assert field["displayName"] == "Lunch Pref"
    assert field["isHidden"] is True
    [desc] = result(rest.get(PM_DESCRIBE))
    assert any(f["displayName"] == "Lunch Pref" for f in desc["fields"])
    for change in ({"dataType": "integer"}, {"name": "x"}, {"displayName": "Status!"}):
        [out] = result(rest.post(path, json={"input": [change]}))
        assert out["status"] == "skipped"
    [std] = result(
        rest.post(
            "/rest/v1/programs/members/schema/fields/statusName.json",
            json={"input": [{"displayName": "X"}]},
        )
    )
    assert std["status"] == "skipped"
    assert (
        error(
            rest.post(
                "/rest/v1/programs/members/schema/fields/none.json",
                json={"input": [{"displayName": "X"}]},
            )
        )[0]
        == "1006"
    )
    assert error(rest.post(path, json={"input": [{}, {}]}))[0] == "1003"


def test_create_lead_field(sandbox, sandbox_rest) -> None:
    rest = sandbox_rest(sandbox)
    spec = {"displayName": "Shoe Size", "name": "shoeSize", "dataType": "integer"}
    out = result(rest.post("/rest/v1/leads/schema/fields.json", json={"input": [spec]}))
    assert out[0]["status"] == "created"
    [v2] = result(rest.get("/rest/v1/leads/describe2.json"))
    assert any(f["name"] == "shoeSize" for f in v2["fields"])
    assert ["shoeSize"] in v2["searchableFields"]
    [field] = result(rest.get("/rest/v1/leads/schema/fields/shoeSize.json"))
    assert field["isCustom"] is True
    path = "/rest/v1/leads/schema/fields/shoeSize.json"
    assert (
        result(rest.post(path, json={"input": [{"description": "EU sizes"}]}))[0]["status"]
        == "updated"
    )
    assert result(rest.get(path))[0]["description"] == "EU sizes"
    assert error(rest.get("/rest/v1/leads/schema/fields/nope.json"))[0] == "1006"


def test_create_field_validation_and_cap(sandbox, sandbox_rest) -> None:
    sandbox.admin.reset(seed="demo")  # a known number of custom fields
    rest = sandbox_rest(sandbox)
    bad = [
        {"displayName": "No Name", "dataType": "string"},
        {"displayName": "Bad Name", "name": "1abc", "dataType": "string"},
        {"displayName": "Bad Name2", "name": "a-b", "dataType": "string"},
        {"displayName": "Bad$Display", "name": "badDisplay", "dataType": "string"},
        {"displayName": "Bad Type", "name": "badType", "dataType": "blob"},
        {"displayName": "Dup", "name": "myCustomField", "dataType": "string"},
        {"displayName": "My Custom Field", "name": "otherName", "dataType": "string"},
        {"displayName": "Hidden Bad", "name": "hiddenBad", "dataType": "string", "isHidden": "yes"},
        "not an object",
    ]
    out = result(rest.post(PM_FIELDS, json={"input": bad}))
    assert [r["status"] for r in out] == ["skipped"] * len(bad)
    assert all(r["reasons"][0]["code"] == "1003" for r in out)
    customs = [f for f in result(rest.get(PM_FIELDS)) if f["isCustom"]]
    room = 20 - len(customs)
    many = [
        {"displayName": f"Extra {i}", "name": f"extra{i}", "dataType": "integer"}
        for i in range(room + 1)
    ]
    out = result(rest.post(PM_FIELDS, json={"input": many}))
    assert [r["status"] for r in out] == ["created"] * room + ["skipped"]
    assert "20" in out[-1]["reasons"][0]["message"]


def test_get_leads_by_filter_type(server: SandboxServer, rest) -> None:
    leads = {lead["id"]: lead for lead in server.admin.dump("leads")}
    params = {"filterType": "id", "filterValues": "3,1,2", "fields": "email,firstName,isPartner"}
    rows = result(rest.get("/rest/v1/leads.json", params=params))
    assert [r["id"] for r in rows] == [1, 2, 3]
    assert rows[0] == {
        "id": 1,
        "email": leads[1]["email"],
        "firstName": leads[1]["firstName"],
        "isPartner": leads[1]["isPartner"],
    }
    by_email = result(
        rest.get(
            "/rest/v1/leads.json",
            params={"filterType": "email", "filterValues": leads[97]["email"].upper()},
        )
    )
    assert [r["id"] for r in by_email] == [97]
    assert {"id", "email", "updatedAt", "createdAt", "firstName", "lastName"} == set(by_email[0])
    seen, token = [], None
    while True:
        page = {"filterType": "industrySegment", "filterValues": "SMB", "batchSize": 100}
        if token:
            page["nextPageToken"] = token
        body = rest.get("/rest/v1/leads.json", params=page).json()
        seen += body["result"]
        if not body["moreResult"]:
            break
        token = body["nextPageToken"]
    assert [r["id"] for r in seen] == sorted(
        i for i, x in leads.items() if x["industrySegment"] == "SMB"
    )
    long = {
        "filterType": "id",
        "filterValues": ",".join(str(i) for i in range(1, 301)),
        "_method": "GET",
    }
    assert len(result(rest.post("/rest/v1/leads.json", data=long))) == 300
    assert error(rest.get("/rest/v1/leads.json", params={"filterType": "id"}))[0] == "1002"
    assert (
        error(
            rest.get("/rest/v1/leads.json", params={"filterType": "firstName", "filterValues": "x"})
        )[0]
        == "1003"
    )
    assert (
        error(rest.get("/rest/v1/leads.json", params={"filterType": "id", "filterValues": "x"}))[0]
        == "1003"
    )
    bad_field = {"filterType": "id", "filterValues": "1", "fields": "nope"}
    assert error(rest.get("/rest/v1/leads.json", params=bad_field))[0] == "1006"


def test_company_and_custom_object_describe(server: SandboxServer, rest) -> None:
    [company] = result(rest.get("/rest/v1/companies/describe.json"))
    assert company["dedupeFields"] == ["externalCompanyId"]
    names = {f["name"]: f for f in company["fields"]}
    assert names["externalCompanyId"]["dataType"] == "string"
    assert names["id"]["updateable"] is False
    objects = result(rest.get("/rest/v1/customobjects.json"))
    assert "purchases" in {o["name"] for o in objects}
    [purchases] = result(rest.get("/rest/v1/customobjects/purchases/describe.json"))
    assert purchases["dedupeFields"] == ["vin"]
    assert {"vin", "email", "marketoGUID"} <= {f["name"] for f in purchases["fields"]}
    assert error(rest.get("/rest/v1/customobjects/nope/describe.json"))[0] == "1013"
    server.admin.set_options(
        custom_object_types={"cars": {"dedupeFields": ["plate"], "fields": {"plate": "string"}}}
    )
    [cars] = result(rest.get("/rest/v1/customobjects/cars/describe.json"))
    assert [f["name"] for f in cars["fields"]] == ["marketoGUID", "plate"]


def test_sync_leads(server: SandboxServer, rest) -> None:
    body = {
        "action": "createOrUpdate",
        "lookupField": "email",
        "input": [
            {"email": "sync.new@example.com", "firstName": "Ünïcode", "accountTier": 3},
            {"email": "lead5@example.com", "title": "VP, Data"},
            {"email": "bad"},
            {"email": "x@example.com", "nope": 1},
            "not an object",
        ],
    }
    out = result(rest.post("/rest/v1/leads.json", json=body))
    assert out[0]["status"] == "created"
    assert out[1] == {"seq": 1, "id": 5, "status": "updated"}
    assert [o["status"] for o in out[2:]] == ["skipped"] * 3
    assert out[3]["reasons"][0]["code"] == "1006"
    leads = {lead["id"]: lead for lead in server.admin.dump("leads")}
    assert leads[out[0]["id"]]["firstName"] == "Ünïcode"
    assert leads[5]["title"] == "VP, Data"
    create_only = {"action": "createOnly", "input": [{"email": "lead6@example.com"}]}
    assert (
        result(rest.post("/rest/v1/leads.json", json=create_only))[0]["reasons"][0]["code"]
        == "1005"
    )
    update_only = {"action": "updateOnly", "input": [{"email": "nobody@example.com"}]}
    assert (
        result(rest.post("/rest/v1/leads.json", json=update_only))[0]["reasons"][0]["code"]
        == "1004"
    )
    assert (
        error(rest.post("/rest/v1/leads.json", json={"action": "merge", "input": [{}]}))[0]
        == "1003"
    )
    assert (
        error(rest.post("/rest/v1/leads.json", json={"lookupField": "title", "input": [{}]}))[0]
        == "1003"
    )
    assert error(rest.post("/rest/v1/leads.json", json={"input": [{}] * 301}))[0] == "1003"
