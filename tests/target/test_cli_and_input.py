"""Bad input and settings end in one clear line and exit 1; dry runs send nothing; no secrets."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys

import pytest
from singer_sdk.plugin_base import _ConfigInput
from target_helpers import LEAD_SCHEMA, messages_to_text, record, run_target, schema, state
from target_helpers import target_config as make_config
from target_marketo_ingest.target import TargetMarketoIngest

OFFLINE = {
    "client_id": "cid",
    "client_secret": "very-secret-value",
    "base_url": "http://127.0.0.1:9",
    "max_retries": 0,
}


def _invoke(config: dict, data: bytes, caplog) -> tuple[int, list[logging.LogRecord]]:
    caplog.clear()
    code = 0
    with caplog.at_level(logging.INFO):
        try:
            TargetMarketoIngest.invoke(
                config=_ConfigInput(config=config), file_input=io.BytesIO(data)
            )
        except SystemExit as exc:
            code = exc.code
    return code, list(caplog.records)


def _errors(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            ['{"type": "STATE", "value": 1}', '{"type": "RECORD", "stream": "leads", "rec'],
            [
                "line 2",
                "malformed JSON",
            ],
        ),
        ([record("leads", {"email": "a@b.c"})], ["line 1", "stream 'leads'", "before its SCHEMA"]),
        (
            [schema("widgets", LEAD_SCHEMA)],
            ["line 1", "stream 'widgets'", "no write method", "'streams' setting"],
        ),
        ([b'{"type": "STATE", "value": "\xff\xfe"}'], ["line 1", "not UTF-8"]),
        (['{"type": "LOG", "x": 1}'], ["line 1", "unknown Singer message type 'LOG'"]),
        (["[1, 2]"], ["line 1", "expected a JSON object"]),
    ],
)
def test_bad_input_is_one_clear_line(lines, expected, caplog, tmp_path):
    data = b"".join(
        line + b"\n" if isinstance(line, bytes) else messages_to_text([line]).encode()
        for line in lines
    )
    config = {**OFFLINE, "rejects_path": str(tmp_path / "r.jsonl")}
    code, records = _invoke(config, data, caplog)
    assert code == 1
    (message,) = _errors(records)
    assert "\n" not in message
    for part in expected:
        assert part in message
    assert not any(r.exc_info for r in records)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"streams": {"x": {"method": "carrier_pigeon"}}}, "['streams']['x']['method']"),
        ({"streams": {"x": {"method": "ingest_custom_object"}}}, "streams.x.custom_object_name"),
        ({"streams": {"x": {"method": "bulk_leads", "colour": 1}}}, "'colour' was unexpected"),
        ({"streams": {"x": {"method": "bulk_leads", "list_id": "abc"}}}, "['x']['list_id']"),
        ({"streams": {"x*": {"lookup_field": "email"}}}, "streams.x*.method: required"),
        ({"max_import_file_mb": 11}, "config['max_import_file_mb']"),
        ({"max_concurrent_imports": 3}, "config['max_concurrent_imports']"),
        ({"fail_on_rejects": -1}, "fail_on_rejects: expected a count"),
        ({"fail_on_rejects": "lots"}, "fail_on_rejects: expected a count"),
    ],
)
def test_bad_settings_name_the_setting(change, expected, caplog, tmp_path):
    config = {**OFFLINE, "rejects_path": str(tmp_path / "r.jsonl"), **change}
    caplog.clear()
    with caplog.at_level(logging.INFO), pytest.raises(SystemExit) as exit_info:
        TargetMarketoIngest.cli.main(["--config", _write(tmp_path, config)], standalone_mode=True)
    assert exit_info.value.code == 1
    errors = _errors(caplog.records)
    assert any(expected in e for e in errors), errors
    assert all("\n" not in e for e in errors)
    assert not any(r.exc_info for r in caplog.records)


@pytest.mark.parametrize(
    ("streams", "expected"),
    [
        (
            {"companies": {"dedupe_by": "idField"}},
            "streams.companies.dedupe_by: idField is only allowed with action updateOnly",
        ),
        (
            {
                "purchases": {
                    "method": "ingest_custom_object",
                    "custom_object_name": "purchases",
                    "dedupe_by": "idField",
                }
            },
            "streams.purchases.dedupe_by: expected one of dedupeFields, marketoGUID",
        ),
    ],
)
def test_dedupe_by_settings_fail_before_input_is_read(streams, expected, caplog, tmp_path):
    """The input is malformed: had it been read, its error would be logged as well."""
    config = {**OFFLINE, "rejects_path": str(tmp_path / "r.jsonl"), "streams": streams}
    code, records = _invoke(config, b'{"type": "RECORD", "stream": "companies", "rec\n', caplog)
    assert code == 1
    (message,) = _errors(records)
    assert message.startswith(expected)
    assert "\n" not in message
    assert not any(r.exc_info for r in records)


def _write(tmp_path, config: dict) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return str(path)


def test_records_before_a_bad_line_are_still_written(shared_sandbox, tmp_path, caplog):
    config = make_config(shared_sandbox, tmp_path)
    lines = [schema("leads", LEAD_SCHEMA)]
    lines += [record("leads", {"email": f"early{i}@example.com"}) for i in range(3)]
    lines.append(state({"s": 3}))
    data = messages_to_text(lines).encode() + b"{not json\n"
    code, records = _invoke(config, data, caplog)
    assert code == 1
    assert any("line 6" in e for e in _errors(records))
    emails = {lead["email"] for lead in shared_sandbox.admin.dump("leads")}
    assert {f"early{i}@example.com" for i in range(3)} <= emails


def test_unknown_schema_field_is_an_error_or_dropped(shared_sandbox, tmp_path, caplog):
    props = {"properties": {**LEAD_SCHEMA["properties"], "shoeSize": {"type": "integer"}}}
    lines = [schema("leads", props), record("leads", {"email": "shoe@example.com", "shoeSize": 9})]
    code, records = _invoke(
        make_config(shared_sandbox, tmp_path), messages_to_text(lines).encode(), caplog
    )
    assert code == 1
    (message,) = _errors(records)
    assert "stream 'leads'" in message
    assert "field 'shoeSize'" in message
    run = run_target(make_config(shared_sandbox, tmp_path, unknown_fields="drop"), lines)
    assert run.summary("leads")["imported"] == 1


def test_dry_run_sends_nothing(shared_sandbox, tmp_path):
    before = len(shared_sandbox.admin.dump("calls"))
    jobs_before = len(shared_sandbox.admin.dump("import_jobs"))
    config = make_config(
        shared_sandbox,
        tmp_path,
        dry_run=True,
        streams={"people": {"method": "ingest_persons"}, "pm": {"method": "rest_program_members"}},
    )
    lines = [schema("leads", LEAD_SCHEMA), schema("people", LEAD_SCHEMA)]
    lines.append(schema("pm", {"properties": {"leadId": {"type": "integer"}}}))
    lines += [record("leads", {"email": f"dry{i}@example.com"}) for i in range(20)]
    lines += [record("people", {"email": f"drier{i}@example.com"}) for i in range(20)]
    lines += [record("pm", {"leadId": 5, "programId": 1002, "statusName": "Member"})]
    lines.append(state({"dry": True}))
    run = run_target(config, lines)
    assert run.summary("leads")["dry_run"] == 20
    assert run.summary("leads")["files"] == 1
    assert run.summary("people")["dry_run"] == 20
    assert run.summary("pm")["dry_run"] == 1
    assert run.states == []  # nothing written, so no progress to save
    calls = shared_sandbox.admin.dump("calls")[before:]
    writes = [c for c in calls if c["method"] == "POST" and "oauth" not in c["path"]]
    assert writes == []
    assert len(shared_sandbox.admin.dump("import_jobs")) == jobs_before
    emails = {lead["email"] for lead in shared_sandbox.admin.dump("leads")}
    assert not any(e.startswith("dr") for e in emails)


def test_no_secret_in_any_output(shared_sandbox, tmp_path, caplog):
    config = make_config(shared_sandbox, tmp_path, streams={"people": {"method": "ingest_persons"}})
    lines = [schema("leads", LEAD_SCHEMA), schema("people", LEAD_SCHEMA)]
    lines += [record("leads", {"email": "s@example.com", "leadScore": "x"})]
    lines += [record("people", {"email": "s2@example.com"}), state({"ok": 1})]
    with caplog.at_level(logging.DEBUG):
        run = run_target(config, lines)
    token = run.target.client.tokens.get_token()
    secret = config["client_secret"]
    outputs = [
        "\n".join(r.getMessage() for r in caplog.records),
        json.dumps(run.states),
        (tmp_path / "rejects.jsonl").read_text(),
        repr(run.target.client),
        repr(run.target.client.settings),
    ]
    for text in outputs:
        assert secret not in text
        assert token not in text
    for call in shared_sandbox.admin.dump("calls"):
        assert token not in (call.get("query") or "")


@pytest.fixture
def keep_logging_handlers():
    """The SDK's CLI attaches log handlers to the streams capsys swaps in, closed after the
    test; later tests in the process would log "Logging error" tracebacks through them."""

    def loggers() -> list[logging.Logger]:
        named = logging.Logger.manager.loggerDict.values()
        return [logging.getLogger(), *(x for x in named if isinstance(x, logging.Logger))]

    before = {id(x): list(x.handlers) for x in loggers()}
    yield
    for log in loggers():
        kept = before.get(id(log), [])
        log.handlers[:] = [h for h in log.handlers if h in kept]


@pytest.mark.usefixtures("keep_logging_handlers")
def test_about_documents_every_setting(capsys):
    with pytest.raises(SystemExit) as exit_info:
        TargetMarketoIngest.cli.main(["--about", "--format=markdown"], standalone_mode=True)
    assert exit_info.value.code == 0
    about = capsys.readouterr().out
    for name in (
        "client_secret",
        "streams",
        "rejects_path",
        "dry_run",
        "max_import_file_mb",
        "max_concurrent_imports",
        "fail_on_rejects",
        "unknown_fields",
        "warnings_as_rejects",
    ):
        assert f"| {name} |" in about


def test_cli_process_non_utf8(tmp_path):
    config = _write(tmp_path, {**OFFLINE, "rejects_path": str(tmp_path / "r.jsonl")})
    done = subprocess.run(
        [sys.executable, "-m", "target_marketo_ingest.target", "--config", config],
        input=b'{"type": "STATE", "value": {}}\n{"type": "STATE", "value": "\xc3\x28"}\n',
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert b"Traceback" not in done.stderr
    assert b"line 2" in done.stderr
    assert b"not UTF-8" in done.stderr
    assert b"very-secret-value" not in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"base_url": "http://marketo.example.com"}, "'base_url'"),
        ({"munchkin_id": "nope"}, "'munchkin_id'"),
        ({"client_secret": " "}, "'client_secret'"),
    ],
)
def test_connection_settings_fail_before_input(change, expected, caplog, tmp_path):
    config = {**OFFLINE, "rejects_path": str(tmp_path / "r.jsonl"), **change}
    code, records = _invoke(config, b"", caplog)
    assert code == 1
    (message,) = _errors(records)
    assert expected in message
    assert "very-secret-value" not in message


def test_state_with_fractions_passes_through(shared_sandbox, tmp_path):
    """A tap may keep a fraction in its STATE (the SDK reads it as Decimal): it goes back out
    as the same JSON number, not as a TypeError at the end of the pipe."""
    config = make_config(shared_sandbox, tmp_path)
    lines = [schema("leads", LEAD_SCHEMA), record("leads", {"email": "fraction@example.com"})]
    value = {"bookmarks": {"s": {"bytes_per_member": 290.4, "count": 3, "big": 12345678901234}}}
    lines.append(state(value))
    run = run_target(config, lines)
    assert run.states[-1] == value
