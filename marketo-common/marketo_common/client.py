"""The one HTTP entry point to Marketo: session, auth, limiter, retry and envelope checks."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import random
import threading
from importlib import metadata
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import backoff
import requests
from requests.adapters import HTTPAdapter

from marketo_common.auth import MarketoBearerAuth, MarketoIngestionAuth, TokenManager
from marketo_common.errors import (
    TOKEN_CODES,
    ConfigError,
    MarketoAPIError,
    MarketoConnectionError,
    MarketoError,
    api_error,
    ingestion_error,
    parse_retry_after,
)
from marketo_common.ratelimit import RateLimiter

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterator, Mapping
    from pathlib import Path

    from typing_extensions import Self

    from marketo_common.auth import MarketoBearerAuth as _Auth
    from marketo_common.settings import MarketoSettings

logger = logging.getLogger("marketo_common")

try:
    VERSION = metadata.version("marketo-common")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    VERSION = "0+unknown"

# Marketo answers 414 above 8 KB of URL; past this we resend as POST with _method=GET.
MAX_GET_URL = 7_000
#: data-ingestion.md, "Headers": X-Request-Source is at most 50 characters, X-Correlation-Id 255.
MAX_REQUEST_SOURCE = 50
_TRANSPORT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


class MarketoClient:
    """Every call to Marketo goes through here, so limits, retries and errors behave alike."""

    # Equal-jitter exponential backoff: attempt n waits between 2**n/2 and 2**n seconds, capped.
    backoff_factor = 1.0
    backoff_max = 60.0

    def __init__(
        self,
        settings: MarketoSettings,
        *,
        user_agent: str,
        limiter: RateLimiter | None = None,
        session: requests.Session | None = None,
        tokens: TokenManager | None = None,
    ) -> None:
        self.settings = settings
        self.limiter = limiter or RateLimiter(
            settings.rate_limit_calls, settings.rate_limit_period, settings.max_concurrent_calls
        )
        self._own_session = session is None
        self.session = session or self._new_session(self.limiter.max_concurrent)
        self.user_agent = f"{user_agent} marketo-common/{VERSION}"
        self.tokens = tokens or TokenManager(settings, session=self.session)
        self._bearer = MarketoBearerAuth(self.tokens)
        self._ingestion_auth = MarketoIngestionAuth(self.tokens)
        self._calls_lock = threading.Lock()
        self._last_call = threading.local()
        self.calls_made = 0

    def __repr__(self) -> str:
        return f"MarketoClient({self.settings.base_url!r}, calls_made={self.calls_made})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the session if this client made it."""
        if self._own_session:
            self.session.close()

    # ----------------------------------------------------------------- REST and bulk JSON

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict:
        """GET a REST or bulk JSON endpoint; returns the whole envelope."""
        url = self.settings.base_url + path
        # Marketo takes several values as one comma-separated parameter, never repeated keys.
        params = {k: _joined(v) for k, v in params.items()} if params else params
        if params and len(requests.Request("GET", url, params=params).prepare().url) > MAX_GET_URL:
            # Marketo's documented workaround for 414: POST the query as a form body.
            return self._retry(
                self._json_call, "POST", path, {"params": {"_method": "GET"}, "data": params}
            )
        return self._retry(self._json_call, "GET", path, {"params": params})

    def post(
        self,
        path: str,
        *,
        json: Any = None,
        data: Any = None,
        params: Mapping[str, Any] | None = None,
        files: Any = None,
    ) -> dict:
        """POST to a REST or bulk JSON endpoint; returns the whole envelope."""
        kwargs = {"json": json, "data": data, "params": params, "files": files}
        return self._retry(self._json_call, "POST", path, kwargs)

    def iter_pages(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        batch_size: int | None = None,
    ) -> Iterator[dict]:
        """Yield result items across pages: `nextPageToken` where given, else `offset`."""
        query = dict(params or {})
        if batch_size is not None:
            query["batchSize"] = batch_size
        while True:
            envelope = self.get(path, query)
            result = envelope.get("result") or []
            yield from result
            token = envelope.get("nextPageToken")
            more = envelope.get("moreResult", bool(token))
            if not more or not result:
                return
            if token:
                query["nextPageToken"] = token
            else:
                query["offset"] = int(query.get("offset", 0)) + len(result)

    def download(self, path: str, *, start: int = 0, end: int | None = None) -> requests.Response:
        """Open a bulk file for streaming (caller closes); retried only until the body starts."""
        headers = {}
        if start or end is not None:
            headers["Range"] = f"bytes={start}-{'' if end is None else end}"
        return self._retry(self._download_call, path, headers)

    def save_file(self, path: str, dest: Path) -> int:
        """Download a small bulk file (an import's failures or warnings) whole into `dest`.

        `download` retries only until the body starts; a connection that breaks inside the body
        (the chaos soak's resets) fetches the file again from the start, up to `max_retries`
        times. Returns the bytes written.
        """
        for attempt in itertools.count(1):
            response = self.download(path)
            try:
                with dest.open("wb") as out:
                    for chunk in response.iter_content(chunk_size=1 << 16):
                        out.write(chunk)
                    return out.tell()
            except _TRANSPORT_ERRORS as exc:
                if attempt > self.settings.max_retries:
                    msg = f"no answer from Marketo: {type(exc).__name__} while reading the file"
                    raise MarketoConnectionError(msg, method="GET", path=path) from None
                logger.info(
                    "GET %s broke inside the body (%s); fetching it again (attempt %d of %d)",
                    path,
                    type(exc).__name__,
                    attempt + 1,
                    self.settings.max_retries + 1,
                )
            finally:
                response.close()
        raise AssertionError  # pragma: no cover

    # ----------------------------------------------------------------- Data Ingestion

    def ingest(self, path: str, body: bytes | dict, *, correlation_id: str | None = None) -> str:
        """POST to the Data Ingestion API; returns X-Request-Id (202 means accepted, not applied).

        `{munchkinId}` in `path` is filled from the settings.
        """
        if "{munchkinId}" in path:
            if not self.settings.munchkin_id:
                raise ConfigError("munchkin_id", "the Munchkin id (123-ABC-456) for Data Ingestion")
            path = path.replace("{munchkinId}", self.settings.munchkin_id)
        if not isinstance(body, bytes):
            body = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        source = self.user_agent[:MAX_REQUEST_SOURCE]
        headers = {"Content-Type": "application/json", "X-Request-Source": source}
        if correlation_id:
            headers["X-Correlation-Id"] = correlation_id
        return self._retry(self._ingest_call, path, body, headers)

    # ----------------------------------------------------------------- one attempt each

    def _json_call(self, method: str, path: str, kwargs: dict) -> dict:
        _rewind(kwargs.get("files"))
        response = self._authorized(self._bearer, method, self.settings.base_url, path, **kwargs)
        return _envelope(method, path, response)

    def _download_call(self, path: str, headers: dict) -> requests.Response:
        response = self._authorized(
            self._bearer, "GET", self.settings.base_url, path, headers=headers, stream=True
        )
        kind = response.headers.get("Content-Type", "")
        if response.status_code in {200, 206} and "json" not in kind:
            return response
        try:  # An error envelope instead of the file: small, read it whole.
            _envelope("GET", path, response)
        finally:
            response.close()
        msg = f"expected a file but got {kind or 'no content type'} (HTTP {response.status_code})"
        raise MarketoAPIError(msg, method="GET", path=path, http_status=response.status_code)

    def _ingest_call(self, path: str, body: bytes, headers: dict) -> str:
        response = self._authorized(
            self._ingestion_auth,
            "POST",
            self.settings.ingestion_base_url,
            path,
            headers=headers,
            data=body,
            limited=False,
        )
        request_id = response.headers.get("X-Request-Id")
        if response.status_code == 202:  # noqa: PLR2004
            return request_id or ""
        raise _ingestion_failure(path, response)

    def _authorized(
        self,
        auth: _Auth,
        method: str,
        base: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        *,
        limited: bool = True,
        **kwargs: Any,
    ) -> requests.Response:
        """Send once; on 601/602 (or HTTP 401) fetch a new token and send once more."""
        for refreshed in (False, True):
            token = self.tokens.get_token()
            sent = {**(headers or {}), auth.header: auth.header_value(token)}
            response = self._send(method, base + path, path, sent, limited=limited, **kwargs)
            if not _token_rejected(response, streamed=kwargs.get("stream", False)):
                break
            # Never reuse a token Marketo refused, also when this attempt gives up on it: the
            # retry that follows then starts with a fresh one.
            self.tokens.invalidate(token)
            if refreshed:
                break
            logger.info(
                "Marketo rejected the access token on %s %s; fetching a new one", method, path
            )
            response.close()
        return response

    def _send(
        self,
        method: str,
        url: str,
        path: str,
        headers: Mapping[str, str],
        *,
        limited: bool,
        **kwargs: Any,
    ) -> requests.Response:
        # Data Ingestion is a separate service with its own limits (5,000 requests/s per
        # client id); Marketo's 100 calls / 20 s and 10 at once are the instance's REST limits.
        with self.limiter if limited else contextlib.nullcontext():
            with self._calls_lock:
                self.calls_made += 1
            try:
                return self.session.request(
                    method,
                    url,
                    headers={"User-Agent": self.user_agent, **headers},
                    timeout=self.settings.request_timeout,
                    **kwargs,
                )
            except requests.exceptions.SSLError as exc:
                # A certificate problem does not heal by retrying; say so at once.
                msg = (
                    f"TLS handshake with {urlsplit(url).hostname} failed: {exc.__class__.__name__}"
                )
                raise MarketoConnectionError(
                    msg, method=method, path=path, retryable=False
                ) from exc
            except _TRANSPORT_ERRORS as exc:
                # Retried even for POST: a read timeout may hide a request Marketo did run, but
                # every call we make is safe to repeat (upserts, or jobs the caller reconciles).
                msg = f"no answer from Marketo: {type(exc).__name__}"
                raise MarketoConnectionError(msg, method=method, path=path) from exc

    # ----------------------------------------------------------------- retry

    def maybe_ran_twice(self) -> bool:
        """Whether this thread's last call was retried after an attempt Marketo may have run.

        A connection that broke before the answer, or a 5xx, can hide a request Marketo did
        run: the retry then runs it again. That is harmless for upserts; a caller that creates
        something (an export job) checks this to find what the lost attempt created.
        """
        return getattr(self._last_call, "maybe_ran", False)

    def _retry(self, call: Callable[..., Any], *args: Any) -> Any:
        self._last_call.maybe_ran = False
        retrying = backoff.on_exception(
            self._waits,
            MarketoError,
            max_tries=self.settings.max_retries + 1,
            max_time=self.settings.max_retry_seconds,
            jitter=None,
            giveup=lambda exc: not exc.retryable,
            on_backoff=self._log_retry,
            on_giveup=self._log_giveup,
            logger=None,
        )
        return retrying(call)(*args)

    def _waits(self) -> Generator[float, Any, None]:
        exc = yield 0
        for attempt in itertools.count():
            ceiling = min(self.backoff_max, self.backoff_factor * 2**attempt)
            wait = ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not crypto
            if getattr(exc, "retry_after", None):
                wait = max(wait, exc.retry_after)
            exc = yield wait

    def _log_retry(self, details: Mapping[str, Any]) -> None:
        exc = details["exception"]
        status = getattr(exc, "http_status", None)
        if isinstance(exc, MarketoConnectionError) or (status is not None and status >= 500):  # noqa: PLR2004
            self._last_call.maybe_ran = True
        logger.info(
            "Retrying %s %s after %s; waiting %.1f s (attempt %d of %d)",
            exc.method,
            exc.path,
            _reason(exc),
            details["wait"],
            details["tries"] + 1,
            self.settings.max_retries + 1,
        )

    def _log_giveup(self, details: Mapping[str, Any]) -> None:
        exc = details["exception"]
        exc.attempts = details["tries"]
        if exc.retryable:
            logger.warning(
                "Giving up on %s %s after %d attempts: %s",
                exc.method,
                exc.path,
                exc.attempts,
                _reason(exc),
            )

    @staticmethod
    def _new_session(pool_size: int) -> requests.Session:
        session = requests.Session()
        # One pool per host (REST/identity, ingestion); as many connections as calls may run.
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session


def _envelope(method: str, path: str, response: requests.Response) -> dict:
    """Return the JSON envelope, or raise the classified error it (or the status) carries."""
    try:
        body = response.json()
    except ValueError:
        body = None
    envelope = body if isinstance(body, dict) else {}
    errors = envelope.get("errors") or [{}]
    first = errors[0] if isinstance(errors[0], dict) else {}
    context = {
        "method": method,
        "path": path,
        "request_id": envelope.get("requestId"),
        "http_status": response.status_code,
        "retry_after": parse_retry_after(response.headers.get("Retry-After")),
    }
    if response.status_code != 200:  # noqa: PLR2004
        message = first.get("message") or f"HTTP {response.status_code} {response.reason or ''}"
        raise api_error(first.get("code"), message.strip(), **context)
    if envelope.get("success") is not True:
        message = first.get("message") or (
            "success is false" if body is not None else "reply is not Marketo's JSON envelope"
        )
        raise api_error(first.get("code"), message, **context)
    return envelope


def _ingestion_failure(path: str, response: requests.Response) -> MarketoError:
    try:
        body = response.json()
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else {}
    return ingestion_error(
        body.get("error_code"),
        body.get("message") or f"HTTP {response.status_code} {response.reason or ''}".strip(),
        http_status=response.status_code,
        method="POST",
        path=path,
        request_id=response.headers.get("X-Request-Id"),
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
    )


def _token_rejected(response: requests.Response, *, streamed: bool) -> bool:
    """601/602 in a REST envelope or a Data Ingestion body, or a plain HTTP 401."""
    if response.status_code == 401:  # noqa: PLR2004
        return True
    if streamed and "json" not in response.headers.get("Content-Type", ""):
        return False  # a file is on its way; reading it here would load it whole
    try:
        body = response.json()
    except ValueError:
        return False
    if not isinstance(body, dict):
        return False
    codes = [e.get("code") for e in body.get("errors") or [] if isinstance(e, dict)]
    codes.append(body.get("error_code"))
    return any(str(code) in TOKEN_CODES for code in codes)


def _reason(exc: MarketoError) -> str:
    if exc.code:
        return f"code {exc.code} ({exc.message})"
    if exc.http_status:
        return f"HTTP {exc.http_status}"
    return exc.message


def _joined(value: Any) -> Any:
    if isinstance(value, (list, tuple, set, frozenset)):
        return ",".join(str(v) for v in value)
    return value


def _rewind(files: Any) -> None:
    """Put uploaded file objects back at the start before a retry resends them."""
    if not isinstance(files, dict):
        return
    for value in files.values():
        handle = value[1] if isinstance(value, tuple) else value
        if hasattr(handle, "seek") and getattr(handle, "seekable", lambda: False)():
            handle.seek(0)
