"""Marketo's error codes turned into one exception hierarchy, classified retryable or fatal.

Codes are kept as strings, the way Marketo sends them (`"601"`, `"1029"`, `"4290801"`).
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

# Retried with backoff (601/602 first get one token refresh, see TOKEN_CODES).
RETRYABLE_CODES = frozenset(
    {
        "601",  # access token invalid
        "602",  # access token expired
        "604",  # request timed out
        "606",  # max rate limit exceeded
        "608",  # API temporarily unavailable
        "611",  # system error
        "614",  # subscription temporarily unreachable (field notes: retry)
        "615",  # concurrent access limit reached
        "1016",  # too many imports
        "1029",  # too many jobs in queue (the quota flavour is told apart below)
        "429001",  # Data Ingestion: rate limit
        "4290801",  # Data Ingestion: rate or quota
        "5000801",  # Data Ingestion: internal error
    }
)
TOKEN_CODES = frozenset({"601", "602"})
QUOTA_RESET_HINT = "the quota resets at midnight US Central time"


class ConfigError(ValueError):
    """A bad setting: one line naming the setting and what is expected, never a secret."""

    def __init__(self, setting: str, expected: str, *, message: str | None = None) -> None:
        self.setting = setting
        self.expected = expected
        # `message`: the whole line, for a connector whose messages read `path: what is wrong`
        # (e.g. the target's nested `streams.<name>.<option>` settings); it names the setting.
        self.message = message
        super().__init__(message or f"Invalid setting {setting!r}: expected {expected}")


class MarketoError(Exception):
    """Any failed Marketo call; carries what a user needs to find it in Marketo's logs."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        request_id: str | None = None,
        method: str | None = None,
        path: str | None = None,
        http_status: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = None if code is None else str(code)
        self.request_id = request_id
        self.method = method
        self.path = path
        self.http_status = http_status
        if retryable is not None:
            self.retryable = retryable
        self.retry_after = retry_after
        self.attempts = 1

    def __str__(self) -> str:
        head = f"[{self.code}] {self.message}" if self.code else self.message
        where = [f"{self.method} {self.path}"] if self.method else []
        if self.http_status is not None:
            where.append(f"HTTP {self.http_status}")
        if self.request_id:
            where.append(f"requestId {self.request_id}")
        if self.attempts > 1:
            where.append(f"gave up after {self.attempts} attempts")
        return f"{head} ({', '.join(where)})" if where else head

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class MarketoAPIError(MarketoError):
    """REST or bulk call answered with `success: false` or a non-200 status."""


class MarketoConnectionError(MarketoError):
    """No usable answer: connection refused or reset, or a connect/read timeout."""

    retryable = True


class IngestionAPIError(MarketoError):
    """Data Ingestion call answered with a non-202 status and `{error_code, message}`."""

    def __init__(self, error_code: str | None, message: str, **context: Any) -> None:
        super().__init__(message, code=error_code, **context)

    @property
    def error_code(self) -> str | None:
        """Data Ingestion's own name for the code."""
        return self.code


class TooManyJobsError(MarketoAPIError):
    """1029: the bulk queue (2 running, 10 queued per subscription) is full; try later."""

    retryable = True


class ExportQuotaExceededError(MarketoAPIError):
    """1029: the daily bulk export quota is used up; retrying today cannot succeed."""

    retryable = False


class TooManyImportsError(MarketoAPIError):
    """1016: too many import jobs queued; wait for a slot and resubmit."""

    retryable = True


class DailyQuotaExceededError(MarketoAPIError):
    """607: the daily REST request quota is used up; stop cleanly until tomorrow."""

    retryable = False


def api_error(
    code: str | None,
    message: str,
    *,
    http_status: int | None = None,
    **context: Any,
) -> MarketoAPIError:
    """Build the right subclass and retry flag for a REST/bulk failure."""
    code = None if code is None else str(code)
    if code == "1029":
        if "quota" in message.lower():
            return ExportQuotaExceededError(
                f"{message}; {QUOTA_RESET_HINT}", code=code, http_status=http_status, **context
            )
        return TooManyJobsError(message, code=code, http_status=http_status, **context)
    if code == "1016":
        return TooManyImportsError(message, code=code, http_status=http_status, **context)
    if code == "607":
        return DailyQuotaExceededError(
            f"{message}; {QUOTA_RESET_HINT}", code=code, http_status=http_status, **context
        )
    retryable = code in RETRYABLE_CODES or _retryable_status(http_status)
    return MarketoAPIError(
        message, code=code, http_status=http_status, retryable=retryable, **context
    )


def ingestion_error(
    code: str | None, message: str, *, http_status: int, **context: Any
) -> IngestionAPIError:
    """Classify a Data Ingestion failure: 429, 5xx and their codes retry, the rest is fatal.

    A daily object quota (4290801 "... quota ...") also answers 429, but retrying cannot help
    before the day ends: like 1029's quota flavour it is told apart by its message.
    """
    retryable = (code is not None and str(code) in RETRYABLE_CODES) or _retryable_status(
        http_status
    )
    # A 401 (401013) that outlived the fresh token the client already fetched is retried like
    # 601/602 on REST: each try fetches a new token, and tries are bounded. 4030801 (403, no
    # permission) stays fatal.
    retryable = retryable or http_status == 401  # noqa: PLR2004
    if "quota" in message.lower():
        retryable = False
    return IngestionAPIError(code, message, http_status=http_status, retryable=retryable, **context)


def _retryable_status(http_status: int | None) -> bool:
    return http_status is not None and (http_status == 429 or http_status >= 500)  # noqa: PLR2004


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
