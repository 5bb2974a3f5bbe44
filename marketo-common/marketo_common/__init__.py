"""Shared Marketo plumbing: auth, HTTP, envelope, errors, retry and rate limits."""

from marketo_common.auth import MarketoBearerAuth, MarketoIngestionAuth, TokenManager
from marketo_common.client import VERSION, MarketoClient
from marketo_common.errors import (
    ConfigError,
    DailyQuotaExceededError,
    ExportQuotaExceededError,
    IngestionAPIError,
    MarketoAPIError,
    MarketoConnectionError,
    MarketoError,
    TooManyImportsError,
    TooManyJobsError,
)
from marketo_common.ratelimit import RateLimiter
from marketo_common.settings import MarketoSettings

__version__ = VERSION

__all__ = [
    "ConfigError",
    "DailyQuotaExceededError",
    "ExportQuotaExceededError",
    "IngestionAPIError",
    "MarketoAPIError",
    "MarketoBearerAuth",
    "MarketoClient",
    "MarketoConnectionError",
    "MarketoError",
    "MarketoIngestionAuth",
    "MarketoSettings",
    "RateLimiter",
    "TokenManager",
    "TooManyImportsError",
    "TooManyJobsError",
    "__version__",
]
