"""Identity: `/identity/oauth/token` (client credentials) and the token check of every API call."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from marketo_sandbox.envelope import JSONResponse, MarketoHTTPError
from marketo_sandbox.family import Family
from marketo_sandbox.state import state_of

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

log = logging.getLogger("marketo_sandbox.identity")


@dataclass(frozen=True)
class ApiUser:
    """A Marketo API-only user: a LaunchPoint service's client id and secret."""

    client_id: str
    client_secret: str
    email: str

    def __repr__(self) -> str:  # never print the secret
        return f"ApiUser(client_id={self.client_id!r}, email={self.email!r})"


class Identity:
    """API users and issued tokens; tokens are also stored so a restart keeps them valid.

    Token lifetimes are wall-clock seconds (option `token_ttl_seconds`), not sandbox time: a
    fast sandbox clock would otherwise expire tokens every few wall seconds. Like Marketo, a
    client asking again before expiry gets the same token with the remaining `expires_in`.
    """

    def __init__(self, store: Any, users: list[ApiUser], options: Any) -> None:
        if not users:
            raise ValueError("at least one API user is needed")
        self.store = store
        self.options = options
        self.users = {u.client_id: u for u in users}
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[str, float]] = {}
        for token, client_id, expires_at in store.db.conn().execute(
            "SELECT token, client_id, expires_at FROM tokens WHERE expires_at > ?", (time.time(),)
        ):
            self._tokens[token] = (client_id, expires_at)

    def issue(self, user: ApiUser) -> tuple[str, int]:
        """The user's current token and its remaining seconds, or a new one."""
        now = time.time()
        with self._lock:
            for token, (client_id, expires_at) in self._tokens.items():
                if client_id == user.client_id and expires_at - now >= 1:
                    return token, int(expires_at - now)
            ttl = int(self.options.get("token_ttl_seconds", 3600))
            token = f"{secrets.token_hex(4)}-{secrets.token_hex(2)}-{secrets.token_hex(2)}-"
            token += f"{secrets.token_hex(2)}-{secrets.token_hex(6)}:sb"
            self._tokens[token] = (user.client_id, now + ttl)
        with self.store.db.tx() as conn:
            conn.execute("DELETE FROM tokens WHERE expires_at < ?", (now - 86400,))
            conn.execute("INSERT INTO tokens VALUES (?, ?, ?)", (token, user.client_id, now + ttl))
        return token, ttl

    def expire_all(self) -> int:
        """Make every issued token expired now (admin), so clients meet 602."""
        now = time.time() - 1
        with self._lock:
            for token, (client_id, _) in list(self._tokens.items()):
                self._tokens[token] = (client_id, now)
            count = len(self._tokens)
        with self.store.db.tx() as conn:
            conn.execute("UPDATE tokens SET expires_at = MIN(expires_at, ?)", (now,))
        return count

    def check(self, token: str) -> ApiUser:
        """The user of a token; MarketoHTTPError 601 (unknown) or 602 (expired)."""
        with self._lock:
            entry = self._tokens.get(token)
        if entry is None:
            raise MarketoHTTPError(601, "Access token invalid")
        client_id, expires_at = entry
        if expires_at <= time.time():
            raise MarketoHTTPError(602, "Access token expired")
        user = self.users.get(client_id)
        if user is None:  # the user was removed from the configuration since
            raise MarketoHTTPError(601, "Access token invalid")
        return user


def _token_from_header(request: Request, header: str) -> str | None:
    value = request.headers.get(header)
    if value is None:
        return None
    value = value.strip()
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    return value or None


def authenticate(
    request: Request,
    *,
    allow_query_token: bool = True,
    header: str = "Authorization",
    form_token: str | None = None,
) -> ApiUser:
    """The API user of this call, or MarketoHTTPError 600 (no token), 601 (unknown), 602 (expired).

    The token comes from `header` (`Authorization: Bearer <t>`; Data Ingestion uses
    `X-Mkto-User-Token`), else, when allowed, from the `access_token` query parameter or a form
    field the caller already parsed (`form_token`, bulk imports' multipart). Marketo stopped
    accepting the query form in 2025; the sandbox accepts it for older clients and logs a
    deprecation warning (without the token). Sets `request.state.api_user`.
    """
    token = _token_from_header(request, header)
    if token is None and allow_query_token:
        token = request.query_params.get("access_token") or form_token
        if token:
            log.warning(
                "deprecated: access token sent as a query/form parameter on %s; "
                "Marketo requires the Authorization: Bearer header since 2025-06-30",
                request.url.path,
            )
    if not token:
        raise MarketoHTTPError(600, "Access token not specified")
    user = state_of(request).identity.check(token)
    request.state.api_user = user
    return user


async def token(request: Request) -> Response:
    """`GET|POST /identity/oauth/token`: client credentials from the query or a form body."""
    params = dict(request.query_params)
    if request.method == "POST":
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
    grant = params.get("grant_type")
    if not grant:
        return _oauth_error(400, "invalid_request", "Missing grant type")
    if grant != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", f"Unsupported grant type: {grant}")
    identity: Identity = state_of(request).identity
    user = identity.users.get(params.get("client_id") or "")
    if user is None or not secrets.compare_digest(
        user.client_secret.encode(), (params.get("client_secret") or "").encode()
    ):
        return _oauth_error(401, "invalid_client", "Bad client credentials")
    request.state.api_user = user
    # issuing writes the token to the db: off the event loop, which must never wait on a lock
    access_token, expires_in = await run_in_threadpool(identity.issue, user)
    return JSONResponse(
        {
            "access_token": access_token,
            "token_type": "bearer",
            "expires_in": expires_in,
            "scope": user.email,
        }
    )


def _oauth_error(status: int, code: str, description: str) -> Response:
    return JSONResponse({"error": code, "error_description": description}, status_code=status)


ROUTES = [Route("/identity/oauth/token", token, methods=["GET", "POST"])]
IDENTITY = Family("identity", routes=ROUTES)
