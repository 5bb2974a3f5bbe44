"""Admin API, request log, restarts, CLI, and Marketo codes for malformed requests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from marketo_sandbox.admin_client import AdminError
from marketo_sandbox.app import create_app, redact_query
from marketo_sandbox.server import SandboxServer
from marketo_sandbox.state import state_of
from sandbox_helpers import error, result

DESCRIBE = "/rest/v1/programs/members/describe.json"
STATUS = "/rest/v1/programs/1001/members/status.json"


def test_restart_and_kill_keep_data_tokens_options_and_time(sandbox_factory, sandbox_rest) -> None:
    sb = sandbox_factory(seed="demo")
    rest = sandbox_rest(sb)
    outsider = 1999
    members = {m["leadId"] for m in sb.admin.dump("program_members", program_id=1001)}
    outsider = next(i for i in range(2000, 0, -1) if i not in members)
    created = result(
        rest.post(STATUS, json={"statusName": "Registered", "input": [{"leadId": outsider}]})
    )
    assert created[0]["status"] == "created"
    spec = {"displayName": "Kept Field", "name": "keptField", "dataType": "string"}
    result(rest.post("/rest/v1/programs/members/schema/fields.json", json={"input": [spec]}))
    sb.admin.set_options(rest_member_filter_limit=1234)
    before = sb.admin.now()
    used = sb.admin.limits()["dailyUsed"]
    assert used >= 2
    sb.restart()
    assert sb.admin.limits()["dailyUsed"] == used  # the daily REST quota counter is kept
    after = {m["leadId"]: m for m in sb.admin.dump("program_members", program_id=1001)}
    assert after[outsider]["statusName"] == "Registered"
    assert "keptField" in after[outsider]
    assert sb.admin.options()["rest_member_filter_limit"] == 1234
    assert sb.admin.now() >= before
    assert result(rest.get(DESCRIBE))  # the token issued before the restart still works
    assert len(sb.admin.dump("leads")) == 2000  # the seed did not run twice
    # a SIGKILL loses nothing that was committed
    lead = sb.admin.dump("program_members", program_id=1002)[0]["leadId"]
    result(
        rest.post("/rest/v1/programs/1002/members/delete.json", json={"input": [{"leadId": lead}]})
    )
    sb.kill()
    sb.start()
    assert lead not in {m["leadId"] for m in sb.admin.dump("program_members", program_id=1002)}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    db = tmp_path_factory.mktemp("admin") / "s.db"
    startup_fault = [("/rest/v1/leads/describe.json", "http_502", 1)]
    with SandboxServer(
        db, seed="demo", client_secret="very-secret-value", faults=startup_fault
    ) as sb:
        yield sb


def test_start_banner_names_url_and_user_but_not_the_secret(server: SandboxServer) -> None:
    log = server.log()
    assert f"serving at {server.base_url}" in log
    assert "client_id=sandbox-client" in log
    assert "very-secret-value" not in log


def test_faults_armed_at_start_up(rest) -> None:
    assert rest.get("/rest/v1/leads/describe.json").status_code == 502
    assert rest.get("/rest/v1/leads/describe.json").status_code == 200


def test_request_log_never_holds_tokens_or_secrets(server: SandboxServer, rest) -> None:
    token = rest.token()
    rest.get(DESCRIBE, headers={"Authorization": f"Bearer {token}"})
    rest.get(DESCRIBE, params={"access_token": token}, auth=False)
    calls = server.admin.dump("calls")
    text = json.dumps(calls)
    assert token not in text
    assert "very-secret-value" not in text
    token_calls = [c for c in calls if c["path"] == "/identity/oauth/token"]
    assert token_calls
    assert "client_secret=REDACTED" in token_calls[0]["query"]
    assert {"method", "path", "status", "code", "clientId", "durationMs", "at"} <= set(calls[-1])
    assert token not in server.log()
    assert "very-secret-value" not in server.log()
    assert redact_query("a=1&access_token=t&client_secret=s") == (
        "a=1&access_token=REDACTED&client_secret=REDACTED"
    )


def test_error_codes_are_recorded(server: SandboxServer, rest) -> None:
    rest.get(DESCRIBE, headers={"Authorization": "Bearer nope"})
    last = [c for c in server.admin.dump("calls") if c["path"] == DESCRIBE][-1]
    assert last["code"] == "601"


def test_unknown_path_and_method(rest) -> None:
    reply = rest.get("/rest/v1/nothing.json")
    assert reply.status_code == 404
    assert error(reply)[0] == "610"
    assert error(rest.post(DESCRIBE, json={}))[0] == "605"


def test_malformed_multipart_is_613(rest) -> None:
    headers = {"Content-Type": "multipart/form-data; boundary=x"}
    reply = rest.post("/identity/oauth/token", data=b"garbage", headers=headers, auth=False)
    assert error(reply)[0] == "613"


def test_rest_body_over_1mb_is_413(rest) -> None:
    big = {"statusName": "Invited", "input": [{"leadId": 1, "pad": "x" * 1_100_000}]}
    assert rest.post(STATUS, json=big).status_code == 413


def test_now_advance_and_options(server: SandboxServer) -> None:
    before = server.admin.now()
    after = server.admin.advance(86400 * 3)
    assert after[:10] > before[:10]
    assert "token_ttl_seconds" in server.admin.options()
    with pytest.raises(AdminError):
        server.admin.advance(-5)


def test_dump_kinds(server: SandboxServer) -> None:
    leads = server.admin.dump("leads")
    assert len(leads) == 2000
    assert {"email", "firstName", "leadScore", "industrySegment"} <= set(leads[0])
    fields = server.admin.dump("fields")
    assert {f["object"] for f in fields} == {"programMember", "lead"}
    members = server.admin.dump("program_members")
    assert {"programId", "leadId", "statusName", "updatedAt", "myCustomField"} <= set(members[0])
    counts = server.admin.dump("member_counts")
    assert sum(c["members"] for c in counts) == len(members)
    assert {"programId", "program", "statusName", "members"} == set(counts[0])
    with pytest.raises(AdminError):
        server.admin.dump("nonsense")


def test_reset_reseeds(server: SandboxServer, rest) -> None:
    lead = server.admin.dump("program_members", program_id=1004)[0]["leadId"]
    result(
        rest.post("/rest/v1/programs/1004/members/delete.json", json={"input": [{"leadId": lead}]})
    )
    server.admin.reset(seed="demo")
    assert lead in {m["leadId"] for m in server.admin.dump("program_members", program_id=1004)}
    server.admin.reset(seed=None, members=40)
    assert len(server.admin.dump("program_members")) == 40


def test_cli_dump(server: SandboxServer) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "marketo_sandbox.cli",
            "dump",
            "program_members",
            "--db",
            str(server.db_path),
            "--program-id",
            "1001",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert rows
    assert {r["programId"] for r in rows} == {1001}
    bad = subprocess.run(
        [sys.executable, "-m", "marketo_sandbox.cli", "dump", "nope", "--db", str(server.db_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert bad.returncode == 2
    assert "unknown kind" in bad.stderr


async def _asgi_get(app, path: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "scheme": "http",
        "server": ("t", 80),
        "client": ("t", 1),
        "root_path": "",
    }
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    # Starlette re-raises after sending the 500 reply, for the server's log
    with contextlib.suppress(RuntimeError):
        await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


def test_a_bug_becomes_611_not_a_traceback(tmp_path) -> None:
    app = create_app({"db_path": str(tmp_path / "x.db")})
    user = next(iter(state_of(app).identity.users.values()))
    token, _ = state_of(app).identity.issue(user)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    state_of(app).store.fields.records = broken
    status, body = asyncio.run(
        _asgi_get(app, DESCRIBE, [(b"authorization", f"Bearer {token}".encode())])
    )
    assert status == 500
    reply = json.loads(body)
    assert reply["errors"][0]["code"] == "611"
    assert b"Traceback" not in body
    assert b"boom" not in body


def test_options_are_type_checked(server: SandboxServer) -> None:
    for bad in (
        {"rest_calls_per_20s": "many"},
        {"log_calls": "yes"},
        {"token_ttl_seconds": -1},
        {"rest_member_limit_mode": "sometimes"},
    ):
        with pytest.raises(AdminError, match="invalid value"):
            server.admin.set_options(**bad)
    assert server.admin.options()["rest_calls_per_20s"] != "many"
    assert server.admin.set_options(family_specific_option=[1, 2])["family_specific_option"] == [
        1,
        2,
    ]


def test_console_script_help() -> None:
    script = Path(sys.executable).parent / "marketo-sandbox"
    out = subprocess.run(
        [str(script), "serve", "--help"], capture_output=True, text=True, check=True, timeout=60
    )
    for flag in (
        "--host",
        "--port",
        "--db",
        "--munchkin-id",
        "--client-id",
        "--client-secret",
        "--seed",
        "--members",
        "--time-scale",
        "--strict",
    ):
        assert flag in out.stdout
