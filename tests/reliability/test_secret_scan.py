"""Secret scan: a recognisable client secret and every access token the sandbox issued never
appear in anything the connectors write or send in clear.

Scanned: stdout (RECORD and STATE messages), stderr and captured logs at DEBUG (urllib3
included, which logs request lines), state files, rejects files, every other file the runs
left behind (config files excepted: they hold the secret by design), every request the
sandbox received (`dump("calls")`: method, path, query) and the sandbox's own log, and the
committed benchmark results. Runs include faults (601/602 refreshes, 5xx, resets, Failed jobs,
1016) and rejects, because error paths are where secrets usually leak.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from marketo_common import MarketoClient
from reliability_support import (
    before_run,
    build_target_workload,
    finish_target_process,
    members_catalog,
    parse_messages,
    run_tap_inprocess,
    run_target_inprocess,
    start_tap_process,
    start_target_process,
    tap_config,
    target_config,
)

SECRET = "REL-SECRET-c0ffee-9f8e7d6c5b4a3210"
WRONG_SECRET = "REL-WRONG-SECRET-0123456789abcdef"
# The sandbox's token shape (Marketo's, with its own ":sb" pod suffix): catches any token,
# including ones issued and replaced in the middle of a run.
TOKEN_SHAPE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}:sb")
EXPORT = "/bulk/v1/program/members/export"
REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture
def sb(sandbox_factory) -> Any:
    return sandbox_factory(seed="demo", time_scale=600.0, client_secret=SECRET)


@pytest.fixture
def debug_env() -> dict[str, str]:
    return {**os.environ, "LOGLEVEL": "DEBUG", "PYTHONUNBUFFERED": "1"}


def _token(sb: Any) -> str:
    reply = requests.post(
        sb.base_url + "/identity/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": sb.config["client_id"],
            "client_secret": SECRET,
        },
        timeout=10,
    )
    return reply.json()["access_token"]


def _scan(texts: dict[str, str], tokens: set[str], secrets: tuple[str, ...] = (SECRET,)) -> list:
    """Where a secret or a token shows up: [(source, what)]."""
    hits = []
    for source, text in texts.items():
        hits += [(source, "client secret") for secret in secrets if secret in text]
        hits += [(source, "access token") for token in tokens if token in text]
        hits += [
            (source, f"token-shaped {match[:8]}...")
            for match in TOKEN_SHAPE.findall(text)
            if match not in tokens
        ]
        if re.search(r"access_token=(?!REDACTED)", text):
            hits.append((source, "access_token parameter"))
    return hits


def _files(folder: Path) -> dict[str, str]:
    """Every file a run left in `folder` except the config files we wrote."""
    return {
        str(path): path.read_text(encoding="utf-8", errors="replace")
        for path in folder.rglob("*")
        if path.is_file() and "config" not in path.name and not path.name.startswith("input")
    }


def _sandbox_side(sb: Any) -> dict[str, str]:
    return {"sandbox calls": json.dumps(sb.admin.dump("calls")), "sandbox log": sb.log(10**7)}


def _finish(record_property, hits: list) -> None:
    record_property("secret_hits", len(hits))
    assert hits == []


def test_tap_process_with_faults(sb, tmp_path, debug_env, record_property):
    token = _token(sb)
    admin = sb.admin
    admin.inject_fault(f"{EXPORT}/*/status.json", "token_invalid", every=2, count=2)
    admin.inject_fault(f"{EXPORT}/*/status.json", "token_expired", every=3, count=1)
    admin.inject_fault(f"{EXPORT}/*", "http_500", every=4, count=2)
    admin.inject_fault(f"{EXPORT}/*/file.json", "reset", count=1)
    admin.inject_fault(f"{EXPORT}/*/enqueue.json", "job_failed", count=1)
    start = min(m["updatedAt"] for m in admin.dump("program_members"))
    config = tap_config(sb, start_date=start, window_days=10, max_retries=6)
    catalog = members_catalog(config)
    proc, out, err = _with_env(start_tap_process, debug_env)(config, catalog, tmp_path)
    assert proc.wait(timeout=120) == 0, err.read_text()[-3000:]
    messages = parse_messages(out.read_text())
    assert any(m["type"] == "RECORD" for m in messages)
    assert "DEBUG" in err.read_text()
    (tmp_path / "state.json").write_text(json.dumps([m for m in messages if m["type"] == "STATE"]))
    tokens = {token, _token(sb)}
    _finish(record_property, _scan({**_files(tmp_path), **_sandbox_side(sb)}, tokens))


def test_target_process_with_faults_and_rejects(sb, tmp_path, debug_env, record_property):
    token = _token(sb)
    workload = build_target_workload(before_run(sb), 1500, tag="s")
    admin = sb.admin
    for glob in ("/bulk/*", "/subscriptions/*", "/rest/v1/programs/*"):
        admin.inject_fault(glob, "token_invalid", every=2, count=1)
        admin.inject_fault(glob, "token_expired", every=3, count=1)
        admin.inject_fault(glob, "http_503", every=4, count=1)
    admin.inject_fault("/bulk/v1/leads.json", "too_many_imports", count=1)
    admin.inject_fault("/bulk/v1/program/*/members/import.json", "job_failed", count=1)
    admin.inject_fault("/subscriptions/*", "reset", count=1)
    input_path = tmp_path / "input.jsonl"
    input_path.write_text(workload.text(), encoding="utf-8")
    config = target_config(sb, tmp_path, max_import_file_mb=0.02)
    proc = _with_env(start_target_process, debug_env)(config, tmp_path, input_path)
    run = finish_target_process(proc, config, tmp_path)
    assert run.code == 0, run.stderr[-3000:]
    assert run.rejects, "the workload has rejects; the rejects file must be scanned"
    assert "DEBUG" in run.stderr
    tokens = {token, _token(sb)}
    _finish(record_property, _scan({**_files(tmp_path), **_sandbox_side(sb)}, tokens))


def test_in_process_debug_logs_of_both_connectors(
    sb, tmp_path, record_property, monkeypatch, capfd
):
    """Every logger at DEBUG (urllib3's request lines too), with a 601 and a 5xx on the way."""
    monkeypatch.setattr(MarketoClient, "backoff_factor", 0.05)
    token = _token(sb)
    sb.admin.inject_fault("/bulk/*", "token_invalid", every=2, count=2)
    sb.admin.inject_fault("/subscriptions/*", "token_expired", count=1)
    sb.admin.inject_fault("/rest/*", "http_502", every=3, count=1)
    config = tap_config(sb, program_ids=[1004])
    tap = run_tap_inprocess(config, members_catalog(config), log_level=logging.DEBUG)
    assert tap.code == 0, tap.logs[-3000:]
    workload = build_target_workload(before_run(sb), 600, tag="d")
    target = run_target_inprocess(
        target_config(sb, tmp_path), workload.text(), log_level=logging.DEBUG
    )
    assert target.code == 0, target.stderr[-3000:]
    assert "urllib3" in target.stderr  # request lines were captured and scanned
    captured = capfd.readouterr()
    texts = {
        "tap stdout": tap.stdout,
        "tap logs": tap.logs,
        "target stdout": target.stdout,
        "target logs": target.stderr,
        "rejects": target.rejects_text,
        "captured output": captured.out + captured.err,
        **_sandbox_side(sb),
    }
    _finish(record_property, _scan(texts, {token, _token(sb)}))


@pytest.mark.parametrize("connector", ["tap_marketo_members.tap", "target_marketo_ingest.target"])
def test_wrong_secret_is_never_echoed(connector, sb, tmp_path, debug_env, record_property):
    config = {**sb.config, "client_secret": WRONG_SECRET, "max_retries": 0}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    lines = ""
    if connector.startswith("target"):
        lines = '{"type": "SCHEMA", "stream": "leads", "schema": {"properties": {"email": {}}}}\n'
        lines += '{"type": "RECORD", "stream": "leads", "record": {"email": "w@x.example"}}\n'
    done = subprocess.run(
        [sys.executable, "-m", connector, "--config", str(path)],
        input=lines.encode(),
        capture_output=True,
        timeout=120,
        env=debug_env,
        check=False,
    )
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 1, stderr[-2000:]
    assert "Traceback" not in stderr
    assert "identity/oauth/token" in stderr.strip().splitlines()[-1]
    texts = {"stdout": done.stdout.decode("utf-8", "replace"), "stderr": stderr}
    texts.update(_sandbox_side(sb))
    _finish(record_property, _scan(texts, set(), (SECRET, WRONG_SECRET)))


def test_benchmark_results_hold_no_secret(record_property):
    """Benchmarks run against the sandbox's default API user; their saved output must not
    carry its secret or any token (running them here would not fit the test budget)."""
    folder = REPO / "benchmarks"
    texts = {
        str(path): path.read_text(encoding="utf-8", errors="replace")
        for path in [*folder.glob("results/*"), *folder.glob("*.md")]
        if path.is_file()
    }
    if not texts:
        pytest.skip("no benchmark output in the repository")
    _finish(record_property, _scan(texts, set(), ("sandbox-secret",)))


def test_the_scan_finds_what_it_looks_for():
    token = "0a1b2c3d-1111-2222-3333-444455556666:sb"
    other = "9f8e7d6c-1111-2222-3333-444455556666:sb"
    texts = {
        "a": f"config {SECRET}",
        "b": f"Authorization: Bearer {token}",
        "c": f"GET /rest/v1/leads.json?access_token={other}",
        "d": "GET /rest/v1/leads.json?access_token=REDACTED",
    }
    hits = _scan(texts, {token})
    assert ("a", "client secret") in hits
    assert ("b", "access token") in hits
    assert ("c", "access_token parameter") in hits
    assert any(source == "c" and what.startswith("token-shaped") for source, what in hits)
    assert not [h for h in hits if h[0] == "d"]


def _with_env(start: Any, env: dict[str, str]) -> Any:
    """`start_target_process` with a different environment for the child."""

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        original = os.environ.copy()
        os.environ.update(env)
        try:
            return start(*args, **kwargs)
        finally:
            os.environ.clear()
            os.environ.update(original)

    return wrapped
