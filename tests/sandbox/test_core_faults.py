"""Fault injection: every HTTP-level kind, count/every semantics, job kinds for bulk code."""

from __future__ import annotations

import time

import pytest
import requests
from marketo_sandbox.admin_client import AdminError
from marketo_sandbox.faults import HTTP_KINDS, JOB_KINDS, Faults
from marketo_sandbox.server import SandboxServer
from sandbox_helpers import code

DESCRIBE = "/rest/v1/programs/members/describe.json"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    with SandboxServer(tmp_path_factory.mktemp("faults") / "s.db", seed=None) as sb:
        yield sb


@pytest.fixture
def rest(server: SandboxServer, sandbox_rest):
    server.admin.clear_faults()
    caller = sandbox_rest(server)
    caller.token()
    return caller


@pytest.mark.parametrize(
    ("kind", "status"), [("http_500", 500), ("http_502", 502), ("http_503", 503)]
)
def test_http_errors(server: SandboxServer, rest, kind: str, status: int) -> None:
    server.admin.inject_fault(DESCRIBE, kind)
    assert rest.get(DESCRIBE).status_code == status
    assert rest.get(DESCRIBE).status_code == 200


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("token_invalid", "601"),
        ("token_expired", "602"),
        ("rate_limit", "606"),
        ("concurrency", "615"),
    ],
)
def test_envelope_faults(server: SandboxServer, rest, kind: str, expected: str) -> None:
    server.admin.inject_fault("/rest/v1/*", kind)
    reply = rest.get(DESCRIBE)
    assert reply.status_code == 200
    assert code(reply) == expected
    assert code(rest.get(DESCRIBE)) is None


def test_reset_cuts_the_body(server: SandboxServer, rest) -> None:
    server.admin.inject_fault(DESCRIBE, "reset")
    with pytest.raises(
        (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)
    ):
        rest.get(DESCRIBE)
    assert code(rest.get(DESCRIBE)) is None


def test_slow(server: SandboxServer, rest) -> None:
    server.admin.inject_fault(DESCRIBE, "slow", delay=0.6)
    started = time.monotonic()
    assert code(rest.get(DESCRIBE)) is None
    assert time.monotonic() - started >= 0.6
    assert server.admin.faults() == []  # fired once, then gone


def test_count_every_and_method(server: SandboxServer, rest) -> None:
    server.admin.inject_fault(DESCRIBE, "http_503", count=2)
    assert [rest.get(DESCRIBE).status_code for _ in range(3)] == [503, 503, 200]
    server.admin.inject_fault(DESCRIBE, "http_500", every=3, count=0)
    assert [rest.get(DESCRIBE).status_code for _ in range(7)] == [200, 200, 500, 200, 200, 500, 200]
    [armed] = server.admin.faults()
    assert armed["seen"] == 7
    assert armed["fired"] == 2
    server.admin.clear_faults()
    server.admin.inject_fault(DESCRIBE, "http_500", method="POST")
    assert rest.get(DESCRIBE).status_code == 200
    assert server.admin.faults()[0]["fired"] == 0


def test_ingestion_paths_get_ingestion_error_bodies(server: SandboxServer, rest) -> None:
    path = "/subscriptions/123-ABC-456/persons"
    server.admin.inject_fault("/subscriptions/*", "rate_limit")
    reply = rest.post(path, json={"data": []})
    assert reply.status_code == 429
    assert reply.json()["error_code"] == "429001"


def test_unknown_kind_refused(server: SandboxServer) -> None:
    with pytest.raises(AdminError):
        server.admin.inject_fault(DESCRIBE, "meteor")


def test_job_kinds_are_taken_by_kind_only() -> None:
    faults = Faults()
    for kind in JOB_KINDS:
        faults.inject("/bulk/v1/program/members/export/*", kind)
    assert faults.take("POST", "/bulk/v1/program/members/export/create.json") is None
    assert faults.take_kind("truncate", "/bulk/v1/leads.json") is None
    fault = faults.take_kind("truncate", "/bulk/v1/program/members/export/x/file.json")
    assert fault is not None
    assert fault.kind == "truncate"
    assert faults.take_kind("truncate", "/bulk/v1/program/members/export/x/file.json") is None
    assert len(faults.list()) == len(JOB_KINDS) - 1
    assert not HTTP_KINDS & JOB_KINDS
