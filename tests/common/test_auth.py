from __future__ import annotations

import threading
import urllib.parse

import pytest
import requests
from marketo_common import (
    MarketoAPIError,
    MarketoBearerAuth,
    MarketoIngestionAuth,
    TokenManager,
)

from common.common_fakes import BASE, SECRET, TOKEN_PREFIX, TOKEN_URL, envelope, failure

DESCRIBE = BASE + "/rest/v1/leads/describe2.json"


class FakeClock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


def test_token_fetched_with_secret_in_form_body_and_cached(settings, tokens):
    manager = TokenManager(settings)
    first = manager.get_token()
    assert manager.get_token() == first
    assert tokens.call_count == 1
    request = tokens.last_request
    assert request.method == "POST"
    assert request.query == ""
    assert SECRET not in request.url
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = urllib.parse.parse_qs(request.text)
    assert form == {
        "grant_type": ["client_credentials"],
        "client_id": ["cid"],
        "client_secret": [SECRET],
    }


def test_token_refreshed_ahead_of_expiry(settings, tokens):
    clock = FakeClock()
    manager = TokenManager(settings, clock=clock, refresh_margin=60)
    first = manager.get_token()
    clock.now += 3599 - 61  # still valid for more than the margin
    assert manager.get_token() == first
    assert tokens.call_count == 1
    clock.now += 2  # inside the margin but not yet expired at Marketo
    second = manager.get_token()
    assert second != first
    assert tokens.call_count == 2


def test_short_lived_token_still_cached(settings, requests_mock):
    requests_mock.post(TOKEN_URL, json={"access_token": "t", "expires_in": 20})
    clock = FakeClock()
    manager = TokenManager(settings, clock=clock, refresh_margin=60)
    manager.get_token()
    clock.now += 10
    manager.get_token()
    assert requests_mock.call_count == 1


def test_eight_threads_on_an_expired_token_make_one_request(settings, requests_mock):
    gate = threading.Event()

    def slow_token(request, context):
        gate.wait(1)  # keep the fetch in flight while the other threads pile up
        return {"access_token": TOKEN_PREFIX + "new", "expires_in": 3600}

    matcher = requests_mock.post(TOKEN_URL, json=slow_token)
    clock = FakeClock()
    manager = TokenManager(settings, clock=clock)
    manager._token, manager._refresh_at = TOKEN_PREFIX + "old", clock.now - 1  # expired
    barrier = threading.Barrier(8)
    results = []

    def worker():
        barrier.wait()
        results.append(manager.get_token())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    threading.Timer(0.05, gate.set).start()
    for t in threads:
        t.join(5)
    assert results == [TOKEN_PREFIX + "new"] * 8
    assert matcher.call_count == 1


def test_invalidate_keeps_a_newer_token(settings, tokens):
    manager = TokenManager(settings)
    old = manager.get_token()
    manager.invalidate(old)
    new = manager.get_token()
    manager.invalidate(old)  # a late thread reporting the old token
    assert manager.get_token() == new
    assert tokens.call_count == 2


@pytest.mark.parametrize("code", [601, 602])
def test_token_error_refreshes_once_and_retries(client, tokens, requests_mock, code, sleeps):
    api = requests_mock.get(
        DESCRIBE,
        [{"json": failure(code, "Access token invalid")}, {"json": envelope([{"id": 1}])}],
    )
    assert client.get("/rest/v1/leads/describe2.json")["result"] == [{"id": 1}]
    assert tokens.call_count == 2
    assert api.call_count == 2
    sent = [r.headers["Authorization"] for r in api.request_history]
    assert sent == [f"Bearer {TOKEN_PREFIX}1", f"Bearer {TOKEN_PREFIX}2"]
    assert sleeps == []  # a refresh needs no backoff


def test_eight_threads_rejected_token_one_refresh(client, tokens, requests_mock):
    def reply(request, context):
        if request.headers["Authorization"].endswith(TOKEN_PREFIX + "1"):
            return failure(602, "Access token expired")
        return envelope([{"ok": True}])

    requests_mock.get(DESCRIBE, json=reply)
    client.tokens.get_token()
    barrier = threading.Barrier(8)
    errors = []

    def worker():
        barrier.wait()
        try:
            client.get("/rest/v1/leads/describe2.json")
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert errors == []
    assert tokens.call_count == 2  # the first token, then exactly one refresh


def test_bad_credentials_are_fatal_and_clear(settings, requests_mock, sleeps):
    requests_mock.post(
        TOKEN_URL,
        status_code=401,
        json={"error": "unauthorized", "error_description": "Bad client credentials"},
    )
    manager = TokenManager(settings)
    with pytest.raises(MarketoAPIError) as info:
        manager.get_token()
    assert "Bad client credentials" in str(info.value)
    assert info.value.retryable is False
    assert info.value.path == "/identity/oauth/token"
    assert SECRET not in str(info.value)


def test_bearer_and_ingestion_auth_set_headers(settings, tokens):
    manager = TokenManager(settings)
    request = requests.Request("GET", DESCRIBE).prepare()
    MarketoBearerAuth(manager)(request)
    assert request.headers["Authorization"] == f"Bearer {TOKEN_PREFIX}1"
    request = requests.Request("POST", "https://mkto-ingestion-api.adobe.io/x").prepare()
    MarketoIngestionAuth(manager)(request)
    assert request.headers["X-Mkto-User-Token"] == f"{TOKEN_PREFIX}1"
    assert "Authorization" not in request.headers
    assert TOKEN_PREFIX not in request.url


def test_bearer_auth_works_as_requests_auth(settings, tokens, requests_mock):
    api = requests_mock.get(DESCRIBE, json=envelope())
    requests.get(DESCRIBE, auth=MarketoBearerAuth(TokenManager(settings)), timeout=5)
    assert api.last_request.headers["Authorization"] == f"Bearer {TOKEN_PREFIX}1"
    assert "access_token" not in api.last_request.url


def test_http_401_on_rest_refreshes_once(client, tokens, requests_mock, sleeps):
    api = requests_mock.get(
        DESCRIBE, [{"status_code": 401, "text": "Unauthorized"}, {"json": envelope([{"id": 2}])}]
    )
    assert client.get("/rest/v1/leads/describe2.json")["result"] == [{"id": 2}]
    assert (tokens.call_count, api.call_count) == (2, 2)


def test_ingestion_token_code_in_body_refreshes_once(client, tokens, requests_mock, sleeps):
    url = "https://mkto-ingestion-api.adobe.io/subscriptions/123-ABC-456/persons"
    api = requests_mock.post(
        url,
        [
            {"status_code": 403, "json": {"error_code": "602", "message": "Access token expired"}},
            {"status_code": 202, "headers": {"X-Request-Id": "ok"}},
        ],
    )
    assert client.ingest("/subscriptions/123-ABC-456/persons", b"{}") == "ok"
    assert (tokens.call_count, api.call_count) == (2, 2)


def test_same_token_handed_back_is_used_to_its_end(settings, requests_mock):
    # Marketo returns the cached token with its remaining life until it expires.
    matcher = requests_mock.post(
        TOKEN_URL,
        [
            {"json": {"access_token": "A", "expires_in": 3600}},
            {"json": {"access_token": "A", "expires_in": 50}},
            {"json": {"access_token": "B", "expires_in": 3600}},
        ],
    )
    clock = FakeClock()
    manager = TokenManager(settings, clock=clock, refresh_margin=60)
    assert manager.get_token() == "A"
    clock.now += 3550  # 50 s left: inside the margin, ask again
    assert manager.get_token() == "A"
    for _ in range(4):  # the same token again: no more asking until it really expires
        clock.now += 12
        assert manager.get_token() == "A"
    assert matcher.call_count == 2
    clock.now += 3
    assert manager.get_token() == "B"
    assert matcher.call_count == 3
