"""marketo_common against the sandbox server: real HTTP, real tokens, injected faults."""

from __future__ import annotations

import contextlib
import logging

import pytest
from marketo_common import (
    MarketoAPIError,
    MarketoClient,
    MarketoError,
    MarketoSettings,
    RateLimiter,
)

DESCRIBE = "/rest/v1/leads/describe2.json"
SECRET = "sb-secret-7c1f0d9e"


@pytest.fixture
def strict(sandbox_factory):
    return sandbox_factory(seed=None, strict=True, client_secret=SECRET)


def test_full_auth_and_retry_cycle_without_leaking(strict, sleeps, caplog):
    caplog.set_level(logging.DEBUG)
    settings = MarketoSettings.from_config(strict.config)
    with MarketoClient(settings, user_agent="tests/1.0") as client:
        assert client.get(DESCRIBE)["result"]
        first = client.tokens.get_token()
        for kind in ("token_invalid", "token_expired", "rate_limit", "concurrency", "http_503",
                     "http_502", "reset"):  # fmt: skip
            strict.admin.inject_fault(DESCRIBE, kind)
        strict.admin.expire_tokens()  # a real 602 as well
        for _ in range(3):
            assert client.get(DESCRIBE)["result"]
        second = client.tokens.get_token()
        assert second != first
        # The ingestion flavour (HTTP 401, 401013): refreshed and resent once, whatever the
        # ingestion routes then answer.
        strict.admin.inject_fault("/subscriptions/*", "token_expired")
        with contextlib.suppress(MarketoError):
            client.ingest("/subscriptions/{munchkinId}/persons", {"input": []})
    calls = strict.admin.dump("calls")
    ingest = [c["code"] for c in calls if c["path"].startswith("/subscriptions/")]
    assert len(ingest) == 2
    assert ingest[0] == "401013"
    codes = [c["code"] for c in calls if c["path"] == DESCRIBE]
    assert {"601", "602", "606", "615"} <= set(codes)
    assert any("Retrying" in r.getMessage() for r in caplog.records)
    text = caplog.text + "\n".join(str(c) for c in calls) + strict.log()
    for secret in (SECRET, first, second):
        assert secret not in text


class WouldWait(Exception):  # noqa: N818 - a signal, not an error
    pass


def _refuse_to_wait(seconds):
    raise WouldWait(seconds)


def test_limiter_keeps_within_the_sandbox_rate_limit(strict, sleeps):
    strict.admin.set_options(rest_calls_per_20s=5)
    settings = MarketoSettings.from_config(strict.config)
    ours = RateLimiter(5, 20.0, 10, sleep=_refuse_to_wait)
    with MarketoClient(settings, user_agent="tests/1.0", limiter=ours) as client:
        for _ in range(5):
            client.get(DESCRIBE)
        with pytest.raises(WouldWait) as info:  # the sixth call waits on our side...
            client.get(DESCRIBE)
    assert 19.0 < info.value.args[0] <= 20.0
    codes = [c["code"] for c in strict.admin.dump("calls") if c["path"] == DESCRIBE]
    assert codes == [None] * 5  # ...and Marketo never answered 606

    # The control: a limiter looser than Marketo's lets the sixth call trip 606, retried in vain.
    client = MarketoClient(settings, user_agent="tests/1.0", limiter=RateLimiter(100))
    with pytest.raises(MarketoAPIError) as info:
        client.get(DESCRIBE)
    assert info.value.code == "606"
    assert info.value.attempts == settings.max_retries + 1


def test_token_answer_cut_mid_body_is_retried(strict, sleeps):
    """Found by the chaos soak: a connection reset while the identity answer's body was read
    (IncompleteRead, raised as ChunkedEncodingError) escaped the retry and ended the run."""
    settings = MarketoSettings.from_config(strict.config)
    strict.admin.inject_fault("/identity/oauth/token", "reset")
    with MarketoClient(settings, user_agent="tests/1.0") as client:
        assert client.get(DESCRIBE)["result"]
    tokens = [c for c in strict.admin.dump("calls") if c["path"] == "/identity/oauth/token"]
    assert len(tokens) == 2
