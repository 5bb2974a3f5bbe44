"""Behaviours the sandbox cannot show, against requests-mock: the REST lead join, a server that
ignores Range, and a 1003 that no narrower window can fix."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from marketo_common import MarketoAPIError, MarketoClient, MarketoSettings
from marketo_common.export_files import ExportDownloader
from marketo_common.program_member_export import ProgramMemberExports
from tap_marketo_members.rest_members import ProgramMemberQuery
from tap_marketo_members.windows import Window

BASE = "https://123-ABC-456.mktorest.com"
UTC = dt.timezone.utc


@pytest.fixture
def client(requests_mock):
    requests_mock.post(
        BASE + "/identity/oauth/token",
        json={"access_token": "tok-1", "token_type": "bearer", "expires_in": 3600},
    )
    settings = MarketoSettings.from_config(
        {"base_url": BASE, "client_id": "id", "client_secret": "secret", "max_retries": 0}
    )
    with MarketoClient(settings, user_agent="test") as c:
        yield c


def ok(result, **extra):
    return {"requestId": "a#1", "success": True, "result": result, **extra}


def test_rest_rows_get_lead_fields_joined(client, requests_mock):
    requests_mock.get(
        BASE + "/rest/v1/programs/1001/members.json",
        json=ok(
            [
                {
                    "seq": 0,
                    "leadId": 7,
                    "programId": 1001,
                    "updatedAt": "2024-01-01T10:00:00Z",
                    "statusName": "",
                },
                {
                    "seq": 1,
                    "leadId": 8,
                    "programId": 1001,
                    "updatedAt": "2024-01-01T11:00:00Z",
                    "statusName": "Attended",
                },
            ],
            moreResult=False,
        ),
    )
    leads = requests_mock.get(
        BASE + "/rest/v1/leads.json",
        json=ok([{"id": 7, "email": "a@x.com", "company": ""}, {"id": 8, "email": "b@x.com"}]),
    )
    query = ProgramMemberQuery(
        client,
        member_fields=["leadId", "programId", "updatedAt", "statusName"],
        lead_fields=["email", "company"],
    )
    window = Window(dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 2, tzinfo=UTC))
    rows = list(query.members(1001, window))
    assert rows == [
        {
            "leadId": 7,
            "programId": 1001,
            "updatedAt": "2024-01-01T10:00:00Z",
            "statusName": None,
            "email": "a@x.com",
            "company": None,
        },
        {
            "leadId": 8,
            "programId": 1001,
            "updatedAt": "2024-01-01T11:00:00Z",
            "statusName": "Attended",
            "email": "b@x.com",
            "company": None,
        },
    ]
    assert leads.last_request.qs["filtertype"] == ["id"]
    assert leads.last_request.qs["filtervalues"] == ["7,8"]
    member_call = requests_mock.request_history[1]
    assert "authorization" in {k.lower() for k in member_call.headers}
    assert "access_token" not in member_call.url


def test_1003_on_the_smallest_window_is_raised(client, requests_mock):
    requests_mock.get(
        BASE + "/rest/v1/programs/1001/members.json",
        json={
            "requestId": "a#2",
            "success": False,
            "errors": [{"code": "1003", "message": "Matching membership size exceeds"}],
        },
    )
    query = ProgramMemberQuery(client, member_fields=["leadId", "updatedAt"], lead_fields=[])
    start = dt.datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(MarketoAPIError, match="1003"):
        list(query.members(1001, Window(start, start + dt.timedelta(minutes=4))))
    # 4 minutes, 2, then 1 (the smallest): then the error is the user's to see
    spans = [(r.qs["startat"][0], r.qs["endat"][0]) for r in requests_mock.request_history[1:]]
    assert spans == [
        ("2023-12-31t23:59:59z", "2024-01-01t00:04:00z"),
        ("2023-12-31t23:59:59z", "2024-01-01t00:02:00z"),
        ("2023-12-31t23:59:59z", "2024-01-01t00:01:00z"),
    ]


def test_download_restarts_when_range_is_ignored(client, requests_mock, tmp_path):
    body = b"leadId\n" + b"".join(b"%d\n" % i for i in range(1000))
    digest = hashlib.sha256(body).hexdigest()
    path = "/bulk/v1/program/members/export/e1/file.json"
    calls = []

    def reply(request, context):
        calls.append(request.headers.get("Range"))
        if len(calls) == 1:
            context.status_code = 200
            return body[:100]  # a short body without an error
        context.status_code = 200  # Range ignored: the whole file again
        return body

    requests_mock.get(BASE + path, content=reply)
    downloader = ExportDownloader(ProgramMemberExports(client), sleep=lambda _: None)
    result = downloader.download(
        "e1", tmp_path / "f.csv", file_size=len(body), checksum=f"sha256:{digest}"
    )
    assert calls == [None, "bytes=100-"]
    assert (tmp_path / "f.csv").read_bytes() == body
    assert result.size == len(body)


def test_long_rest_query_is_sent_as_post_with_method_get(client, requests_mock):
    route = requests_mock.post(
        BASE + "/rest/v1/programs/1001/members.json",
        json=ok([{"seq": 0, "leadId": 7, "updatedAt": "2024-01-01T10:00:00Z"}], moreResult=False),
    )
    many = [f"customField{i:04d}WithALongDescriptiveName" for i in range(300)]
    query = ProgramMemberQuery(client, member_fields=["leadId", "updatedAt", *many], lead_fields=[])
    window = Window(dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 2, tzinfo=UTC))
    rows = list(query.members(1001, window))
    assert [r["leadId"] for r in rows] == [7]
    request = route.last_request
    assert request.qs["_method"] == ["get"]
    assert "filterType=updatedAt" in request.text
    assert len(request.url) < 8192
