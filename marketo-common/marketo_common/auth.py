"""OAuth 2.0 client credentials for Marketo, and the two ways the token travels."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

import requests
import requests.auth

from marketo_common.errors import MarketoConnectionError, api_error

if TYPE_CHECKING:
    from collections.abc import Callable

    from marketo_common.settings import MarketoSettings

TOKEN_PATH = "/identity/oauth/token"  # noqa: S105 - a path, not a secret
logger = logging.getLogger("marketo_common")


class TokenManager:
    """Thread-safe token cache: one refresh however many threads find the token stale.

    Identity calls do not go through the RateLimiter: Marketo counts REST calls, and a token
    fetched while holding a limiter slot must never wait for another slot.
    """

    def __init__(
        self,
        settings: MarketoSettings,
        *,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
        refresh_margin: float = 60.0,
    ) -> None:
        self._settings = settings
        self._session = session or requests.Session()
        self._clock = clock
        self._refresh_margin = refresh_margin
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0

    def __repr__(self) -> str:
        state = "cached" if self._token else "empty"
        return f"TokenManager(client_id={self._settings.client_id!r}, token={state})"

    def get_token(self) -> str:
        """A token valid for at least the refresh margin; fetched only when needed."""
        with self._lock:
            if self._token is None or self._clock() >= self._refresh_at:
                previous, self._token = self._token, None
                self._token, self._refresh_at = self._fetch(previous)
            return self._token

    def invalidate(self, token: str | None = None) -> None:
        """Forget `token` after Marketo rejected it (601/602); a newer token is kept."""
        with self._lock:
            if token is None or token == self._token:
                self._token = None

    def _fetch(self, previous: str | None) -> tuple[str, float]:
        # The secret travels in the form body only; a query string ends up in access logs.
        form = {
            "grant_type": "client_credentials",
            "client_id": self._settings.client_id,
            "client_secret": self._settings.client_secret,
        }
        context = {"method": "POST", "path": TOKEN_PATH}
        try:
            response = self._session.post(
                self._settings.base_url + TOKEN_PATH,
                data=form,
                timeout=self._settings.request_timeout,
            )
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,  # cut mid-body: retried like a reset
        ) as exc:
            msg = f"token request failed: {type(exc).__name__}"
            raise MarketoConnectionError(msg, **context) from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        token = body.get("access_token") if isinstance(body, dict) else None
        if response.status_code != 200 or not token:  # noqa: PLR2004
            code = body.get("error") if isinstance(body, dict) else None
            message = (body.get("error_description") if isinstance(body, dict) else None) or (
                "no access_token in the identity response"
            )
            raise api_error(
                code,
                f"token request failed: {message}",
                http_status=response.status_code,
                **context,
            )
        expires_in = float(body.get("expires_in") or 0)
        # Marketo hands back the same token, with its remaining life, until it expires. Asking
        # again inside the margin would only repeat that, so the old token is then used to the
        # end; a call that meets the expiry gets 602 and one refresh.
        margin = 0.0 if token == previous else min(self._refresh_margin, expires_in / 4)
        logger.debug("Fetched a Marketo access token valid for %.0f s", expires_in)
        return token, self._clock() + expires_in - margin


class MarketoBearerAuth(requests.auth.AuthBase):
    """`Authorization: Bearer <token>` for REST and bulk; also a singer-sdk authenticator."""

    header = "Authorization"

    def __init__(self, tokens: TokenManager) -> None:
        self.tokens = tokens

    def header_value(self, token: str) -> str:
        """How the token is written into the header."""
        return f"Bearer {token}"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """Set the header on each request, so a refreshed token is picked up."""
        request.headers[self.header] = self.header_value(self.tokens.get_token())
        return request

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.tokens!r})"


class MarketoIngestionAuth(MarketoBearerAuth):
    """`X-Mkto-User-Token: <token>`, the only form the Data Ingestion API accepts."""

    header = "X-Mkto-User-Token"

    def header_value(self, token: str) -> str:
        """The bare token."""
        return token
