"""Helpers for target tests: run the target in-process on Singer lines, read its outcomes."""

from __future__ import annotations

import contextlib
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from target_marketo_ingest.target import TargetMarketoIngest

LEAD_SCHEMA = {
    "properties": {
        "email": {"type": ["string", "null"]},
        "firstName": {"type": ["string", "null"]},
        "lastName": {"type": ["string", "null"]},
        "company": {"type": ["string", "null"]},
        "leadScore": {"type": ["integer", "string", "null"]},
        "unsubscribed": {"type": ["boolean", "null"]},
        "lastWebinarAt": {"type": ["string", "null"], "format": "date-time"},
    }
}


@dataclass
class Run:
    """What one target run left behind."""

    target: TargetMarketoIngest
    states: list[dict]
    rejects: list[dict] = field(default_factory=list)

    def summary(self, stream: str) -> dict:
        return next(s.as_dict() for s in self.target.summaries if s.stream == stream)


def messages_to_text(messages: list[dict | str]) -> str:
    return "".join((m if isinstance(m, str) else json.dumps(m)) + "\n" for m in messages)


def schema(stream: str, props: dict, keys: list[str] | None = None) -> dict:
    return {"type": "SCHEMA", "stream": stream, "schema": props, "key_properties": keys or []}


def record(stream: str, rec: dict) -> dict:
    return {"type": "RECORD", "stream": stream, "record": rec}


def state(value: Any) -> dict:
    return {"type": "STATE", "value": value}


def read_rejects(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def run_target(config: dict, messages: list[dict | str] | str | bytes) -> Run:
    """Run the target in this process; STATE lines written to stdout are returned."""
    target = TargetMarketoIngest(config=config)
    out = io.StringIO()
    if isinstance(messages, list):
        messages = messages_to_text(messages)
    data = messages.encode() if isinstance(messages, str) else messages
    with contextlib.redirect_stdout(out):
        target.listen(io.BytesIO(data))
    states = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    return Run(target, states, read_rejects(Path(config["rejects_path"])))


def target_config(sandbox: Any, tmp_path: Path, **extra: Any) -> dict:
    config = dict(sandbox.config)
    config.update(
        rejects_path=str(tmp_path / "rejects.jsonl"),
        poll_interval_seconds=0.05,
        max_retries=2,
        # The sandbox applies Data Ingestion within a second of real time at these scales; a
        # record it fails is given up on after this rather than the 600 s default.
        verify_timeout_seconds=10,
    )
    config.update(extra)
    return config


def wait_ingested(sandbox: Any, timeout: float = 30.0) -> list[dict]:
    """Wait until the sandbox has applied every accepted Data Ingestion request.

    Marketo (and the sandbox) applies them a little after the 202, so a test reading what the
    target wrote waits here first. Returns the records that failed after their 202.
    """
    return sandbox.admin.wait_ingestion(timeout)


def wait_for(check: Any, timeout: float = 10.0) -> Any:
    """Poll until check() is truthy (the sandbox applies ingestion asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


MEMBER_SCHEMA = {
    "properties": {
        "leadId": {"type": ["integer", "null"]},
        "programId": {"type": ["integer", "null"]},
        "statusName": {"type": ["string", "null"]},
    }
}


def program_members(sandbox: Any, program_id: int) -> dict[int, str]:
    """leadId -> status of a sandbox program's members."""
    return {
        m["leadId"]: m["statusName"]
        for m in sandbox.admin.dump("program_members", program_id=program_id)
    }


def mirror_input(sandbox: Any, program_id: int) -> tuple[dict, dict, set]:
    """Keep 10 members as they are, move 5 to another status, add 4 leads, drop the rest.

    Returns (current, desired, removed) for a program of the demo seed's Customer Nurture
    progression (Member < Engaged < Influenced).
    """
    current = program_members(sandbox, program_id)
    assert len(current) > 25
    members = sorted(current)
    others = sorted({lead["id"] for lead in sandbox.admin.dump("leads")} - set(current))
    keep = {lead: current[lead] for lead in members[:10]}
    moved = {
        lead: "Influenced" if current[lead] != "Influenced" else "Engaged"
        for lead in members[10:15]
    }
    added = dict.fromkeys(others[:4], "Member")
    return current, keep | moved | added, set(members[15:])
