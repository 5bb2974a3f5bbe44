"""Fixtures for marketo_common: fake Marketo over requests-mock, patched sleeps."""

from __future__ import annotations

import itertools
import types

import backoff._sync
import pytest
from marketo_common import MarketoClient, MarketoSettings

from common.common_fakes import BASE, SECRET, TOKEN_PREFIX, TOKEN_URL


@pytest.fixture
def settings():
    return MarketoSettings.from_config(
        {"base_url": BASE, "client_id": "cid", "client_secret": SECRET, "max_retries": 3}
    )


@pytest.fixture
def sleeps(monkeypatch):
    """Every wait backoff asks for, recorded instead of slept."""
    waits: list[float] = []
    # Only backoff's view of `time` changes; the sandbox and the threads keep the real sleep.
    monkeypatch.setattr(backoff._sync, "time", types.SimpleNamespace(sleep=waits.append))
    return waits


@pytest.fixture
def tokens(requests_mock):
    """Identity endpoint handing out distinct tokens; returns the mocker for call counts."""
    counter = itertools.count(1)
    return requests_mock.post(
        TOKEN_URL,
        json=lambda request, context: {
            "access_token": f"{TOKEN_PREFIX}{next(counter)}",
            "token_type": "bearer",
            "expires_in": 3599,
            "scope": "api@example.com",
        },
    )


@pytest.fixture
def client(settings, tokens, sleeps):
    with MarketoClient(settings, user_agent="tests/1.0") as c:
        yield c
