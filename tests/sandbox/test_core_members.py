"""Program members REST: query, sync status, sync data, delete."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from marketo_sandbox.admin_client import AdminError
from marketo_sandbox.server import SandboxServer
from sandbox_helpers import error, result

MEMBERS = "/rest/v1/programs/{}/members.json"
STATUS = "/rest/v1/programs/{}/members/status.json"
DELETE = "/rest/v1/programs/{}/members/delete.json"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    with SandboxServer(tmp_path_factory.mktemp("members") / "s.db", seed="demo") as sb:
        yield sb


@pytest.fixture
def sandbox(server: SandboxServer) -> SandboxServer:
    """The module's sandbox with default options; tests read expectations from dumps, so the
    changes of earlier tests do not matter."""
    server.admin.set_options(rest_member_filter_limit=100_000, rest_member_limit_mode="total")
    return server


@pytest.fixture
def shared(server: SandboxServer) -> SandboxServer:
    """The module's sandbox as it is, for tests that only read."""
    return server


def members_of(sandbox: SandboxServer, program_id: int) -> list[dict]:
    return sandbox.admin.dump("program_members", program_id=program_id)


def test_query_by_status_with_default_fields(shared, rest) -> None:
    expected = sorted(
        m["leadId"] for m in members_of(shared, 1001) if m["statusName"] == "Attended"
    )
    rows = result(
        rest.get(
            MEMBERS.format(1001), params={"filterType": "statusName", "filterValues": "Attended"}
        )
    )
    assert sorted(r["leadId"] for r in rows) == expected
    assert set(rows[0]) == {
        "seq",
        "acquiredBy",
        "leadId",
        "membershipDate",
        "programId",
        "reachedSuccess",
    }
    assert [r["seq"] for r in rows] == list(range(len(rows)))
    assert rows[0]["membershipDate"].endswith("Z")


def test_query_pages_with_next_page_token(shared, rest) -> None:
    expected = sorted(m["leadId"] for m in members_of(shared, 1002) if not m["reachedSuccess"])
    seen, token, pages = [], None, 0
    while True:
        params = {
            "filterType": "reachedSuccess",
            "filterValues": "false",
            "batchSize": 300,
            "fields": "leadId,statusName,reachedSuccess",
        }
        if token:
            params["nextPageToken"] = token
        body = rest.get(MEMBERS.format(1002), params=params).json()
        assert body["success"] is True
        seen += body["result"]
        pages += 1
        if not body["moreResult"]:
            assert "nextPageToken" not in body
            break
        token = body["nextPageToken"]
    assert pages > 1
    assert [r["leadId"] for r in seen] == expected
    assert all(r["reachedSuccess"] is False for r in seen)


def test_query_by_lead_ids_custom_fields_and_lead_filter(shared, rest) -> None:
    ids = [m["leadId"] for m in members_of(shared, 1001)[:3]]
    rows = result(
        rest.get(
            MEMBERS.format(1001),
            params={
                "filterType": "leadId",
                "filterValues": ",".join(map(str, ids)),
                "fields": "leadId,statusName,myCustomField,vipAttendee,program,updatedAt",
            },
        )
    )
    assert [r["leadId"] for r in rows] == ids
    assert rows[0]["program"] == "Q1 Product Webinar"
    assert isinstance(rows[0]["vipAttendee"], bool)
    one = members_of(shared, 1001)[0]
    custom = result(
        rest.get(
            MEMBERS.format(1001),
            params={
                "filterType": "sessionsAttended",
                "filterValues": "3",
                "fields": "leadId,sessionsAttended",
            },
        )
    )
    assert custom
    assert all(r["sessionsAttended"] == 3 for r in custom)
    assert one["leadId"] in ids


def test_query_errors(rest) -> None:
    path = MEMBERS.format(1001)
    assert error(rest.get(path))[0] == "1002"
    assert error(rest.get(path, params={"filterType": "statusName"}))[0] == "1002"
    assert (
        error(rest.get(path, params={"filterType": "webinarUrl", "filterValues": "x"}))[0] == "1003"
    )
    assert (
        error(rest.get(path, params={"filterType": "leadId", "filterValues": "abc"}))[0] == "1003"
    )
    many = ",".join(str(i) for i in range(301))
    assert error(rest.get(path, params={"filterType": "leadId", "filterValues": many}))[0] == "1003"
    bad_size = {"filterType": "leadId", "filterValues": "1", "batchSize": 301}
    assert error(rest.get(path, params=bad_size))[0] == "1003"
    bad_field = {"filterType": "leadId", "filterValues": "1", "fields": "nope"}
    assert error(rest.get(path, params=bad_field))[0] == "1006"
    bad_token = {"filterType": "leadId", "filterValues": "1", "nextPageToken": "AAAA"}
    assert error(rest.get(path, params=bad_token))[0] == "1003"
    missing = {"filterType": "leadId", "filterValues": "1"}
    assert error(rest.get(MEMBERS.format(4242), params=missing))[0] == "1013"


def test_updated_at_range(shared, rest) -> None:
    now = datetime.fromisoformat(shared.admin.now().replace("Z", "+00:00"))
    start = now - timedelta(days=7)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    params = {
        "filterType": "updatedAt",
        "startAt": start.strftime(fmt),
        "endAt": now.strftime(fmt),
        "fields": "leadId,updatedAt",
        "batchSize": 300,
    }
    rows = result(rest.get(MEMBERS.format(1002), params=params))
    assert rows
    assert all(start.strftime(fmt) <= r["updatedAt"] <= now.strftime(fmt) for r in rows)
    params["startAt"] = (now - timedelta(days=7, seconds=1)).strftime(fmt)
    code, message = error(rest.get(MEMBERS.format(1002), params=params))
    assert code == "1003"
    assert "7 days" in message
    assert (
        error(
            rest.get(
                MEMBERS.format(1002),
                params={"filterType": "updatedAt", "startAt": "x", "endAt": "y"},
            )
        )[0]
        == "1001"
    )


def test_membership_limit_total_and_matching(sandbox, rest) -> None:
    total = len(members_of(sandbox, 1002))
    sandbox.admin.set_options(rest_member_filter_limit=total - 1)
    params = {"filterType": "statusName", "filterValues": "Member"}
    code, message = error(rest.get(MEMBERS.format(1002), params=params))
    assert code == "1003"
    assert message == (
        f"Total membership size: {total:,} exceeds the limit allowed {total - 1:,} for the filter"
    )
    by_lead = {"filterType": "leadId", "filterValues": "1,2,3"}
    assert rest.get(MEMBERS.format(1002), params=by_lead).json()["success"] is True
    sandbox.admin.set_options(rest_member_limit_mode="matching", rest_member_filter_limit=5)
    code, message = error(rest.get(MEMBERS.format(1002), params=params))
    assert code == "1003"
    assert message.startswith("Matching membership size: ")
    assert message.endswith("exceeds the limit allowed (5) for this api")


def test_long_uri_is_414_and_post_with_method_get_works(shared, rest) -> None:
    ids = [m["leadId"] for m in members_of(shared, 1002)][:300]
    values = ",".join(str(i).zfill(30) for i in ids)
    params = {"filterType": "leadId", "filterValues": values, "fields": "leadId"}
    long = rest.get(MEMBERS.format(1002), params=params)
    assert long.status_code == 414
    via_post = rest.post(MEMBERS.format(1002), data={**params, "_method": "GET"})
    assert sorted(r["leadId"] for r in result(via_post)) == sorted(ids)
    via_query = rest.post(MEMBERS.format(1002) + "?_method=GET", data=params)
    assert len(result(via_query)) == len(ids)


def test_sync_status_created_updated_skipped(sandbox, rest) -> None:
    rows = {m["leadId"]: m for m in members_of(sandbox, 1001)}
    current = {lead: m["statusName"] for lead, m in rows.items()}
    registered = next(lead for lead, s in current.items() if s == "Invited")
    attended = next(lead for lead, s in current.items() if s == "Attended")
    outsider = next(lead for lead in range(1, 2001) if lead not in current)
    body = {
        "statusName": "Registered",
        "input": [
            {"leadId": attended},
            {"leadId": registered},
            {"leadId": outsider},
            {"leadId": 999_999},
            {"leadId": "x"},
        ],
    }
    out = result(rest.post(STATUS.format(1001), json=body))
    assert out[0] == {
        "seq": 0,
        "status": "skipped",
        "reasons": [
            {"code": "1037", "message": "Lead skipped because it is already in or past this status"}
        ],
    }
    assert out[1] == {"seq": 1, "status": "updated", "leadId": registered}
    assert out[2] == {"seq": 2, "status": "created", "leadId": outsider}
    assert out[3]["status"] == "skipped"
    assert out[3]["reasons"][0]["code"] == "1004"
    assert out[4]["status"] == "skipped"
    after = {m["leadId"]: m for m in members_of(sandbox, 1001)}
    assert after[registered]["statusName"] == "Registered"
    assert after[registered]["updatedAt"] >= rows[registered]["updatedAt"]
    assert after[outsider]["membershipDate"] == after[outsider]["updatedAt"]
    assert after[outsider]["statusName"] == "Registered"
    assert after[attended]["statusName"] == "Attended"
    # same status again: skipped (already in this status)
    again = result(
        rest.post(
            STATUS.format(1001), json={"statusName": "Registered", "input": [{"leadId": outsider}]}
        )
    )
    assert again[0]["reasons"][0]["code"] == "1037"
    # success statuses set reachedSuccess
    result(
        rest.post(
            STATUS.format(1001), json={"statusName": "attended", "input": [{"leadId": outsider}]}
        )
    )
    assert {m["leadId"]: m for m in members_of(sandbox, 1001)}[outsider]["reachedSuccess"] is True


def test_sync_status_errors(rest) -> None:
    path = STATUS.format(1001)
    assert error(rest.post(path, json={"input": [{"leadId": 1}]}))[0] == "1002"
    assert (
        error(rest.post(path, json={"statusName": "Nope", "input": [{"leadId": 1}]}))[0] == "1003"
    )
    assert (
        error(rest.post(path, json={"statusName": "Not in Program", "input": [{"leadId": 1}]}))[0]
        == "1003"
    )
    assert error(rest.post(path, json={"statusName": 5, "input": [{"leadId": 1}]}))[0] == "1001"
    too_many = [{"leadId": i} for i in range(1, 302)]
    assert error(rest.post(path, json={"statusName": "Invited", "input": too_many}))[0] == "1003"
    assert (
        error(
            rest.post(
                path,
                data="statusName=Invited",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        )[0]
        == "612"
    )
    assert (
        error(rest.post(path, data=b"{oops", headers={"Content-Type": "application/json"}))[0]
        == "609"
    )
    assert (
        error(
            rest.post(STATUS.format(4242), json={"statusName": "Invited", "input": [{"leadId": 1}]})
        )[0]
        == "1013"
    )


def test_sync_data(sandbox, rest) -> None:
    members = members_of(sandbox, 1001)
    lead = members[0]["leadId"]
    outsider = next(i for i in range(1, 2001) if i not in {m["leadId"] for m in members})
    body = {
        "input": [
            {
                "leadId": lead,
                "registrationCode": "dcff5f12",
                "vipAttendee": "true",
                "sessionsAttended": 4,
            },
            {"leadId": outsider, "registrationCode": "x"},
            {"leadId": lead, "membershipDate": "2024-01-01T00:00:00Z"},
            {"leadId": lead, "noSuchField": 1},
            {"leadId": lead, "sessionsAttended": "many"},
            {"leadId": lead, "registrationCode": "x" * 101},
        ]
    }
    out = result(rest.post(MEMBERS.format(1001), json=body))
    assert out[0] == {"seq": 0, "status": "updated", "leadId": lead}
    assert out[1] == {
        "seq": 1,
        "status": "skipped",
        "reasons": [{"code": "1013", "message": "Membership not found"}],
    }
    assert [o["status"] for o in out[2:]] == ["skipped"] * 4
    assert out[3]["reasons"][0]["code"] == "1006"
    row = {m["leadId"]: m for m in members_of(sandbox, 1001)}[lead]
    assert row["registrationCode"] == "dcff5f12"
    assert row["vipAttendee"] is True
    assert row["sessionsAttended"] == 4
    assert row["updatedAt"] >= members[0]["updatedAt"]


def test_delete(sandbox, rest) -> None:
    lead = members_of(sandbox, 1003)[0]["leadId"]
    out = result(
        rest.post(DELETE.format(1003), json={"input": [{"leadId": lead}, {"leadId": lead}]})
    )
    assert out[0] == {"seq": 0, "status": "deleted", "leadId": lead}
    assert out[1] == {
        "seq": 1,
        "status": "skipped",
        "reasons": [{"code": "1037", "message": "Lead not in program"}],
    }
    assert lead not in {m["leadId"] for m in members_of(sandbox, 1003)}
    too_many = {"input": [{"leadId": i} for i in range(301)]}
    assert error(rest.post(DELETE.format(1003), json=too_many))[0] == "1003"


def test_touch_bumps_updated_at_and_sets_fields(sandbox) -> None:
    before = {m["leadId"]: m for m in members_of(sandbox, 1004)}
    lead = next(iter(before))
    sandbox.admin.advance(3600)
    assert (
        sandbox.admin.touch_members(1004, [lead], statusName="Clicked", myCustomField="touched")
        == 1
    )
    after = {m["leadId"]: m for m in members_of(sandbox, 1004)}[lead]
    assert after["updatedAt"] > before[lead]["updatedAt"]
    assert after["myCustomField"] == "touched"
    assert after["statusName"] == "Clicked"
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H")
    assert after["updatedAt"] >= now


def test_touch_refuses_unknown_status_and_fields(shared) -> None:
    lead = members_of(shared, 1004)[0]["leadId"]
    with pytest.raises(AdminError, match="1003"):
        shared.admin.touch_members(1004, [lead], statusName="Registered")
    with pytest.raises(AdminError, match="1006"):
        shared.admin.touch_members(1004, [lead], noSuchField=1)
    with pytest.raises(AdminError, match="1013"):
        shared.admin.touch_members(4242, [lead], myCustomField="x")
