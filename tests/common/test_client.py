from __future__ import annotations

import json
from dataclasses import replace

import pytest
import requests
from marketo_common import (
    ConfigError,
    IngestionAPIError,
    MarketoAPIError,
    MarketoClient,
    MarketoSettings,
    RateLimiter,
    __version__,
)

from common.common_fakes import BASE, TOKEN_PREFIX, envelope, failure

INGEST = "https://mkto-ingestion-api.adobe.io"
PERSONS = "/subscriptions/123-ABC-456/persons"


def test_ingest_202_returns_request_id_and_sends_the_headers(client, requests_mock):
    api = requests_mock.post(INGEST + PERSONS, status_code=202, headers={"X-Request-Id": "req-1"})
    body = {"priority": "normal", "input": [{"email": "a@example.com"}]}
    assert (
        client.ingest("/subscriptions/{munchkinId}/persons", body, correlation_id="c-9") == "req-1"
    )
    sent = api.last_request
    assert sent.headers["X-Mkto-User-Token"] == TOKEN_PREFIX + "1"
    assert "Authorization" not in sent.headers
    assert sent.headers["X-Correlation-Id"] == "c-9"
    assert sent.headers["X-Request-Source"].startswith("tests/1.0")
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.query == ""
    assert json.loads(sent.body) == body


def test_ingest_request_source_at_most_50_characters(settings, tokens, requests_mock):
    api = requests_mock.post(INGEST + PERSONS, status_code=202, headers={"X-Request-Id": "r"})
    client = MarketoClient(settings, user_agent="target-marketo-ingest/10.20.30-dev+local.build")
    client.ingest("/subscriptions/{munchkinId}/persons", b"{}")
    source = api.last_request.headers["X-Request-Source"]
    assert len(source) == 50
    assert client.user_agent.startswith(source)


def test_ingest_non_202_raises_with_error_code(client, requests_mock, sleeps):
    api = requests_mock.post(
        INGEST + PERSONS,
        status_code=400,
        headers={"X-Request-Id": "req-2"},
        json={"error_code": "4000801", "message": "Bad request: dedupeFields"},
    )
    with pytest.raises(IngestionAPIError) as info:
        client.ingest(PERSONS, b"{}")
    error = info.value
    assert (error.error_code, error.code, error.request_id, error.http_status) == (
        "4000801",
        "4000801",
        "req-2",
        400,
    )
    assert error.retryable is False
    assert "Bad request: dedupeFields" in str(error)
    assert api.call_count == 1


@pytest.mark.parametrize(
    ("status", "code"), [(429, "429001"), (500, "5000801"), (503, None), (429, "4290801")]
)
def test_ingest_429_and_5xx_retried(client, requests_mock, sleeps, status, code):
    reply = {"error_code": code, "message": "slow down"} if code else None
    api = requests_mock.post(
        INGEST + PERSONS,
        [
            {"status_code": status, "json": reply},
            {"status_code": 202, "headers": {"X-Request-Id": "r"}},
        ],
    )
    assert client.ingest(PERSONS, b"{}") == "r"
    assert api.call_count == 2


@pytest.mark.parametrize(
    "reply",
    [
        # a daily quota: retrying cannot help before midnight
        {
            "status_code": 429,
            "json": {"error_code": "4290801", "message": "Daily object quota exceeded"},
        },
        # no permission: a new token would not have it either
        {"status_code": 403, "json": {"error_code": "4030801", "message": "no permission"}},
    ],
)
def test_ingest_fatal_errors_not_retried(client, requests_mock, sleeps, reply):
    api = requests_mock.post(INGEST + PERSONS, **reply)
    with pytest.raises(IngestionAPIError) as info:
        client.ingest(PERSONS, b"{}")
    assert api.call_count == 1
    assert info.value.retryable is False
    assert info.value.error_code == reply["json"]["error_code"]


def test_ingest_401_refreshes_token_once(client, requests_mock, tokens, sleeps):
    api = requests_mock.post(
        INGEST + PERSONS,
        [
            {"status_code": 401, "json": {"error_code": "401013", "message": "expired"}},
            {"status_code": 202, "headers": {"X-Request-Id": "r"}},
        ],
    )
    assert client.ingest(PERSONS, b"{}") == "r"
    assert [r.headers["X-Mkto-User-Token"] for r in api.request_history] == [
        TOKEN_PREFIX + "1",
        TOKEN_PREFIX + "2",
    ]
    assert sleeps == []


def test_ingest_token_rejected_again_after_refresh_is_retried(client, requests_mock, sleeps):
    """A second 401013 on the fresh token (e.g. it expired at once) is retried, as 601/602 are."""
    rejected = {"status_code": 401, "json": {"error_code": "401013", "message": "expired"}}
    api = requests_mock.post(
        INGEST + PERSONS,
        [rejected, rejected, {"status_code": 202, "headers": {"X-Request-Id": "r"}}],
    )
    assert client.ingest(PERSONS, b"{}") == "r"
    tokens_sent = [r.headers["X-Mkto-User-Token"] for r in api.request_history]
    assert len(set(tokens_sent)) == 3
    assert len(sleeps) == 1


def test_ingest_is_not_held_to_the_rest_limits(settings, tokens, requests_mock):
    requests_mock.post(INGEST + PERSONS, status_code=202)
    requests_mock.get(BASE + "/rest/v1/programs.json", json=envelope())

    def refuse(seconds):
        raise AssertionError(seconds)

    limiter = RateLimiter(1, 20.0, 1, sleep=refuse)  # one REST call per 20 s
    client = MarketoClient(settings, user_agent="t", limiter=limiter)
    client.get("/rest/v1/programs.json")
    for _ in range(5):
        client.ingest(PERSONS, b"{}")
    with pytest.raises(AssertionError):
        client.get("/rest/v1/programs.json")  # the REST window is still full


def test_ingest_needs_a_munchkin_id(tokens, sleeps):
    local = MarketoSettings.from_config(
        {"base_url": "http://127.0.0.1:9", "client_id": "c", "client_secret": "s"}
    )
    with pytest.raises(ConfigError, match="munchkin_id"):
        MarketoClient(local, user_agent="t").ingest("/subscriptions/{munchkinId}/persons", b"{}")


def test_user_agent_timeouts_and_pool(settings, tokens, requests_mock, monkeypatch):
    seen = []
    original = requests.Session.request

    def spy(self, method, url, **kwargs):
        seen.append((method, url.split("?")[0].rsplit("/", 1)[-1], kwargs.get("timeout")))
        return original(self, method, url, **kwargs)

    monkeypatch.setattr(requests.Session, "request", spy)
    api = requests_mock.get(BASE + "/rest/v1/programs.json", json=envelope())
    requests_mock.post(BASE + "/bulk/v1/leads.json", json=envelope())
    requests_mock.get(
        BASE + "/bulk/v1/x/file.json", text="a\n", headers={"Content-Type": "text/csv"}
    )
    requests_mock.post(INGEST + PERSONS, status_code=202)
    settings = replace(settings, request_timeout=(3.0, 33.0), max_concurrent_calls=7)
    client = MarketoClient(settings, user_agent="tap-marketo-members/0.1.0")
    client.get("/rest/v1/programs.json")
    client.post("/bulk/v1/leads.json", data={"format": "csv"})
    client.download("/bulk/v1/x/file.json").close()
    client.ingest(PERSONS, b"{}")
    assert [s[1] for s in seen] == ["token", "programs.json", "leads.json", "file.json", "persons"]
    assert {s[2] for s in seen} == {(3.0, 33.0)}
    agent = api.last_request.headers["User-Agent"]
    assert "tap-marketo-members/0.1.0" in agent
    assert f"marketo-common/{__version__}" in agent
    assert __version__ != "0+unknown"
    for request in requests_mock.request_history[1:]:
        assert request.headers["User-Agent"] == agent
    adapter = client.session.get_adapter("https://123-ABC-456.mktorest.com")
    assert adapter._pool_maxsize == 7
    assert client.limiter.max_concurrent == 7


def test_list_params_sent_comma_separated(client, requests_mock):
    api = requests_mock.get(BASE + "/rest/v1/leads.json", json=envelope())
    client.get("/rest/v1/leads.json", {"filterType": "id", "filterValues": [1, 2, 3]})
    assert api.last_request.qs["filtervalues"] == ["1,2,3"]


def test_limiter_shared_and_calls_counted(settings, tokens, requests_mock):
    limiter = RateLimiter(100, 20.0, 3)
    requests_mock.get(BASE + "/rest/v1/programs.json", json=envelope())
    client = MarketoClient(settings, user_agent="t", limiter=limiter)
    assert client.limiter is limiter
    assert client.session.get_adapter(BASE)._pool_maxsize == 3
    for _ in range(3):
        client.get("/rest/v1/programs.json")
    assert client.calls_made == 3
    assert limiter.counted() == 3


def test_iter_pages_follows_next_page_token(client, requests_mock):
    url = BASE + "/rest/v1/programs/1001/members.json"
    api = requests_mock.get(
        url,
        [
            {"json": envelope([{"id": 1}, {"id": 2}], moreResult=True, nextPageToken="P2")},
            {"json": envelope([{"id": 3}], moreResult=False, nextPageToken="P3")},
        ],
    )
    items = list(
        client.iter_pages("/rest/v1/programs/1001/members.json", {"fields": "a"}, batch_size=2)
    )
    assert items == [{"id": 1}, {"id": 2}, {"id": 3}]
    assert api.request_history[0].qs == {"fields": ["a"], "batchsize": ["2"]}
    assert api.request_history[1].qs["nextpagetoken"] == ["p2"]


def test_iter_pages_falls_back_to_offset(client, requests_mock):
    url = BASE + "/rest/asset/v1/programs.json"
    api = requests_mock.get(
        url,
        [
            {"json": envelope([{"id": 1}, {"id": 2}], moreResult=True)},
            {"json": envelope([{"id": 3}])},
        ],
    )
    items = list(client.iter_pages("/rest/asset/v1/programs.json", {"maxReturn": 2}))
    assert [i["id"] for i in items] == [1, 2, 3]
    assert api.request_history[1].qs["offset"] == ["2"]


def test_long_get_is_sent_as_post_with_method_get(client, requests_mock):
    api = requests_mock.post(BASE + "/rest/v1/leads.json", json=envelope([{"id": 1}]))
    values = ",".join(f"person{i}@example.com" for i in range(400))
    assert client.get("/rest/v1/leads.json", {"filterType": "email", "filterValues": values})
    assert api.last_request.qs == {"_method": ["get"]}
    assert "filterValues" in api.last_request.text


def test_download_streams_with_range(client, requests_mock):
    path = "/bulk/v1/program/members/export/abc/file.json"
    api = requests_mock.get(
        BASE + path, status_code=206, content=b"b,c\n", headers={"Content-Type": "text/csv"}
    )
    response = client.download(path, start=100)
    with response:
        assert response.content == b"b,c\n"
    assert api.last_request.headers["Range"] == "bytes=100-"
    assert api.last_request.stream is True
    client.download(path, start=0, end=99).close()
    assert api.last_request.headers["Range"] == "bytes=0-99"
    client.download(path).close()
    assert "Range" not in api.last_request.headers


def test_download_retries_before_the_body_and_raises_on_errors(client, requests_mock, sleeps):
    path = "/bulk/v1/program/members/export/abc/file.json"
    api = requests_mock.get(
        BASE + path,
        [
            {"status_code": 502, "text": "bad gateway"},
            {"status_code": 200, "content": b"a\n", "headers": {"Content-Type": "text/csv"}},
        ],
    )
    assert client.download(path).content == b"a\n"
    assert api.call_count == 2
    requests_mock.get(BASE + path, status_code=404, text="gone")
    with pytest.raises(MarketoAPIError) as info:
        client.download(path)
    assert info.value.http_status == 404
    requests_mock.get(
        BASE + path,
        json={
            "success": False,
            "errors": [{"code": "1029", "message": "Export daily quota exceeded"}],
        },
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(MarketoAPIError, match="midnight US Central"):
        client.download(path)


def test_maybe_ran_twice_after_a_lost_answer_or_5xx_only(client, requests_mock, sleeps):
    url = BASE + "/bulk/v1/program/members/export/create.json"
    requests_mock.post(url, [{"exc": requests.exceptions.ConnectionError}, {"json": envelope()}])
    client.post("/bulk/v1/program/members/export/create.json", json={})
    assert client.maybe_ran_twice()
    requests_mock.post(url, [{"status_code": 502, "text": "<html>"}, {"json": envelope()}])
    client.post("/bulk/v1/program/members/export/create.json", json={})
    assert client.maybe_ran_twice()
    requests_mock.post(url, [{"json": failure(606, "rate")}, {"json": envelope()}])
    client.post("/bulk/v1/program/members/export/create.json", json={})
    assert not client.maybe_ran_twice()  # refused before running: nothing to find
    requests_mock.post(url, json=envelope())
    client.post("/bulk/v1/program/members/export/create.json", json={})
    assert not client.maybe_ran_twice()
