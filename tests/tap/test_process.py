"""The tap as a process: signals cancel our exports, a crashed run's jobs are cancelled next
time, and no secret reaches any output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import requests

from .support import catalog_for, config_for, run_tap, start_tap_process

EXPORT_FILE_GLOB = "/bulk/v1/program/members/export/*"
RUNNING = ("Queued", "Processing")


def wait_for_processing(sb, proc, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "tap ended before its export started"
        jobs = sb.admin.dump("export_jobs")
        running = [j for j in jobs if j["status"] == "Processing"]
        if running:
            return running
        time.sleep(0.1)
    raise AssertionError("no export job reached Processing")


def read_messages(path):
    lines = path.read_text(encoding="utf-8").split("\n")
    # the last line may be one a SIGKILL cut short
    return [json.loads(line) for line in lines if line.strip() and line.endswith("}")]


def slow_sandbox(sandbox_factory):
    # jobs take ~a minute of wall time, long enough to be caught Processing
    return sandbox_factory(seed="demo", time_scale=600.0, options={"job_fixed_seconds": 36000})


def test_sigterm_cancels_every_unfinished_export(sandbox_factory, tmp_path):
    sb = slow_sandbox(sandbox_factory)
    proc, _, err = start_tap_process(config_for(sb, program_ids=[1001, 1002]), tmp_path)
    try:
        wait_for_processing(sb, proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    jobs = sb.admin.dump("export_jobs")
    assert jobs
    assert not [j for j in jobs if j["status"] in RUNNING]
    assert "Cancelled export" in err.read_text()


def test_jobs_left_by_a_killed_run_are_cancelled_next_run(sandbox_factory, tmp_path):
    sb = slow_sandbox(sandbox_factory)
    config = config_for(sb, program_ids=[1003])
    proc, out, _ = start_tap_process(config, tmp_path)
    try:
        running = wait_for_processing(sb, proc)
        time.sleep(0.3)  # the STATE naming the job is written right after enqueue
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    states = [m["value"] for m in read_messages(out) if m["type"] == "STATE"]
    leftover = states[-1]["bookmarks"]["program_members"]["exports_in_progress"]
    assert running[0]["exportId"] in leftover
    sb.admin.set_options(job_fixed_seconds=10)
    run = run_tap(config, state=states[-1], catalog=catalog_for(config, {"program_members": None}))
    jobs = {j["exportId"]: j for j in sb.admin.dump("export_jobs")}
    assert jobs[running[0]["exportId"]]["status"] == "Cancelled"
    assert "left Processing by an earlier run" in run.logs
    assert len(run.members()) == len(
        [m for m in sb.admin.dump("program_members") if m["programId"] == 1003]
    )


def test_no_secret_in_any_output(shared_sandbox, tmp_path):
    sb = shared_sandbox
    config = config_for(sb, program_ids=[1004])
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    env = {**os.environ, "TAP_MARKETO_MEMBERS_LOGLEVEL": "DEBUG"}
    outputs = []
    for extra in ([],):
        proc = subprocess.run(
            [sys.executable, "-m", "tap_marketo_members.tap", "--config", str(config_path), *extra],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=True,
        )
        outputs.append(proc.stdout + proc.stderr)
    token = requests.post(
        sb.base_url + "/identity/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": sb.config["client_id"],
            "client_secret": sb.config["client_secret"],
        },
        timeout=10,
    ).json()["access_token"]
    text = "\n".join(outputs)
    assert '"type":"RECORD"' in text.replace(" ", "")
    assert sb.config["client_secret"] not in text
    assert token not in text
    assert "access_token" not in text


def test_bad_credentials_one_line_error_without_secret(shared_sandbox, tmp_path):
    secret = "wrong-secret-0123456789"
    config = config_for(shared_sandbox, client_secret=secret, max_retries=0)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    proc = subprocess.run(
        [sys.executable, "-m", "tap_marketo_members.tap", "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert secret not in proc.stderr + proc.stdout
    assert "/identity/oauth/token" in proc.stderr.strip().splitlines()[-1]
