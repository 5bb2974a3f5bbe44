"""The names and signatures CONTRACT.md promises to the tap and the target."""

from __future__ import annotations

import inspect

import marketo_common
import requests
from marketo_common import (
    ConfigError,
    DailyQuotaExceededError,
    ExportQuotaExceededError,
    IngestionAPIError,
    MarketoAPIError,
    MarketoBearerAuth,
    MarketoClient,
    MarketoError,
    MarketoIngestionAuth,
    MarketoSettings,
    RateLimiter,
    TokenManager,
    TooManyImportsError,
    TooManyJobsError,
)

CONTRACT_NAMES = {
    "MarketoSettings",
    "MarketoClient",
    "TokenManager",
    "MarketoBearerAuth",
    "MarketoIngestionAuth",
    "RateLimiter",
    "ConfigError",
    "MarketoError",
    "MarketoAPIError",
    "IngestionAPIError",
    "TooManyJobsError",
    "ExportQuotaExceededError",
    "TooManyImportsError",
    "DailyQuotaExceededError",
}


def test_every_contract_name_is_exported():
    assert set(marketo_common.__all__) >= CONTRACT_NAMES
    for name in CONTRACT_NAMES:
        assert getattr(marketo_common, name)


def test_hierarchy():
    for cls in (TooManyJobsError, ExportQuotaExceededError, TooManyImportsError):
        assert issubclass(cls, MarketoAPIError)
    assert issubclass(DailyQuotaExceededError, MarketoAPIError)
    assert issubclass(MarketoAPIError, MarketoError)
    assert issubclass(IngestionAPIError, MarketoError)
    assert issubclass(ConfigError, ValueError)
    assert issubclass(MarketoBearerAuth, requests.auth.AuthBase)
    assert issubclass(MarketoIngestionAuth, requests.auth.AuthBase)
    assert TooManyJobsError("x").retryable is True
    assert ExportQuotaExceededError("x").retryable is False
    error = MarketoError("m", code=601, request_id="r", method="GET", path="/p", http_status=200)
    assert (error.code, error.message, error.request_id, error.method, error.path) == (
        "601",
        "m",
        "r",
        "GET",
        "/p",
    )
    assert error.http_status == 200
    ingestion = IngestionAPIError("4000801", "Bad request", http_status=400)
    assert (ingestion.error_code, ingestion.code, ingestion.message) == (
        "4000801",
        "4000801",
        "Bad request",
    )


def test_client_signatures():
    init = inspect.signature(MarketoClient.__init__).parameters
    assert init["user_agent"].kind is inspect.Parameter.KEYWORD_ONLY
    assert init["limiter"].default is None
    assert init["session"].default is None
    assert list(inspect.signature(MarketoClient.get).parameters) == ["self", "path", "params"]
    post = inspect.signature(MarketoClient.post).parameters
    assert [n for n, p in post.items() if p.kind is inspect.Parameter.KEYWORD_ONLY] == [
        "json",
        "data",
        "params",
        "files",
    ]
    assert inspect.signature(MarketoClient.iter_pages).parameters["batch_size"].default is None
    download = inspect.signature(MarketoClient.download).parameters
    assert (download["start"].default, download["end"].default) == (0, None)
    assert inspect.signature(MarketoClient.ingest).parameters["correlation_id"].default is None
    assert callable(MarketoClient.close)


def test_settings_fields_and_limiter_defaults():
    fields = set(MarketoSettings.__dataclass_fields__)
    assert fields == {
        "base_url",
        "client_id",
        "client_secret",
        "munchkin_id",
        "ingestion_base_url",
        "request_timeout",
        "max_retries",
        "max_retry_seconds",
        "rate_limit_calls",
        "rate_limit_period",
        "max_concurrent_calls",
    }
    limiter = RateLimiter()
    assert (limiter.calls, limiter.period, limiter.max_concurrent) == (100, 20.0, 10)
    assert "clock" in inspect.signature(RateLimiter).parameters
    assert "clock" in inspect.signature(TokenManager).parameters
