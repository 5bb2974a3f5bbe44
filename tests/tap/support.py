"""Run the tap in-process (fast) or as a process (signals), and read its Singer output."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from singer_output import expand_batches, read_batch_file
from tap_marketo_members.tap import TapMarketoMembers

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["expand_batches", "read_batch_file"]

LOGGERS = ("tap-marketo-members", "tap_marketo_members", "marketo_common")


def parsed(parser: Any, path: Path, **kwargs: Any) -> list[dict]:
    """Every record `MemberFileParser.chunks` gives for a file, in one list."""
    return [record for chunk in parser.chunks(path, **kwargs) for record in chunk]


# A small program member schema with one column of each kind the parser converts.
PARSING_PROPS = {
    "programId": {"type": "integer"},
    "leadId": {"type": "integer"},
    "updatedAt": {"type": ["string", "null"], "format": "date-time"},
    "reachedSuccess": {"type": ["boolean", "null"]},
    "score": {"type": ["number", "null"]},
    "note": {"type": ["string", "null"]},
}


@dataclass
class TapRun:
    """A run's messages, BATCH messages expanded in place into the RECORDs of their files (each
    marked `from_batch`), as a target reading them in order sees them; `raw` keeps the output."""

    messages: list[dict]
    logs: str
    stdout: str = ""
    records: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    states: list[dict] = field(default_factory=list)
    raw: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.raw, self.messages = self.messages, expand_batches(self.messages)
        for message in self.messages:
            if message["type"] == "RECORD":
                self.records[message["stream"]].append(message["record"])
            elif message["type"] == "STATE":
                self.states.append(message["value"])

    @property
    def state(self) -> dict:
        return self.states[-1] if self.states else {}

    def members(self) -> list[dict]:
        return self.records["program_members"]


def config_for(sandbox: Any, **extra: Any) -> dict:
    """Tap config for a sandbox: the time-scaled clock lets polls be ~60/time_scale seconds."""
    config = dict(sandbox.config)
    config.update(
        poll_interval_seconds=max(60.0 / sandbox.time_scale, 0.05),
        max_retries=3,
        max_retry_seconds=5,
    )
    config.update(extra)
    return config


def run_tap(config: dict, *, state: dict | None = None, catalog: dict | None = None) -> TapRun:
    """Sync all selected streams in this process; stdout and logs captured."""
    logs = io.StringIO()
    handler = logging.StreamHandler(logs)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    loggers = [logging.getLogger(name) for name in LOGGERS]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    try:
        with contextlib.redirect_stdout(out):
            tap = TapMarketoMembers(config=config, state=state, catalog=catalog)
            tap.sync_all()
            out.flush()
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    out.seek(0)
    text = out.read()
    return TapRun(parse_lines(text), logs.getvalue(), text)


def key(row: dict) -> tuple[int, int]:
    return (row["programId"], row["leadId"])


def assert_same_members(emitted: list[dict], expected: list[dict]) -> None:
    by_key = {key(r): r for r in emitted}
    assert len(by_key) == len(emitted), "a member was emitted twice"
    assert set(by_key) == {key(r) for r in expected}
    for row in expected:
        got = by_key[key(row)]
        for name, value in row.items():
            if value == "":  # Marketo exports an empty field as null (documented)
                value = None  # noqa: PLW2901
            assert got[name] == value, (key(row), name, got[name], value)
            assert type(got[name]) is type(value), (key(row), name, got[name], value)


def assert_state_follows_its_records(run: TapRun) -> None:
    """A bookmark B for program P is emitted only after every record of P older than B."""
    final: Counter = Counter(record["programId"] for record in run.members())
    assert final
    seen: list[dict] = []
    bookmarks_checked = 0
    for message in run.messages:
        if message["type"] == "RECORD" and message["stream"] == "program_members":
            seen.append(message["record"])
        elif message["type"] == "STATE":
            parts = message["value"]["bookmarks"].get("program_members", {}).get("partitions", [])
            for part in parts:
                bookmark = part.get("replication_key_value")
                if not bookmark:
                    continue
                pid = part["context"]["programId"]
                older = [
                    r for r in run.members() if r["programId"] == pid and r["updatedAt"] < bookmark
                ]
                emitted = [r for r in seen if r["programId"] == pid and r["updatedAt"] < bookmark]
                assert len(emitted) == len(older), (pid, bookmark)
                bookmarks_checked += 1
    assert bookmarks_checked > 1


def parse_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.split("\n") if line.strip()]


def start_tap_process(
    config: dict, tmp_path: Path, *, state: dict | None = None
) -> tuple[subprocess.Popen, Path, Path]:
    """The tap as a separate process (for signals); stdout and stderr go to files."""
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    args = [sys.executable, "-m", "tap_marketo_members.tap", "--config", str(config_path)]
    if state is not None:
        state_path = tmp_path / "state.json"
        state_path.write_text(json.dumps(state))
        args += ["--state", str(state_path)]
    out_path, err_path = tmp_path / "stdout.jsonl", tmp_path / "stderr.log"
    proc = subprocess.Popen(
        args,
        stdout=out_path.open("wb"),
        stderr=err_path.open("wb"),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return proc, out_path, err_path


def catalog_for(config: dict, select: dict[str, list[str] | None]) -> dict:
    """A catalog selecting only the named streams (and, when a list is given, only those fields)."""
    tap = TapMarketoMembers(config=config)
    catalog = json.loads(tap.catalog_json_text)
    for entry in catalog["streams"]:
        wanted = entry["tap_stream_id"] in select
        fields = select.get(entry["tap_stream_id"])
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = wanted
            elif fields is not None and meta["metadata"].get("inclusion") != "automatic":
                meta["metadata"]["selected"] = meta["breadcrumb"][-1] in fields
    return catalog
