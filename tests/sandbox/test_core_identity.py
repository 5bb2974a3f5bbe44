"""Identity: token endpoint, token checks (600/601/602), query tokens, several API users."""

from __future__ import annotations

import time

import pytest
import requests
from marketo_sandbox.server import SandboxServer
from sandbox_helpers import error

TOKEN = "/identity/oauth/token"
DESCRIBE = "/rest/v1/programs/members/describe.json"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    db = tmp_path_factory.mktemp("identity") / "sandbox.db"
    with SandboxServer(
        db, seed="demo", time_scale=60, api_users=[("second-user", "second-secret")]
    ) as sb:
        yield sb


def credentials(server: SandboxServer, **over: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": server.client_id,
        "client_secret": server.client_secret,
        **over,
    }


def test_get_token(server: SandboxServer) -> None:
    reply = requests.get(server.base_url + TOKEN, params=credentials(server), timeout=10)
    assert reply.status_code == 200
    body = reply.json()
    assert body["token_type"] == "bearer"
    assert 3590 <= body["expires_in"] <= 3600
    assert body["scope"]
    assert body["access_token"]


def test_post_token_with_form_body_returns_the_same_live_token(server: SandboxServer) -> None:
    first = requests.post(server.base_url + TOKEN, data=credentials(server), timeout=10).json()
    second = requests.post(server.base_url + TOKEN, data=credentials(server), timeout=10).json()
    assert first["access_token"] == second["access_token"]
    assert second["expires_in"] <= first["expires_in"]


def test_wrong_secret_is_401_invalid_client(server: SandboxServer) -> None:
    reply = requests.get(
        server.base_url + TOKEN, params=credentials(server, client_secret="nope"), timeout=10
    )
    assert reply.status_code == 401
    assert reply.json()["error"] == "invalid_client"
    assert "error_description" in reply.json()
    unknown = requests.get(
        server.base_url + TOKEN, params=credentials(server, client_id="who"), timeout=10
    )
    assert unknown.status_code == 401


def test_grant_type_is_checked(server: SandboxServer) -> None:
    missing = {"client_id": server.client_id, "client_secret": server.client_secret}
    reply = requests.get(server.base_url + TOKEN, params=missing, timeout=10)
    assert reply.status_code == 400
    reply = requests.get(
        server.base_url + TOKEN, params=credentials(server, grant_type="password"), timeout=10
    )
    assert reply.status_code == 400
    assert reply.json()["error"] == "unsupported_grant_type"


def test_several_api_users(server: SandboxServer, rest) -> None:
    token = rest.token("second-user", "second-secret")
    assert token != rest.token()
    reply = rest.get(DESCRIBE, headers={"Authorization": f"Bearer {token}"})
    assert reply.json()["success"] is True
    calls = [c for c in server.admin.dump("calls") if c["path"] == DESCRIBE]
    assert calls[-1]["clientId"] == "second-user"


def test_missing_unknown_tokens(rest) -> None:
    assert error(rest.get(DESCRIBE, auth=False))[0] == "600"
    bad = {"Authorization": "Bearer not-a-token"}
    assert error(rest.get(DESCRIBE, headers=bad))[0] == "601"


def test_query_token_accepted_with_deprecation_warning_and_redacted(
    server: SandboxServer, rest
) -> None:
    token = rest.token()
    reply = rest.get(DESCRIBE, params={"access_token": token}, auth=False)
    assert reply.json()["success"] is True
    time.sleep(0.05)
    log = server.log()
    assert "deprecated: access token sent as a query/form parameter" in log
    assert token not in log
    calls = server.admin.dump("calls")
    assert any("access_token=REDACTED" in c["query"] for c in calls)
    assert all(token not in str(c) for c in calls)


def test_token_expiry_gives_602_then_a_new_token(server: SandboxServer, rest) -> None:
    server.admin.expire_tokens()
    server.admin.set_options(token_ttl_seconds=1)
    try:
        token = rest.token()
        reply = requests.post(server.base_url + TOKEN, data=credentials(server), timeout=10).json()
        assert reply["expires_in"] <= 1
        assert rest.get(DESCRIBE, headers={"Authorization": f"Bearer {token}"}).json()["success"]
        time.sleep(1.1)
        assert error(rest.get(DESCRIBE, headers={"Authorization": f"Bearer {token}"}))[0] == "602"
    finally:
        server.admin.set_options(token_ttl_seconds=3600)
    fresh = rest.token()
    assert fresh != token
    ok = rest.get(DESCRIBE, headers={"Authorization": f"Bearer {fresh}"})
    assert ok.json()["success"] is True


def test_admin_expire_tokens(server: SandboxServer, rest) -> None:
    token = rest.token()
    assert rest.get(DESCRIBE, headers={"Authorization": f"Bearer {token}"}).json()["success"]
    assert server.admin.expire_tokens() >= 1
    assert error(rest.get(DESCRIBE, headers={"Authorization": f"Bearer {token}"}))[0] == "602"


def test_ttl_option_changes_expires_in(server: SandboxServer) -> None:
    server.admin.expire_tokens()
    server.admin.set_options(token_ttl_seconds=120)
    try:
        body = requests.get(server.base_url + TOKEN, params=credentials(server), timeout=10).json()
    finally:
        server.admin.set_options(token_ttl_seconds=3600)
        server.admin.expire_tokens()
    assert 110 <= body["expires_in"] <= 120
