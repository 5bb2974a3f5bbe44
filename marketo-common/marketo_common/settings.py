"""Connection settings shared by the tap and the target: declared once, validated at start-up.

`CONNECTION_SETTINGS` are `declarations.Setting`s: a connector puts the ones it offers into
its `config_jsonschema` (`declarations.to_jsonschema`), and `MarketoSettings.from_config`
validates them all.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from marketo_common.declarations import Setting, validate
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


def _parse_url(value: Any, name: str) -> str:
    try:
        return _url({name: value}, name, required=True) or ""
    except ConfigError as exc:
        raise ValueError(exc.expected) from None


def _parse_munchkin_id(value: Any) -> str:
    if not isinstance(value, str) or not MUNCHKIN_RE.match(value.strip().upper()):
        raise ValueError(f"an id like 123-ABC-456, got {value!r}")
    return value.strip().upper()


def _parse_seconds(value: Any) -> float:
    try:
        number = float(value) if not isinstance(value, bool) else -1.0
    except (TypeError, ValueError):
        number = -1.0
    if number <= 0 or math.isnan(number):
        raise ValueError(f"a positive number of seconds, got {value!r}")
    return number


def _parse_timeout_pair(value: Any) -> tuple[float, float]:
    if isinstance(value, (list, tuple)) and len(value) == 2:  # noqa: PLR2004
        return (_parse_seconds(value[0]), _parse_seconds(value[1]))
    read = _parse_seconds(value)
    return (min(DEFAULT_CONNECT_TIMEOUT, read), read)


# The connection settings both connectors share, declared once (`declarations.Setting`).
CLIENT_ID = Setting("client_id", str, required=True, description="Marketo API client id.")
CLIENT_SECRET = Setting(
    "client_secret",
    str,
    required=True,
    secret=True,
    description="Marketo API client secret (never logged).",
)
BASE_URL = Setting(
    "base_url",
    str,
    required=True,
    parse=lambda v: _parse_url(v, "base_url"),
    description=(
        "REST endpoint, e.g. https://123-ABC-456.mktorest.com (a trailing /rest or "
        "/identity is removed). http:// only for localhost."
    ),
)
MUNCHKIN_ID = Setting(
    "munchkin_id",
    str,
    parse=_parse_munchkin_id,
    description="Munchkin id; derived from base_url if unset.",
)
INGESTION_BASE_URL = Setting(
    "ingestion_base_url",
    str,
    default=DEFAULT_INGESTION_BASE_URL,
    parse=lambda v: _parse_url(v, "ingestion_base_url"),
    description="Data Ingestion API host (Adobe I/O).",
)
REQUEST_TIMEOUT_SECONDS = Setting(
    "request_timeout_seconds",
    float,
    parse=_parse_timeout_pair,
    description="HTTP read timeout in seconds.",
)
# Also accepted: [connect, read] or one number (older configs and direct library use).
REQUEST_TIMEOUT = Setting(
    "request_timeout",
    float,
    parse=_parse_timeout_pair,
    description="HTTP timeouts: [connect, read] seconds, or one read timeout.",
)
MAX_RETRIES = Setting(
    "max_retries",
    int,
    default=6,
    minimum=0,
    description="Retries of a failed Marketo call (default 6).",
)
MAX_RETRY_SECONDS = Setting(
    "max_retry_seconds",
    float,
    default=600,
    minimum=0.001,
    description="Advanced: stop retrying one call after this many seconds (default 600).",
)
RATE_LIMIT_CALLS = Setting(
    "rate_limit_calls",
    int,
    default=100,
    minimum=1,
    description="Advanced: REST calls allowed per rate_limit_period (Marketo: 100).",
)
RATE_LIMIT_PERIOD = Setting(
    "rate_limit_period",
    float,
    default=20,
    minimum=0.001,
    description="Advanced: the rate-limit window in seconds (Marketo: 20).",
)
MAX_CONCURRENT_CALLS = Setting(
    "max_concurrent_calls",
    int,
    default=10,
    minimum=1,
    description="Advanced: REST calls in flight at once (Marketo: 10).",
)
CONNECTION_SETTINGS = (
    CLIENT_ID,
    CLIENT_SECRET,
    BASE_URL,
    MUNCHKIN_ID,
    INGESTION_BASE_URL,
    REQUEST_TIMEOUT_SECONDS,
    REQUEST_TIMEOUT,
    MAX_RETRIES,
    MAX_RETRY_SECONDS,
    RATE_LIMIT_CALLS,
    RATE_LIMIT_PERIOD,
    MAX_CONCURRENT_CALLS,
)


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
        # base_url first: the other errors (and munchkin_id's check) read better after it.
        values = validate(config, sorted(CONNECTION_SETTINGS, key=lambda s: s is not BASE_URL))
        base_url = values["base_url"]
        match = _MUNCHKIN_HOST_RE.match(urlsplit(base_url).hostname or "")
        derived = match.group(1).upper() if match else None
        munchkin_id = values["munchkin_id"]
        if munchkin_id and derived and derived != munchkin_id:
            raise ConfigError("munchkin_id", f"{derived} to match base_url, got {munchkin_id}")
        timeout = values["request_timeout"] or values["request_timeout_seconds"]
        return cls(
            base_url=base_url,
            client_id=values["client_id"],
            client_secret=values["client_secret"],
            munchkin_id=munchkin_id or derived,
            ingestion_base_url=values["ingestion_base_url"],
            request_timeout=timeout or (DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT),
            max_retries=values["max_retries"],
            max_retry_seconds=float(values["max_retry_seconds"]),
            rate_limit_calls=values["rate_limit_calls"],
            rate_limit_period=float(values["rate_limit_period"]),
            max_concurrent_calls=values["max_concurrent_calls"],
        )


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
