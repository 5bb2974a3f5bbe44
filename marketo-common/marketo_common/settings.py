"""Connection settings shared by the tap and the target, validated once at start-up."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from marketo_common.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_INGESTION_BASE_URL = "https://mkto-ingestion-api.adobe.io"
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
MUNCHKIN_RE = re.compile(r"^\d{3}-[A-Z]{3}-\d{3}$")
_MUNCHKIN_HOST_RE = re.compile(r"^(\d{3}-[a-z]{3}-\d{3})\.mktorest\.com$", re.IGNORECASE)
# Users paste the identity or REST endpoint shown in Marketo's admin page; both share the host.
_API_SUFFIXES = ("/rest", "/identity")

# Marketo's REST timeout is 30 s server-side (604 after that); bulk files can stall longer.
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 120.0


@dataclass(frozen=True)
class MarketoSettings:
    """Where and how to reach one Marketo instance; build it with `from_config`."""

    base_url: str
    client_id: str
    client_secret: str = field(repr=False)
    munchkin_id: str | None = None
    ingestion_base_url: str = DEFAULT_INGESTION_BASE_URL
    request_timeout: tuple[float, float] = (DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT)
    max_retries: int = 6
    max_retry_seconds: float = 600.0
    rate_limit_calls: int = 100
    rate_limit_period: float = 20.0
    max_concurrent_calls: int = 10

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> MarketoSettings:
        """Validate and normalise a Singer config; unknown keys belong to the connector."""
        base_url = _url(config, "base_url", required=True)
        munchkin_id = _munchkin_id(config.get("munchkin_id"), base_url)
        defaults = cls.__dataclass_fields__
        return cls(
            base_url=base_url,
            client_id=_text(config, "client_id"),
            client_secret=_text(config, "client_secret"),
            munchkin_id=munchkin_id,
            ingestion_base_url=_url(config, "ingestion_base_url")
            or defaults["ingestion_base_url"].default,
            request_timeout=_timeout(config),
            max_retries=_number(config, "max_retries", defaults, int, minimum=0),
            max_retry_seconds=_number(config, "max_retry_seconds", defaults, float, minimum=0.001),
            rate_limit_calls=_number(config, "rate_limit_calls", defaults, int, minimum=1),
            rate_limit_period=_number(config, "rate_limit_period", defaults, float, minimum=0.001),
            max_concurrent_calls=_number(config, "max_concurrent_calls", defaults, int, minimum=1),
        )


def _text(config: Mapping[str, Any], name: str) -> str:
    value = config.get(name)
    if not isinstance(value, str) or not value.strip():
        # Never echo the value: it may be the client secret.
        raise ConfigError(name, "a non-empty string")
    return value.strip()


def _url(config: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    value = config.get(name)
    if value is None or value == "":
        if required:
            raise ConfigError(name, "a URL like https://123-ABC-456.mktorest.com")
        return None
    if not isinstance(value, str):
        raise ConfigError(name, f"a URL string, got {type(value).__name__}")
    url = value.strip().rstrip("/")
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:
        raise ConfigError(name, "a well-formed URL like https://123-ABC-456.mktorest.com") from None
    # Checked first and never echoed: credentials or a query may hold a secret.
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise ConfigError(name, "a URL without query, fragment or credentials")
    if parts.scheme not in {"http", "https"} or not hostname:
        raise ConfigError(name, f"an https:// URL with a host, got {value!r}")
    if parts.scheme == "http" and hostname not in LOCAL_HOSTS:
        raise ConfigError(name, f"https:// (plain http:// only for localhost), got {value!r}")
    for suffix in _API_SUFFIXES:
        if url.lower().endswith(suffix):
            url = url[: -len(suffix)].rstrip("/")
    return url


def _munchkin_id(given: Any, base_url: str) -> str | None:
    match = _MUNCHKIN_HOST_RE.match(urlsplit(base_url).hostname or "")
    derived = match.group(1).upper() if match else None
    if given is None or given == "":
        return derived
    if not isinstance(given, str) or not MUNCHKIN_RE.match(given.strip().upper()):
        raise ConfigError("munchkin_id", f"an id like 123-ABC-456, got {given!r}")
    munchkin_id = given.strip().upper()
    if derived and derived != munchkin_id:
        raise ConfigError("munchkin_id", f"{derived} to match base_url, got {munchkin_id}")
    return munchkin_id


def _timeout(config: Mapping[str, Any]) -> tuple[float, float]:
    """Accept `request_timeout` ([connect, read] or one number) or the connectors' seconds key."""
    for name in ("request_timeout", "request_timeout_seconds"):
        value = config.get(name)
        if value is None:
            continue
        if isinstance(value, (list, tuple)) and len(value) == 2:  # noqa: PLR2004
            connect, read = (_positive(name, v) for v in value)
            return (connect, read)
        read = _positive(name, value)
        return (min(DEFAULT_CONNECT_TIMEOUT, read), read)
    return (DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT)


def _positive(name: str, value: Any) -> float:
    try:
        number = float(value) if not isinstance(value, bool) else -1.0
    except (TypeError, ValueError):
        number = -1.0
    if number <= 0:
        raise ConfigError(name, f"a positive number of seconds, got {value!r}")
    return number


def _number(
    config: Mapping[str, Any],
    name: str,
    defaults: Mapping[str, Any],
    kind: type[int | float],
    *,
    minimum: float,
) -> Any:
    value = config.get(name)
    if value is None:
        return defaults[name].default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = None
    expected = "an integer" if kind is int else "a number"
    if isinstance(value, bool) or number is None or (kind is int and not number.is_integer()):
        raise ConfigError(name, f"{expected}, got {value!r}")
    if number < minimum:
        raise ConfigError(name, f"{expected} >= {minimum:g}, got {value!r}")
    return kind(number)
