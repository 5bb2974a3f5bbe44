from __future__ import annotations

import logging

import pytest
import requests
from marketo_common import MarketoBearerAuth, MarketoError, MarketoIngestionAuth

from common.common_fakes import BASE, SECRET, TOKEN_PREFIX, envelope, failure

PATH = "/rest/v1/leads/describe2.json"
INGEST = "https://mkto-ingestion-api.adobe.io/subscriptions/123-ABC-456/persons"


def test_no_secret_or_token_anywhere_across_a_full_auth_retry_cycle(
    client, requests_mock, tokens, sleeps, caplog
):
    caplog.set_level(logging.DEBUG)  # every logger, every level
    requests_mock.get(
        BASE + PATH,
        [
            {"json": failure(601, "Access token invalid")},
            {"json": failure(606, "Max rate limit exceeded")},
            {"status_code": 502, "text": "bad gateway"},
            {"exc": requests.ConnectionError("reset")},
            {"json": envelope([{"name": "email"}])},
            {"json": failure(602, "Access token expired")},
            {"json": failure(603, "Access denied")},
        ],
    )
    requests_mock.post(
        INGEST, status_code=401, json={"error_code": "401013", "message": "bad token"}
    )
    client.get(PATH)
    captured: list[str] = []
    for call in (
        lambda: client.get(PATH),
        lambda: client.ingest(INGEST[len("https://mkto-ingestion-api.adobe.io") :], b"{}"),
    ):
        with pytest.raises(MarketoError) as info:
            call()
        captured += [str(info.value), repr(info.value), str(info.value.__cause__ or "")]
    captured += [r.getMessage() for r in caplog.records]
    captured += [caplog.text]
    captured += [repr(x) for x in (client, client.tokens, client.settings, client.limiter)]
    captured += [repr(MarketoBearerAuth(client.tokens)), repr(MarketoIngestionAuth(client.tokens))]
    captured += [r.url for r in requests_mock.request_history]
    assert tokens.call_count >= 3  # the cycle did fetch and refresh tokens
    assert any("Retrying" in r.getMessage() for r in caplog.records)
    text = "\n".join(captured)
    assert SECRET not in text
    assert TOKEN_PREFIX not in text
    assert "access_token" not in text


def test_token_only_travels_in_headers(client, requests_mock, tokens):
    api = requests_mock.get(BASE + PATH, json=envelope())
    client.get(PATH, {"fields": "email"})
    assert TOKEN_PREFIX not in api.last_request.url
    assert api.last_request.headers["Authorization"].startswith("Bearer " + TOKEN_PREFIX)
    assert SECRET not in tokens.last_request.url
