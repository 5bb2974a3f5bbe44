"""Workloads, runners and exact comparisons for the reliability tests.

The target workload touches every write method; the expected end state of the sandbox is
computed from the input and the sandbox's dump taken before the run, so a fault test can
compare the whole projected dump (nothing lost, nothing duplicated) rather than sample it.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from singer_output import expand_batches
from tap_marketo_members.tap import TapMarketoMembers
from target_marketo_ingest.target import TargetMarketoIngest

if TYPE_CHECKING:
    from pathlib import Path

    from typing_extensions import Self

DELETED = "2026-01-01T00:00:00Z"
LOGGERS = (
    "marketo_common",
    "tap-marketo-members",
    "tap_marketo_members",
    "target-marketo-ingest",
    "target_marketo_ingest",
    "singer_sdk",
    "urllib3",
)

# Every write method of the target, one stream each.
STREAMS = {
    "leads": {"method": "bulk_leads", "lookup_field": "email"},
    "pm_bulk": {"method": "bulk_program_members", "program_id": 1003},
    "persons": {"method": "ingest_persons", "dedupe_fields": ["email"]},
    "companies": {"method": "ingest_companies"},
    "purchases": {
        "method": "ingest_custom_object",
        "custom_object_name": "purchases",
        "dedupe_fields": ["vin"],
    },
    "pm_ingest": {"method": "ingest_program_members", "program_id": 1004, "status": "Opened"},
    "pm_rest": {"method": "rest_program_members", "program_id": 1002, "status": "Engaged"},
}
_STR = {"type": ["string", "null"]}
_INT = {"type": ["integer", "null"]}
_PERSON = ("email", "firstName", "lastName", "company")


def _props(*names: str, **typed: dict) -> dict:
    return {**dict.fromkeys(names, _STR), **typed}


SCHEMAS = {
    "leads": (_props(*_PERSON), ["email"]),
    "pm_bulk": (_props(*_PERSON, "statusName", "registrationCode"), ["email"]),
    "persons": (_props(*_PERSON), ["email"]),
    "companies": (
        _props("company", externalCompanyId={"type": "string"}, numberOfEmployees=_INT),
        ["externalCompanyId"],
    ),
    "purchases": (
        _props(
            "email", "make", vin={"type": "string"}, year=_INT, price={"type": ["number", "null"]}
        ),
        ["vin"],
    ),
    "pm_ingest": (_props("_sdc_deleted_at", leadId=_INT), ["leadId"]),
    "pm_rest": (_props("_sdc_deleted_at", leadId=_INT), ["leadId"]),
}
PM_BULK_STATUSES = ("Invited", "Registered")


# --------------------------------------------------------------------------- snapshots


def wait_ingested(sb: Any, timeout: float = 60.0) -> list[dict]:
    """Wait until the sandbox applied every accepted Data Ingestion request.

    Marketo applies them a little after the 202 (so does the sandbox); returns the records that
    failed after their 202.
    """
    return sb.admin.wait_ingestion(timeout)


def snapshot(sb: Any) -> dict[str, Any]:
    """The sandbox's data projected on what the workload writes, keyed by natural keys.

    Duplicates are kept visible: each table maps key -> list of values, so a duplicated row
    makes the comparison fail instead of collapsing.
    """
    admin = sb.admin
    wait_ingested(sb)
    leads = admin.dump("leads")
    email_of = {lead["id"]: lead["email"] for lead in leads}
    snap: dict[str, dict] = {"leads": {}, "members": {}, "companies": {}, "purchases": {}}
    for lead in leads:
        value = (lead["firstName"], lead["lastName"], lead["company"])
        snap["leads"].setdefault(lead["email"], []).append(value)
    for member in admin.dump("program_members"):
        key = (member["programId"], email_of.get(member["leadId"], member["leadId"]))
        value = (member["statusName"], member.get("registrationCode"))
        snap["members"].setdefault(key, []).append(value)
    for company in admin.dump("companies"):
        value = (company.get("company"), company.get("numberOfEmployees"))
        snap["companies"].setdefault(company.get("externalCompanyId"), []).append(value)
    for obj in admin.dump("custom_objects"):
        fields = obj.get("fields") or obj
        value = (fields.get("email"), fields.get("make"), fields.get("year"), fields.get("price"))
        snap["purchases"].setdefault(fields.get("vin"), []).append(value)
    return snap


def diff(expected: dict[str, Any], actual: dict[str, Any], limit: int = 8) -> list[str]:
    """Human-readable differences between two snapshots (empty when equal)."""
    problems = []
    for table, want in expected.items():
        got = actual[table]
        missing = [k for k in want if k not in got]
        extra = [k for k in got if k not in want]
        changed = [k for k in want if k in got and want[k] != got[k]]
        if missing:
            problems.append(f"{table}: {len(missing)} missing, e.g. {missing[:limit]}")
        if extra:
            problems.append(f"{table}: {len(extra)} unexpected, e.g. {extra[:limit]}")
        if changed:
            sample = [(k, want[k], got[k]) for k in changed[:limit]]
            problems.append(f"{table}: {len(changed)} differ (key, want, got) e.g. {sample}")
    return problems


# --------------------------------------------------------------------------- target workload


@dataclass
class TargetWorkload:
    """Singer input for every write method and the sandbox state it must produce."""

    lines: list[str]
    expected: dict[str, Any]
    records: int
    expected_rejects: Counter
    expected_superseded: int
    states: list[dict] = field(default_factory=list)

    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)

    def after_state(self, value: dict) -> list[str]:
        """The input a tap resuming after STATE `value` sends: the SCHEMAs, then the rest."""
        index = next(
            i
            for i, line in enumerate(self.lines)
            if line.startswith('{"type": "STATE"') and json.loads(line)["value"] == value
        )
        schemas = [line for line in self.lines if line.startswith('{"type": "SCHEMA"')]
        return schemas + self.lines[index + 1 :]


def _msg(kind: str, stream: str | None = None, **body: Any) -> str:
    message: dict[str, Any] = {"type": kind}
    if stream is not None:
        message["stream"] = stream
    message.update(body)
    return json.dumps(message)


def build_target_workload(before: dict[str, Any], n: int, tag: str = "r") -> TargetWorkload:
    """About `n` records spread over all seven write methods, interleaved, STATE every ~n/10.

    Deliberate outcomes besides imports: 3 duplicate leads (superseded) and 2 program members
    with an unknown status (rejected), so imported + rejected + superseded = input is not
    trivially imported = input.
    """
    leads = before["leads"]
    members = before["members"]
    email_to_id = before["email_to_id"]
    expected = {table: dict(rows) for table, rows in before["snapshot"].items()}

    def non_members(program: int) -> list[int]:
        inside = {email for (pid, email) in members if pid == program}
        return sorted(email_to_id[e] for e in leads if e not in inside)

    def current(program: int, status: str | None = None) -> list[int]:
        return sorted(
            email_to_id[email]
            for (pid, email), values in members.items()
            if pid == program and (status is None or values[0][0] == status)
        )

    id_to_email = {v: k for k, v in email_to_id.items()}
    per_stream: dict[str, list[dict]] = {name: [] for name in STREAMS}
    # small fixed-size parts: REST (300 per call) and ingestion program members (lead ids)
    rest_new = non_members(1002)[:150]
    rest_gone = current(1002, "Member")[:20]
    per_stream["pm_rest"] += [{"leadId": i} for i in rest_new]
    per_stream["pm_rest"] += [{"leadId": i, "_sdc_deleted_at": DELETED} for i in rest_gone]
    for i in rest_new:
        expected["members"][(1002, id_to_email[i])] = [("Engaged", None)]
    for i in rest_gone:
        del expected["members"][(1002, id_to_email[i])]
    ingest_new = non_members(1004)[: max(50, min(400, n // 20))]
    ingest_gone = current(1004, "Sent")[:30]
    per_stream["pm_ingest"] += [{"leadId": i} for i in ingest_new]
    per_stream["pm_ingest"] += [{"leadId": i, "_sdc_deleted_at": DELETED} for i in ingest_gone]
    for i in ingest_new:
        expected["members"][(1004, id_to_email[i])] = [("Opened", None)]
    for i in ingest_gone:
        del expected["members"][(1004, id_to_email[i])]

    rest = max(n - len(per_stream["pm_rest"]) - len(per_stream["pm_ingest"]), 100)
    shares = {"leads": 0.35, "pm_bulk": 0.15, "persons": 0.2, "companies": 0.15}
    counts = {name: int(rest * share) for name, share in shares.items()}
    counts["purchases"] = rest - sum(counts.values())
    for i in range(counts["leads"]):
        email = f"{tag}lead{i}@rel.example"
        rec = {"email": email, "firstName": f"L{i}", "lastName": 'Lead, "q"', "company": "Rel"}
        per_stream["leads"].append(rec)
        expected["leads"][email] = [(rec["firstName"], rec["lastName"], rec["company"])]
    for i in range(3):  # duplicates: the later record wins, the earlier is superseded
        rec = dict(per_stream["leads"][i * 2], firstName=f"L{i}-again")
        per_stream["leads"].insert(i * 3 + 1, rec)
        expected["leads"][rec["email"]] = [(rec["firstName"], rec["lastName"], rec["company"])]
    for i in range(counts["pm_bulk"]):
        email = f"{tag}member{i}@rel.example"
        status = PM_BULK_STATUSES[i % 2]
        rec = {"email": email, "firstName": f"M{i}", "lastName": "Member", "company": "Rel",
               "statusName": status, "registrationCode": f"REL-{i}"}  # fmt: skip
        per_stream["pm_bulk"].append(rec)
        expected["leads"][email] = [(rec["firstName"], "Member", "Rel")]
        expected["members"][(1003, email)] = [(status, f"REL-{i}")]
    for i in range(2):  # rejected before sending: not a status of program 1003's channel
        rec = {"email": f"{tag}sleeper{i}@rel.example", "statusName": "Sleeping"}
        per_stream["pm_bulk"].append(rec)
    for i in range(counts["persons"]):
        email = f"{tag}person{i}@rel.example"
        rec = {"email": email, "firstName": f"P{i}", "lastName": "Person", "company": "Ünïcode"}
        per_stream["persons"].append(rec)
        expected["leads"][email] = [(rec["firstName"], "Person", "Ünïcode")]
    for i in range(counts["companies"]):
        key = f"{tag}-co-{i}"
        per_stream["companies"].append(
            {"externalCompanyId": key, "company": f"Company {i}", "numberOfEmployees": i}
        )
        expected["companies"][key] = [(f"Company {i}", i)]
    for i in range(counts["purchases"]):
        vin = f"{tag}VIN{i:07d}"
        # linked to a person that exists (the demo's every 97th lead has another email): a
        # custom object whose person never appears fails after the 202 (data-ingestion.md)
        n = 1 + i % 2000
        email = f"lead{n + 1 if n % 97 == 0 else n}@example.com"
        rec = {"vin": vin, "email": email, "make": "Make", "year": 1990 + i % 30,
               "price": float(i % 1000) + 0.5}  # fmt: skip
        per_stream["purchases"].append(rec)
        expected["purchases"][vin] = [(email, "Make", rec["year"], rec["price"])]

    total = sum(len(v) for v in per_stream.values())
    lines = [
        _msg("SCHEMA", name, schema={"properties": props}, key_properties=keys)
        for name, (props, keys) in SCHEMAS.items()
    ]
    # interleave streams in chunks so every method is in flight at any point of the run
    cursors = dict.fromkeys(per_stream, 0)
    chunk = max(total // 200, 5)
    state_every = max(total // 10, 1)
    sent = 0
    next_state = state_every
    states = []
    while any(cursors[s] < len(per_stream[s]) for s in per_stream):
        for name, recs in per_stream.items():
            # each stream advances in proportion to its size, so all end together
            share = max(1, round(chunk * len(recs) / total))
            for rec in recs[cursors[name] : cursors[name] + share]:
                lines.append(_msg("RECORD", name, record=rec))
                sent += 1
                if sent >= next_state:
                    value = {"sent": sent}
                    states.append(value)
                    lines.append(_msg("STATE", value=value))
                    next_state += state_every
            cursors[name] += share
    final = {"sent": sent, "done": True}
    states.append(final)
    lines.append(_msg("STATE", value=final))
    return TargetWorkload(lines, expected, total, Counter({"unknown_status": 2}), 3, states)


def before_run(sb: Any) -> dict[str, Any]:
    """What the workload builder needs from the sandbox before a run."""
    snap = snapshot(sb)
    leads = sb.admin.dump("leads")
    return {
        "snapshot": snap,
        "leads": [lead["email"] for lead in leads],
        "members": snap["members"],
        "email_to_id": {lead["email"]: lead["id"] for lead in leads},
    }


def target_config(sb: Any, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    config = dict(sb.config)
    config.update(
        streams=STREAMS,
        rejects_path=str(tmp_path / "rejects.jsonl"),
        poll_interval_seconds=0.05,
        max_retries=6,
        request_timeout_seconds=5,
        max_import_file_mb=0.5,
    )
    config.update(extra)
    return config


# --------------------------------------------------------------------------- running


class LogCapture:
    """Every record of our loggers (and singer_sdk's) as formatted text, thread-safe."""

    def __init__(self, level: int = logging.INFO) -> None:
        self.level = level
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.handler.setLevel(level)
        self._levels: list[tuple[logging.Logger, int]] = []

    def __enter__(self) -> Self:
        for name in LOGGERS:
            logger = logging.getLogger(name)
            self._levels.append((logger, logger.level))
            logger.addHandler(self.handler)
            logger.setLevel(self.level)
        return self

    def __exit__(self, *exc: object) -> None:
        for logger, level in self._levels:
            logger.removeHandler(self.handler)
            logger.setLevel(level)

    @property
    def text(self) -> str:
        return self.stream.getvalue()


class LogWatch(logging.Handler):
    """Set once our loggers print `text`: a restart test keeps the sandbox down until a call
    has really failed against it, instead of hoping one falls inside a one-second outage."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.DEBUG)
        self.text = text
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()

    def __enter__(self) -> Self:
        for name in LOGGERS:
            logging.getLogger(name).addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for name in LOGGERS:
            logging.getLogger(name).removeHandler(self)

    def wait(self, timeout: float) -> bool:
        return self.seen.wait(timeout)


@dataclass
class TargetRun:
    code: int
    stdout: str
    stderr: str
    states: list[dict]
    summaries: list[dict]
    rejects: list[dict]
    rejects_text: str


def _read_rejects(path: Path) -> tuple[list[dict], str]:
    if not path.exists():
        return [], ""
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()], text


_METRIC = re.compile(r"METRIC: (\{.*\"target_marketo_ingest\.stream\".*\})")


def run_target_inprocess(
    config: dict, text: str | bytes, *, during: Any = None, log_level: int = logging.INFO
) -> TargetRun:
    """Run the target in this process through its CLI entry (`invoke`), logs captured.

    `during(progress)` runs in a thread while the target works (restart tests).
    """
    from singer_sdk.plugin_base import _ConfigInput  # noqa: PLC0415

    out = io.StringIO()
    code = 0
    worker = None
    with LogCapture(log_level) as logs:
        if during is not None:
            worker = threading.Thread(target=during, args=(out,), daemon=True)
            worker.start()
        with contextlib.redirect_stdout(out):
            try:
                TargetMarketoIngest.invoke(
                    config=_ConfigInput(config=config),
                    file_input=io.BytesIO(text if isinstance(text, bytes) else text.encode()),
                )
            except SystemExit as exc:
                code = int(exc.code or 0)
        if worker is not None:
            worker.join(timeout=60)
    rejects, rejects_text = _read_rejects(_path(config["rejects_path"]))
    stdout = out.getvalue()
    return TargetRun(
        code,
        stdout,
        logs.text,
        [json.loads(line) for line in stdout.splitlines() if line.strip()],
        [json.loads(m)["value"] for m in _METRIC.findall(logs.text)],
        rejects,
        rejects_text,
    )


def _path(value: str) -> Path:
    from pathlib import Path  # noqa: PLC0415

    return Path(value)


def start_target_process(
    config: dict, tmp_path: Path, input_path: Path, *, record_age_minutes: float | None = None
) -> subprocess.Popen:
    """The target as its own process reading `input_path`; stdout/stderr to files.

    `record_age_minutes` lowers the SDK's record age limit (how long an open batch may hold
    back a STATE), so a short test run advances STATE mid-run as a long real one does.
    """
    config_path = tmp_path / "target-config.json"
    config_path.write_text(json.dumps(config))
    code = "from target_marketo_ingest.target import TargetMarketoIngest as T\n"
    if record_age_minutes is not None:
        code += f"T._MAX_RECORD_AGE_IN_MINUTES = {record_age_minutes!r}\n"
    code += "T.cli()\n"
    return subprocess.Popen(
        [sys.executable, "-c", code, "--config", str(config_path)],
        stdin=input_path.open("rb"),
        stdout=(tmp_path / "target.out").open("wb"),
        stderr=(tmp_path / "target.err").open("wb"),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def finish_target_process(proc: subprocess.Popen, config: dict, tmp_path: Path) -> TargetRun:
    code = proc.wait(timeout=240)
    stdout = (tmp_path / "target.out").read_text(encoding="utf-8", errors="replace")
    stderr = (tmp_path / "target.err").read_text(encoding="utf-8", errors="replace")
    rejects, rejects_text = _read_rejects(_path(config["rejects_path"]))
    states = [json.loads(line) for line in stdout.splitlines() if line.strip().endswith("}")]
    return TargetRun(
        code,
        stdout,
        stderr,
        states,
        [json.loads(m)["value"] for m in _METRIC.findall(stderr)],
        rejects,
        rejects_text,
    )


def check_outcomes(run: TargetRun, workload: TargetWorkload, *, received: int | None) -> None:
    """imported + accepted + applied + skipped + rejected + superseded = received, per stream,
    and the total received is the input (when the run saw all of it)."""
    assert run.summaries, run.stderr[-3000:]
    for summary in run.summaries:
        outcomes = (
            summary["imported"]
            + summary["accepted"]
            + summary["applied"]
            + summary["skipped"]
            + summary["rejected"]
            + summary["superseded"]
        )
        assert outcomes == summary["received"], summary
    if received is not None:
        assert sum(s["received"] for s in run.summaries) == received
        rejected = Counter()
        for summary in run.summaries:
            rejected.update(summary["rejected_by_reason"])
        assert rejected == workload.expected_rejects, rejected
        # duplicates in one file are superseded; in two files both are imported, last wins
        assert 0 <= sum(s["superseded"] for s in run.summaries) <= workload.expected_superseded
        reasons = Counter(r["reason"] for r in run.rejects if r["kind"] == "reject")
        assert reasons == workload.expected_rejects


def no_export_left_running(sb: Any) -> None:
    running = [j["exportId"] for j in sb.admin.dump("export_jobs") if j["status"] in RUNNING_STATES]
    assert running == [], f"export jobs left running: {running}"


RUNNING_STATES = ("Queued", "Processing")


def wait_until(check: Any, timeout: float = 30.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# --------------------------------------------------------------------------- tap


@dataclass
class TapRun:
    code: int
    stdout: str
    logs: str
    messages: list[dict]

    def members(self) -> list[dict]:
        return [
            m["record"]
            for m in self.messages
            if m["type"] == "RECORD" and m["stream"] == "program_members"
        ]

    @property
    def states(self) -> list[dict]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]


def tap_config(sb: Any, **extra: Any) -> dict[str, Any]:
    config = dict(sb.config)
    config.update(
        poll_interval_seconds=max(60.0 / sb.time_scale, 0.05),
        max_retries=6,
        request_timeout_seconds=5,
        lead_fields=["email", "firstName", "lastName", "company"],
    )
    config.update(extra)
    return config


def members_catalog(config: dict) -> dict:
    """A catalog selecting only `program_members` (every field)."""
    with LogCapture():
        catalog = json.loads(TapMarketoMembers(config=config).catalog_json_text)
    for entry in catalog["streams"]:
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = entry["tap_stream_id"] == "program_members"
    return catalog


def parse_messages(text: str) -> list[dict]:
    """Singer lines (BATCH messages expanded into their rows, as a target reads them)."""
    lines = text.split("\n")
    # the last line may be one that a SIGKILL cut short
    return expand_batches(
        [json.loads(line) for line in lines if line.strip() and line.rstrip().endswith("}")]
    )


def run_tap_inprocess(
    config: dict,
    catalog: dict,
    *,
    state: dict | None = None,
    during: Any = None,
    log_level: int = logging.INFO,
) -> TapRun:
    """The tap in this process through its CLI; stdout and logs captured; exit code kept."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    code = 0
    worker = None
    with LogCapture(log_level) as logs:
        if during is not None:
            worker = threading.Thread(target=during, daemon=True)
            worker.start()
        with contextlib.redirect_stdout(out):
            try:
                tap = TapMarketoMembers(config=config, state=state, catalog=catalog)
                tap.sync_all()
            except Exception as exc:
                logging.getLogger("tap-marketo-members").error("%s", exc)  # noqa: TRY400
                code = 1
            out.flush()
        if worker is not None:
            worker.join(timeout=60)
    out.seek(0)
    text = out.read()
    return TapRun(code, text, logs.text, parse_messages(text))


def start_tap_process(
    config: dict, catalog: dict, tmp_path: Path, *, state: dict | None = None, name: str = "tap"
) -> tuple[subprocess.Popen, Path, Path]:
    config_path = tmp_path / f"{name}-config.json"
    config_path.write_text(json.dumps(config))
    catalog_path = tmp_path / f"{name}-catalog.json"
    catalog_path.write_text(json.dumps(catalog))
    args = [sys.executable, "-m", "tap_marketo_members.tap", "--config", str(config_path)]
    args += ["--catalog", str(catalog_path)]
    if state is not None:
        state_path = tmp_path / f"{name}-state.json"
        state_path.write_text(json.dumps(state))
        args += ["--state", str(state_path)]
    out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    proc = subprocess.Popen(
        args,
        stdout=out.open("wb"),
        stderr=err.open("wb"),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return proc, out, err


def expected_members(sb: Any) -> dict[tuple[int, int], dict]:
    """Every program member as the tap must emit it, from the sandbox's own dump."""
    return {(m["programId"], m["leadId"]): m for m in sb.admin.dump("program_members")}


def check_tap_records(records: list[dict], expected: dict[tuple[int, int], dict]) -> None:
    """Exactly the expected members, each once, every dumped field equal."""
    keys = Counter((r["programId"], r["leadId"]) for r in records)
    dupes = [k for k, c in keys.items() if c > 1]
    assert not dupes, f"{len(dupes)} members emitted twice, e.g. {dupes[:5]}"
    missing = sorted(set(expected) - set(keys))
    extra = sorted(set(keys) - set(expected))
    assert not missing, f"{len(missing)} members lost, e.g. {missing[:5]}"
    assert not extra, f"{len(extra)} unexpected members, e.g. {extra[:5]}"
    for rec in records:
        want = expected[(rec["programId"], rec["leadId"])]
        for name, value in want.items():
            if name in rec:
                assert rec[name] == (None if value == "" else value), (name, rec, want)
