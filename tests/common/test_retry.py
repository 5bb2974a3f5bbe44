from __future__ import annotations

import logging
import types
from dataclasses import replace

import backoff._common
import pytest
import requests
from marketo_common import (
    DailyQuotaExceededError,
    ExportQuotaExceededError,
    MarketoAPIError,
    MarketoClient,
    MarketoConnectionError,
    MarketoError,
    TooManyImportsError,
    TooManyJobsError,
)
from marketo_common.errors import parse_retry_after

from common.common_fakes import BASE, envelope, failure

PATH = "/bulk/v1/program/members/export/create.json"
URL = BASE + PATH
TRIES = 4  # max_retries=3 in the fixture settings, plus the first attempt

RETRYABLE_CODES = {
    "604": "Request timed out",
    "606": "Max rate limit '100' exceeded with in '20' secs",
    "608": "API Temporarily Unavailable",
    "611": "System error",
    "615": "Concurrent access limit reached",
    "1016": "Too many imports",
    "1029": "Too many jobs (10) in queue",
}


@pytest.mark.parametrize("code", sorted(RETRYABLE_CODES))
def test_retryable_code_is_retried_then_succeeds(client, requests_mock, sleeps, code):
    api = requests_mock.post(
        URL,
        [{"json": failure(code, RETRYABLE_CODES[code])}, {"json": envelope([{"exportId": "x"}])}],
    )
    assert client.post(PATH, json={})["result"] == [{"exportId": "x"}]
    assert api.call_count == 2
    assert len(sleeps) == 1


@pytest.mark.parametrize("code", sorted(RETRYABLE_CODES))
def test_retryable_code_gives_up_after_the_limit(client, requests_mock, sleeps, code, caplog):
    api = requests_mock.post(URL, json=failure(code, RETRYABLE_CODES[code]))
    with (
        caplog.at_level(logging.INFO, logger="marketo_common"),
        pytest.raises(MarketoError) as info,
    ):
        client.post(PATH, json={})
    assert api.call_count == TRIES
    assert len(sleeps) == TRIES - 1
    error = info.value
    assert error.code == code
    assert error.attempts == TRIES
    assert f"gave up after {TRIES} attempts" in str(error)
    assert RETRYABLE_CODES[code] in str(error)
    retries = [r for r in caplog.records if r.levelno == logging.INFO and "Retrying" in r.message]
    assert len(retries) == TRIES - 1
    assert all(code in r.message and PATH in r.message and " s " in r.message for r in retries)


@pytest.mark.parametrize("code", ["601", "602"])
def test_persistent_token_error_gives_up(client, requests_mock, sleeps, tokens, code):
    requests_mock.post(URL, json=failure(code, "Access token invalid"))
    with pytest.raises(MarketoAPIError) as info:
        client.post(PATH, json={})
    assert info.value.code == code
    assert info.value.attempts == TRIES


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retryable_http_status(client, requests_mock, sleeps, status):
    api = requests_mock.post(URL, [{"status_code": status, "text": "busy"}, {"json": envelope()}])
    client.post(PATH, json={})
    assert api.call_count == 2
    requests_mock.post(URL, status_code=status, text="<html>busy</html>")
    with pytest.raises(MarketoAPIError) as info:
        client.post(PATH, json={})
    assert info.value.http_status == status
    assert info.value.attempts == TRIES


@pytest.mark.parametrize(
    "exc",
    [
        requests.ConnectionError("Connection reset by peer"),
        requests.ConnectTimeout("connect timed out"),
        requests.ReadTimeout("read timed out"),
        requests.exceptions.ChunkedEncodingError("reset mid-body"),
    ],
)
def test_connection_errors_and_timeouts_retried(client, requests_mock, sleeps, exc):
    api = requests_mock.post(URL, [{"exc": exc}, {"json": envelope()}])
    client.post(PATH, json={})
    assert api.call_count == 2
    requests_mock.post(URL, exc=exc)
    with pytest.raises(MarketoConnectionError) as info:
        client.post(PATH, json={})
    assert info.value.attempts == TRIES
    assert type(exc).__name__ in str(info.value)
    assert PATH in str(info.value)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("603", "Access denied"),
        ("609", "Invalid JSON"),
        ("610", "Requested resource not found"),
        ("1003", "Invalid value"),
        ("1035", "Unsupported filter type for target subscription"),
        ("999", "Something we do not know"),
    ],
)
def test_fatal_codes_not_retried(client, requests_mock, sleeps, code, message):
    api = requests_mock.post(URL, json=failure(code, message))
    with pytest.raises(MarketoAPIError) as info:
        client.post(PATH, json={})
    assert api.call_count == 1
    assert sleeps == []
    assert info.value.retryable is False
    assert info.value.code == code


@pytest.mark.parametrize("status", [400, 403, 404, 413, 414])
def test_other_4xx_not_retried(client, requests_mock, sleeps, status):
    api = requests_mock.post(URL, status_code=status, text="no")
    with pytest.raises(MarketoAPIError) as info:
        client.post(PATH, json={})
    assert api.call_count == 1
    assert info.value.http_status == status


def test_1029_quota_is_not_retried_and_says_when_it_resets(client, requests_mock, sleeps):
    api = requests_mock.post(URL, json=failure(1029, "Export daily quota 500MB exceeded"))
    with pytest.raises(ExportQuotaExceededError) as info:
        client.post(PATH, json={})
    assert api.call_count == 1
    assert info.value.retryable is False
    assert "midnight US Central" in str(info.value)


def test_1029_queue_full_is_retried_as_too_many_jobs(client, requests_mock, sleeps):
    requests_mock.post(URL, json=failure(1029, "Too many jobs (10) in queue"))
    with pytest.raises(TooManyJobsError) as info:
        client.post(PATH, json={})
    assert info.value.retryable is True
    assert info.value.attempts == TRIES


def test_1016_is_too_many_imports(client, requests_mock, sleeps):
    requests_mock.post(URL, json=failure(1016, "Too many imports"))
    with pytest.raises(TooManyImportsError):
        client.post(PATH, json={})


def test_607_daily_quota_not_retried(client, requests_mock, sleeps):
    api = requests_mock.post(URL, json=failure(607, "Daily quota reached"))
    with pytest.raises(DailyQuotaExceededError) as info:
        client.post(PATH, json={})
    assert api.call_count == 1
    assert sleeps == []
    assert "midnight US Central" in str(info.value)


def test_retry_after_is_honoured(client, requests_mock, sleeps):
    requests_mock.post(
        URL,
        [{"status_code": 429, "headers": {"Retry-After": "37"}, "text": ""}, {"json": envelope()}],
    )
    client.post(PATH, json={})
    assert sleeps == [37.0]


def test_backoff_grows_exponentially_with_jitter(client, requests_mock, sleeps):
    requests_mock.post(URL, json=failure(606, "rate"))
    with pytest.raises(MarketoAPIError):
        client.post(PATH, json={})
    assert len(sleeps) == 3
    for attempt, wait in enumerate(sleeps):
        ceiling = 2**attempt
        assert ceiling / 2 <= wait <= ceiling


def test_max_retry_seconds_bounds_the_total_wait(
    settings, tokens, requests_mock, sleeps, monkeypatch
):
    # backoff measures elapsed time with its module's `time.monotonic`: make it follow the sleeps.
    monkeypatch.setattr(
        backoff._common, "time", types.SimpleNamespace(monotonic=lambda: 1000 + sum(sleeps))
    )
    slow = MarketoClient(replace(settings, max_retries=50, max_retry_seconds=20), user_agent="t")
    api = requests_mock.post(URL, headers={"Retry-After": "3"}, status_code=503, text="")
    with pytest.raises(MarketoAPIError):
        slow.post(PATH, json={})
    assert sum(sleeps) == pytest.approx(20)
    assert api.call_count < 20


def test_success_false_with_http_200_raises_with_context(client, requests_mock, sleeps):
    requests_mock.get(
        BASE + "/rest/v1/programs.json",
        json={
            "requestId": "abc#123",
            "success": False,
            "errors": [{"code": "1003", "message": "Invalid value for program"}],
        },
    )
    with pytest.raises(MarketoAPIError) as info:
        client.get("/rest/v1/programs.json", {"filterType": "id"})
    error = info.value
    assert (error.code, error.request_id, error.method, error.path, error.http_status) == (
        "1003",
        "abc#123",
        "GET",
        "/rest/v1/programs.json",
        200,
    )
    assert error.message == "Invalid value for program"
    for part in ("1003", "Invalid value for program", "abc#123", "GET /rest/v1/programs.json"):
        assert part in str(error)


def test_non_json_200_is_an_error(client, requests_mock, sleeps):
    requests_mock.get(BASE + "/rest/v1/programs.json", text="<html>maintenance</html>")
    with pytest.raises(MarketoAPIError, match="envelope"):
        client.get("/rest/v1/programs.json")


def test_uploaded_file_rewound_before_retry(client, requests_mock, sleeps, tmp_path):
    path = tmp_path / "import.csv"
    path.write_bytes(b"email\na@example.com\n")
    bodies = []

    def reply(request, context):
        bodies.append(request.body)
        if len(bodies) == 1:
            context.status_code = 502
            return {}
        return envelope([{"batchId": 1}])

    requests_mock.post(BASE + "/bulk/v1/leads.json", json=reply)
    with path.open("rb") as handle:
        client.post("/bulk/v1/leads.json", files={"file": ("import.csv", handle, "text/csv")})
    assert len(bodies) == 2
    assert b"a@example.com" in bodies[1]


def test_retry_after_as_http_date():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412480.0) == 30.0
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_tls_failure_is_not_retried(client, requests_mock, sleeps):
    api = requests_mock.post(URL, exc=requests.exceptions.SSLError("certificate verify failed"))
    with pytest.raises(MarketoConnectionError) as info:
        client.post(PATH, json={})
    assert api.call_count == 1
    assert info.value.retryable is False
    assert "123-abc-456.mktorest.com" in str(info.value).lower()
