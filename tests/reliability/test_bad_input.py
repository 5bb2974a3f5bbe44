"""Bad-input corpus: every case ends in a clear message naming the line/record/setting and field.

Input cases put the bad line between good records of the same stream (3 before, a STATE, the
bad line, 3 after, a STATE):
- a record-level problem rejects only that record (exit 0): one line in the rejects file with
  the input line, reason and field; all six good records delivered; received = outcomes.
- a stream-level problem (the input itself is broken) stops the run (exit 1) with one line
  naming the input line: the good records before it are delivered and their STATE emitted, no
  STATE passes the bad line (so a rerun resends what follows), no traceback anywhere.
Setting cases (target and tap): exit 1 before any input is read, one line naming the setting,
no traceback, the secret never echoed.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest
from marketo_sandbox.server import SandboxServer
from reliability_support import run_target_inprocess, wait_ingested

SECRET = "bad-input-secret-4242"
BIG = "x" * 1_100_000  # over Data Ingestion's 1 MB per request, in a field without a length

STREAMS = {
    "leads": {"method": "bulk_leads"},
    "persons": {"method": "ingest_persons"},
    "pm_bulk": {"method": "bulk_program_members", "program_id": 1003},
    "pm_any": {"method": "bulk_program_members"},  # program and status from each record
    "companies": {"method": "ingest_companies"},
    "purchases": {
        "method": "ingest_custom_object",
        "custom_object_name": "purchases",
        "dedupe_fields": ["vin"],
    },
    "pm_rest": {"method": "rest_program_members", "program_id": 1002, "status": "Engaged"},
}
_S = {"type": ["string", "null"]}
_I = {"type": ["integer", "null"]}
PERSON = {
    "email": _S,
    "firstName": _S,
    "lastName": _S,
    "leadScore": {"type": ["integer", "string", "null"]},
    "unsubscribed": {"type": ["boolean", "string", "null"]},
    "lastWebinarAt": _S,
    "leadNotes": _S,
    "_sdc_deleted_at": _S,
}
MEMBER = {"email": _S, "firstName": _S, "programId": {}, "statusName": _S}
SCHEMAS = {
    "leads": (PERSON, ["email"]),
    "persons": (PERSON, ["email"]),
    "pm_bulk": ({"email": _S, "firstName": _S, "statusName": _S}, ["email"]),
    "pm_any": (MEMBER, ["email"]),
    "companies": ({"externalCompanyId": _S, "company": _S, "numberOfEmployees": _I}, []),
    "purchases": ({"vin": _S, "email": _S, "make": _S, "year": _I}, []),
    "pm_rest": ({"leadId": {}}, []),
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One sandbox for the corpus: every case writes its own keys."""
    server = SandboxServer(
        db_path=tmp_path_factory.mktemp("bad-input") / "sandbox.db",
        seed="demo",
        time_scale=600.0,
        client_secret=SECRET,
    ).start()
    yield server
    server.stop()


# --------------------------------------------------------------------------- good records


def good(stream: str, tag: str, i: int, sb: Any) -> dict:
    """A valid record of `stream`, unique to case `tag`."""
    if stream in ("leads", "persons"):
        return {"email": f"{tag}-{i}@bad.example", "firstName": f"G{i}"}
    if stream == "pm_bulk":
        return {"email": f"{tag}-{i}@bad.example", "statusName": "Registered"}
    if stream == "pm_any":
        return {"email": f"{tag}-{i}@bad.example", "programId": 1001, "statusName": "Invited"}
    if stream == "companies":
        return {"externalCompanyId": f"{tag}-{i}", "company": f"Good {i}"}
    if stream == "purchases":
        return {"vin": f"{tag}-{i}", "email": "lead1@example.com", "make": "Good", "year": 2000}
    if stream == "pm_rest":
        return {"leadId": _rest_leads(sb)[tag][i]}
    raise AssertionError(stream)


_REST_POOL: dict[str, list[int]] = {}


def _rest_leads(sb: Any) -> dict[str, list[int]]:
    """Six leads per REST case that are not yet members of program 1002."""
    if not _REST_POOL:
        members = {m["leadId"] for m in sb.admin.dump("program_members", program_id=1002)}
        free = sorted(lead["id"] for lead in sb.admin.dump("leads") if lead["id"] not in members)
        for n, case in enumerate(c.id for c in CASES if c.stream == "pm_rest"):
            _REST_POOL[case] = free[n * 6 : n * 6 + 6]
    return _REST_POOL


def delivered(sb: Any, stream: str, records: list[dict]) -> list[dict]:
    """The good records that did not reach the sandbox (empty = all delivered)."""
    wait_ingested(sb)
    if stream in ("leads", "persons", "pm_bulk", "pm_any"):
        leads = {lead["email"]: lead for lead in sb.admin.dump("leads")}
        missing = [r for r in records if r["email"] not in leads]
        if stream in ("pm_bulk", "pm_any"):
            program = 1003 if stream == "pm_bulk" else 1001
            members = {m["leadId"] for m in sb.admin.dump("program_members", program_id=program)}
            missing += [
                r for r in records if r["email"] in leads and leads[r["email"]]["id"] not in members
            ]
        return missing
    if stream == "companies":
        keys = {c.get("externalCompanyId") for c in sb.admin.dump("companies")}
        return [r for r in records if r["externalCompanyId"] not in keys]
    if stream == "purchases":
        objects = sb.admin.dump("custom_objects")
        keys = {(o.get("fields") or o).get("vin") for o in objects}
        return [r for r in records if r["vin"] not in keys]
    if stream == "pm_rest":
        members = {m["leadId"] for m in sb.admin.dump("program_members", program_id=1002)}
        return [r for r in records if r["leadId"] not in members]
    raise AssertionError(stream)


# --------------------------------------------------------------------------- the corpus


@dataclass
class Case:
    id: str
    stream: str
    bad: Any  # a record dict (sent as RECORD of `stream`), or a raw line (str / bytes)
    reason: str | None = None  # record-level: the reject reason; None = the run stops
    field: str | None = None  # the field the reject or error names
    parts: tuple[str, ...] = ()  # text the error line must contain
    config: dict = dataclasses.field(default_factory=dict)
    extra_schema: dict | None = None  # replaces the stream's SCHEMA properties


def _record_line(stream: str, rec: dict) -> str:
    return json.dumps({"type": "RECORD", "stream": stream, "record": rec})


CASES = [
    # ---- the input itself is broken: stop at that line, keep what came before
    Case("malformed_json", "leads", '{"type": "RECORD", "stream": "leads", record: {}}',
         parts=("malformed JSON",)),
    Case("truncated_line", "leads", '{"type": "RECORD", "stream": "leads", "record": {"em',
         parts=("malformed JSON",)),
    Case("record_before_schema", "leads", _record_line("ghosts", {"email": "g@bad.example"}),
         parts=("stream 'ghosts'", "before its SCHEMA")),
    Case("unknown_stream", "leads",
         json.dumps({"type": "SCHEMA", "stream": "widgets", "schema": {"properties": {}},
                     "key_properties": []}),
         parts=("stream 'widgets'", "no write method")),
    Case("non_utf8_bytes", "leads", b'{"type": "RECORD", "stream": "leads", "record": '
         b'{"email": "\xff\xfe@bad.example"}}', parts=("not UTF-8",)),
    Case("unknown_message_type", "leads", '{"type": "LOG", "message": "hi"}',
         parts=("unknown Singer message type 'LOG'",)),
    Case("not_an_object", "leads", "[1, 2, 3]", parts=("expected a JSON object",)),
    Case("schema_without_key_field", "leads",
         json.dumps({"type": "SCHEMA", "stream": "leads",
                     "schema": {"properties": {"firstName": _S}}, "key_properties": []}),
         field="email", parts=("stream 'leads'", "email")),
    Case("unknown_schema_field", "leads",
         json.dumps({"type": "SCHEMA", "stream": "leads",
                     "schema": {"properties": {**PERSON, "shoeSize": _I}},
                     "key_properties": ["email"]}),
         field="shoeSize", parts=("stream 'leads'", "field 'shoeSize'")),
    # ---- one bad record: rejected with its reason, the others delivered
    Case("wrong_type_integer", "leads", {"email": "wt@bad.example", "leadScore": "lots"},
         reason="type", field="leadScore"),
    Case("wrong_type_boolean", "persons", {"email": "wb@bad.example", "unsubscribed": "maybe"},
         reason="type", field="unsubscribed"),
    Case("wrong_type_for_schema", "leads", {"email": "ws@bad.example", "firstName": 12},
         reason="schema_mismatch", field="firstName"),
    Case("missing_lookup_field", "leads", {"firstName": "No Email"},
         reason="missing_key_property", field="email"),
    Case("null_lookup_field", "leads", {"email": None, "firstName": "Null Email"},
         reason="missing_key_field", field="email"),
    Case("missing_dedupe_field_persons", "persons", {"firstName": "No Email"},
         reason="missing_key_property", field="email"),
    Case("missing_dedupe_field_custom_object", "purchases", {"email": "lead1@example.com"},
         reason="missing_key_field", field="vin"),
    Case("missing_external_company_id", "companies", {"company": "Keyless"},
         reason="missing_key_field", field="externalCompanyId"),
    Case("unknown_field_in_record", "leads", {"email": "uf@bad.example", "shoeSize": 9},
         reason="unknown_field", field="shoeSize"),
    Case("string_too_long", "leads", {"email": "tl@bad.example", "firstName": "y" * 300},
         reason="too_long", field="firstName"),
    # An email no address can be is caught before Marketo (one would fail a whole ingestion
    # request); what only Marketo can judge (a datetime it cannot read) is its reject.
    Case("invalid_email_ingestion", "persons", {"email": "not-an-email", "firstName": "Bad"},
         reason="type", field="email"),
    Case("invalid_email_bulk", "leads", {"email": "still not an email", "firstName": "Bad"},
         reason="type", field="email"),
    Case("invalid_datetime_ingestion", "persons",
         {"email": "dti@bad.example", "lastWebinarAt": "soon"}, reason="marketo_invalid"),
    Case("invalid_datetime_bulk", "leads", {"email": "dt@bad.example", "lastWebinarAt": "soon"},
         reason="marketo_failure"),
    Case("record_over_1mb_ingestion", "persons", {"email": "big@bad.example", "leadNotes": BIG},
         reason="record_too_large"),
    Case("invalid_program_id", "pm_any",
         {"email": "ip@bad.example", "programId": 4242, "statusName": "Invited"},
         reason="unknown_program", field="programId"),
    Case("program_id_not_a_number", "pm_any",
         {"email": "ipn@bad.example", "programId": "webinar", "statusName": "Invited"},
         reason="type", field="programId"),
    Case("missing_program_id", "pm_any", {"email": "mp@bad.example", "statusName": "Invited"},
         reason="missing_program", field="programId"),
    Case("unknown_status_name", "pm_bulk", {"email": "us@bad.example", "statusName": "Asleep"},
         reason="unknown_status", field="statusName"),
    Case("not_in_program_status", "pm_bulk",
         {"email": "nip@bad.example", "statusName": "Not in Program"},
         reason="not_in_program_status", field="statusName"),
    Case("missing_status", "pm_bulk", {"email": "ms@bad.example"},
         reason="missing_status", field="statusName"),
    Case("delete_on_bulk_leads", "leads", {"email": "del@bad.example", "_sdc_deleted_at": "2026"},
         reason="delete_not_supported"),
    Case("invalid_lead_id_rest", "pm_rest", {"leadId": "abc"}, reason="type", field="leadId"),
    Case("unknown_lead_id_rest", "pm_rest", {"leadId": 987_654_321}, reason="marketo_skipped"),
]  # fmt: skip


def _lines(case: Case, sb: Any) -> tuple[list[bytes], list[dict], int]:
    """Input lines, the good records, and the 1-based line of the bad one."""
    lines: list[bytes] = []
    streams = {case.stream, "leads"}
    for name in sorted(streams):
        props, keys = SCHEMAS[name]
        message = {"type": "SCHEMA", "stream": name, "schema": {"properties": props}}
        message["key_properties"] = keys
        lines.append(json.dumps(message).encode())
    goods = [good(case.stream, case.id, i, sb) for i in range(6)]
    lines += [_record_line(case.stream, rec).encode() for rec in goods[:3]]
    lines.append(json.dumps({"type": "STATE", "value": {"case": case.id, "at": "before"}}).encode())
    bad = case.bad
    if isinstance(bad, dict):
        bad = _record_line(case.stream, bad)
    lines.append(bad if isinstance(bad, bytes) else bad.encode())
    bad_line = len(lines)
    lines += [_record_line(case.stream, rec).encode() for rec in goods[3:]]
    lines.append(json.dumps({"type": "STATE", "value": {"case": case.id, "at": "end"}}).encode())
    return lines, goods, bad_line


def _config(sb: Any, tmp_path: Any, **extra: Any) -> dict:
    config = dict(sb.config)
    config.update(
        streams=STREAMS,
        rejects_path=str(tmp_path / "rejects.jsonl"),
        poll_interval_seconds=0.05,
        max_retries=2,
    )
    config.update(extra)
    return config


def _error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(("ERROR", "CRITICAL"))]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input(case: Case, sb, tmp_path, capfd):
    lines, goods, bad_line = _lines(case, sb)
    config = _config(sb, tmp_path, **case.config)
    run = run_target_inprocess(config, b"\n".join(lines) + b"\n")
    captured = capfd.readouterr()
    everything = run.stderr + captured.out + captured.err + run.stdout + run.rejects_text
    assert "Traceback" not in everything
    assert SECRET not in everything
    if case.reason is None:
        assert run.code == 1, run.stderr[-2000:]
        errors = _error_lines(run.stderr)
        assert errors, run.stderr[-2000:]
        message = errors[-1]
        assert f"line {bad_line}" in message or case.field, message
        for part in case.parts:
            assert part in message, message
        # work before the bad line is kept and its STATE emitted; nothing after it passes
        assert run.states == [{"case": case.id, "at": "before"}]
        assert delivered(sb, case.stream, goods[:3]) == []
        return
    assert run.code == 0, run.stderr[-2000:]
    rejects = [r for r in run.rejects if r["kind"] == "reject"]
    assert len(rejects) == 1, rejects
    (reject,) = rejects
    assert reject["line"] == bad_line
    assert reject["reason"] == case.reason
    assert reject["message"]
    if case.field:
        assert reject["field"] == case.field
    assert run.states[-1] == {"case": case.id, "at": "end"}
    (summary,) = [s for s in run.summaries if s["stream"] == case.stream]
    assert summary["received"] == 7
    assert summary["rejected"] == 1
    outcomes = summary["imported"] + summary["accepted"] + summary["applied"] + summary["skipped"]
    assert outcomes + summary["rejected"] + summary["superseded"] == summary["received"]
    assert delivered(sb, case.stream, goods) == []


def test_duplicate_keys_in_one_batch_last_record_wins(sb, tmp_path):
    """Not an error: the earlier record is superseded (counted), the last one is written."""
    lines = [
        {"type": "SCHEMA", "stream": name, "schema": {"properties": SCHEMAS[name][0]},
         "key_properties": SCHEMAS[name][1]}
        for name in ("leads", "persons", "companies")
    ]  # fmt: skip
    for n in range(3):
        for stream, rec in (
            ("leads", {"email": "dup-lead@bad.example"}),
            ("persons", {"email": "dup-person@bad.example"}),
            ("companies", {"externalCompanyId": "dup-co"}),
        ):
            name = "company" if stream == "companies" else "firstName"
            lines.append({"type": "RECORD", "stream": stream, "record": {**rec, name: f"v{n}"}})
    lines.append({"type": "STATE", "value": {"dup": True}})
    run = run_target_inprocess(_config(sb, tmp_path), "".join(json.dumps(m) + "\n" for m in lines))
    assert run.code == 0, run.stderr[-2000:]
    for summary in run.summaries:
        assert summary["received"] == 3
        assert summary["superseded"] == 2
        assert summary["imported"] + summary["accepted"] + summary["applied"] == 1
    leads = {lead["email"]: lead for lead in sb.admin.dump("leads")}
    assert leads["dup-lead@bad.example"]["firstName"] == "v2"
    wait_ingested(sb)
    assert {x["email"]: x for x in sb.admin.dump("leads")}["dup-person@bad.example"][
        "firstName"
    ] == "v2"
    companies = [c for c in sb.admin.dump("companies") if c.get("externalCompanyId") == "dup-co"]
    assert [c["company"] for c in companies] == ["v2"]
    assert run.states == [{"dup": True}]


# --------------------------------------------------------------------------- settings

OFFLINE = {
    "client_id": "cid",
    "client_secret": SECRET,
    "base_url": "http://127.0.0.1:9",
    "max_retries": 0,
}
TARGET_SETTINGS = [
    ("missing_secret", {"client_secret": None}, "client_secret"),
    ("blank_secret", {"client_secret": " "}, "client_secret"),
    ("missing_client_id", {"client_id": None}, "client_id"),
    ("http_to_remote_host", {"base_url": "http://marketo.example.com"}, "base_url"),
    ("base_url_not_a_url", {"base_url": "marketo"}, "base_url"),
    ("ingestion_http_remote", {"ingestion_base_url": "http://ingest.example.com"},
     "ingestion_base_url"),
    ("malformed_munchkin_id", {"munchkin_id": "12-AB"}, "munchkin_id"),
    ("streams_unknown_method", {"streams": {"x": {"method": "carrier_pigeon"}}}, "method"),
    ("streams_missing_object_name", {"streams": {"x": {"method": "ingest_custom_object"}}},
     "custom_object_name"),
    ("streams_unexpected_key", {"streams": {"x": {"method": "bulk_leads", "colour": 1}}},
     "colour"),
    ("streams_not_a_mapping", {"streams": ["leads"]}, "streams"),
    ("max_import_file_mb_over_10", {"max_import_file_mb": 11}, "max_import_file_mb"),
    ("max_concurrent_imports_3", {"max_concurrent_imports": 3}, "max_concurrent_imports"),
    ("fail_on_rejects_negative", {"fail_on_rejects": -1}, "fail_on_rejects"),
    ("unknown_fields_bad_value", {"unknown_fields": "ignore"}, "unknown_fields"),
]  # fmt: skip


def _run_cli(module: str, config: dict, tmp_path: Any) -> tuple[int, str]:
    """The connector's real entry point as a process (stderr exactly as a user sees it)."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps({k: v for k, v in config.items() if v is not None}))
    done = subprocess.run(
        [sys.executable, "-m", module, "--config", str(path)],
        input=b"",
        capture_output=True,
        timeout=60,
        check=False,
    )
    return done.returncode, (done.stdout + done.stderr).decode("utf-8", "replace")


@pytest.mark.parametrize(("name", "change", "setting"), TARGET_SETTINGS, ids=lambda x: x)
def test_bad_target_setting(name, change, setting, tmp_path):
    config = {**OFFLINE, "rejects_path": str(tmp_path / "r.jsonl"), **change}
    code, text = _run_cli("target_marketo_ingest.target", config, tmp_path)
    assert code == 1, text[-2000:]
    assert setting in text, text[-2000:]
    assert "Traceback" not in text
    assert SECRET not in text


TAP_SETTINGS = [
    ("tap_window_days_45", {"window_days": 45}, "window_days"),
    ("tap_updated_at_filter", {"updated_at_filter": "sometimes"}, "updated_at_filter"),
    ("tap_max_concurrent_exports_3", {"max_concurrent_exports": 3}, "max_concurrent_exports"),
    ("tap_start_date_not_a_date", {"start_date": "yesterday"}, "start_date"),
    ("tap_program_ids_not_numbers", {"program_ids": ["abc"]}, "program_ids"),
    ("tap_http_to_remote_host", {"base_url": "http://marketo.example.com"}, "base_url"),
    ("tap_missing_secret", {"client_secret": None}, "client_secret"),
    ("tap_malformed_munchkin_id", {"munchkin_id": "12-AB"}, "munchkin_id"),
]


@pytest.mark.parametrize(("name", "change", "setting"), TAP_SETTINGS, ids=lambda x: x)
def test_bad_tap_setting(name, change, setting, tmp_path):
    code, text = _run_cli("tap_marketo_members.tap", {**OFFLINE, **change}, tmp_path)
    assert code == 1, text[-2000:]
    assert setting in text, text[-2000:]
    assert "Traceback" not in text
    assert SECRET not in text
