"""BATCH messages: rows of JSONL files go through the same validation, outcomes and STATE."""

from __future__ import annotations

import gzip
import io
import json
import logging
import tracemalloc
from pathlib import Path

import pytest
from singer_sdk.helpers.capabilities import PluginCapabilities
from singer_sdk.plugin_base import _ConfigInput
from target_helpers import (
    LEAD_SCHEMA,
    messages_to_text,
    record,
    run_target,
    schema,
    state,
    target_config,
    wait_ingested,
)
from target_marketo_ingest import batch_files, lines, sdk
from target_marketo_ingest.target import TargetMarketoIngest


def _write_rows(path: Path, rows: list[dict | str], *, gz: bool) -> str:
    """A batch file as SDK taps write it: raw records, one JSON document per line."""
    data = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path.resolve().as_uri()


def batch(stream: str, urls: list[str], *, gz: bool) -> dict:
    return {
        "type": "BATCH",
        "stream": stream,
        "encoding": {"format": "jsonl", "compression": "gzip" if gz else None},
        "manifest": urls,
    }


def _lead(prefix: str, i: int, **extra: object) -> dict:
    return {"email": f"{prefix}{i}@batch.example", "firstName": f"B{i}", "leadScore": i, **extra}


def test_bulk_leads_from_gzip_and_plain_files(shared_sandbox, tmp_path):
    """Rows count, reject with file#row (local and Marketo failures), and STATE waits for all."""
    gz_rows: list[dict | str] = [_lead("gz", i) for i in range(30)]
    gz_rows[4] = _lead("gz", 4, leadScore="many")  # local validation reject
    gz_rows[9] = '{"email": "broken@batch.example", "firstN'  # malformed row
    gz_rows[13] = "[1, 2, 3]"  # JSON, but not a record
    gz_rows[21] = _lead("gz", 21, lastWebinarAt="not-a-date")  # Marketo rejects the row
    plain_rows: list[dict | str] = [_lead("plain", i) for i in range(12)]
    plain_rows[7] = {"firstName": "no email"}  # missing the lookup field
    gz_url = _write_rows(tmp_path / "leads-1.json.gz", gz_rows, gz=True)
    plain_url = _write_rows(tmp_path / "leads-2.jsonl", plain_rows, gz=False)
    messages = [
        schema("leads", LEAD_SCHEMA, ["email"]),
        record("leads", _lead("rec", 0)),
        state({"s": 1}),
        batch("leads", [gz_url], gz=True),
        state({"s": 2}),
        batch("leads", [plain_url], gz=False),
        state({"s": 3}),
    ]
    config = target_config(shared_sandbox, tmp_path, max_import_file_mb=0.002)
    target = TargetMarketoIngest(config=config)
    outcomes_at_emit: list[tuple[int, int]] = []
    emit = target.checkpoints._emit

    def watch(value: dict) -> None:
        summary = target.summaries[0]
        outcomes_at_emit.append((summary.received, summary.with_outcome))
        emit(value)

    target.checkpoints._emit = watch
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("sys.stdout", out)
        target.listen(io.BytesIO(messages_to_text(messages).encode()))
    states = [json.loads(line) for line in out.getvalue().splitlines()]
    rejects = [json.loads(line) for line in Path(config["rejects_path"]).read_text().splitlines()]

    summary = next(s.as_dict() for s in target.summaries if s.stream == "leads")
    assert summary["received"] == 1 + len(gz_rows) + len(plain_rows)
    assert summary["without_outcome"] == 0
    assert summary["imported"] + summary["rejected"] + summary["superseded"] == summary["received"]
    by_line = {r["line"]: r for r in rejects if r["kind"] == "reject"}
    assert set(by_line) == {
        f"{gz_url}#5",
        f"{gz_url}#10",
        f"{gz_url}#14",
        f"{gz_url}#22",
        f"{plain_url}#8",
    }
    assert by_line[f"{gz_url}#5"]["field"] == "leadScore"
    assert by_line[f"{gz_url}#10"]["reason"] == "malformed_row"
    assert by_line[f"{gz_url}#10"]["record"].startswith('{"email": "broken@')
    assert by_line[f"{gz_url}#14"]["reason"] == "malformed_row"
    assert by_line[f"{gz_url}#22"]["reason"] == "marketo_failure"
    assert by_line[f"{gz_url}#22"]["record"]["email"] == "gz21@batch.example"
    assert by_line[f"{plain_url}#8"]["field"] == "email"
    assert summary["rejected"] == 5

    # STATE in input order, each only once every row before it had an outcome.
    assert states[-1] == {"s": 3}
    assert states == sorted(states, key=lambda s: s["s"])
    assert outcomes_at_emit
    assert all(received == done for received, done in outcomes_at_emit)

    emails = {lead["email"] for lead in shared_sandbox.admin.dump("leads")}
    assert {"gz0@batch.example", "gz29@batch.example", "plain11@batch.example"} <= emails
    assert "gz21@batch.example" not in emails


def test_ingest_persons_from_a_manifest_of_two_files(shared_sandbox, tmp_path):
    """Data Ingestion rows from BATCH files: accepted after the 202, 4000802 names file#row."""
    first = _write_rows(tmp_path / "p-1.json.gz", [_lead("ing", i) for i in range(10)], gz=True)
    rows = [_lead("ing", i) for i in range(10, 20)]
    rows[3] = _lead("ing", 13, lastWebinarAt="yesterday-ish")
    second = _write_rows(tmp_path / "p-2.json.gz", rows, gz=True)
    config = target_config(
        shared_sandbox, tmp_path, streams={"people": {"method": "ingest_persons"}}
    )
    messages = [
        schema("people", LEAD_SCHEMA),
        batch("people", [first, second], gz=True),
        state({"people": 20}),
    ]
    run = run_target(config, messages)

    summary = run.summary("people")
    assert summary["received"] == 20
    assert summary["applied"] == 19
    (reject,) = run.rejects
    assert reject["line"] == f"{second}#4"
    assert reject["code"] == "4000802"
    assert run.states == [{"people": 20}]
    wait_ingested(shared_sandbox)
    emails = {lead["email"] for lead in shared_sandbox.admin.dump("leads")}
    assert {f"ing{i}@batch.example" for i in range(20) if i != 13} <= emails


def _invoke(config: dict, messages: list[dict], caplog) -> tuple[int, list[str]]:
    caplog.clear()
    code = 0
    with caplog.at_level(logging.INFO):
        try:
            TargetMarketoIngest.invoke(
                config=_ConfigInput(config=config),
                file_input=io.BytesIO(messages_to_text(messages).encode()),
            )
        except SystemExit as exc:
            code = exc.code
    assert not any(r.exc_info for r in caplog.records)
    return code, [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_bad_batch_files_are_one_clear_error(shared_sandbox, tmp_path, caplog):
    """Missing file, broken gzip, another format: one line naming the file, no traceback."""
    config = target_config(shared_sandbox, tmp_path)
    head = [schema("leads", LEAD_SCHEMA, ["email"])]
    missing = (tmp_path / "gone" / "nowhere.json.gz").resolve().as_uri()
    code, errors = _invoke(config, [*head, batch("leads", [missing], gz=True)], caplog)
    assert code == 1
    (message,) = errors
    assert f"BATCH file {missing} not found" in message
    assert "line 2" in message
    assert not (tmp_path / "gone").exists()  # reading creates no folder

    plain = _write_rows(tmp_path / "plain.json.gz", [_lead("x", 1)], gz=False)
    code, errors = _invoke(config, [*head, batch("leads", [plain], gz=True)], caplog)
    assert code == 1
    (message,) = errors
    assert f"BATCH file {plain} cannot be read" in message

    wrong = batch("leads", [plain], gz=False)
    wrong["encoding"] = {"format": "parquet", "compression": None}
    code, errors = _invoke(config, [*head, wrong], caplog)
    assert code == 1
    assert "BATCH format 'parquet' is not supported" in errors[0]

    code, errors = _invoke(config, [batch("leads", [plain], gz=False)], caplog)
    assert code == 1
    assert "BATCH before its SCHEMA" in errors[0]


def test_truncated_gzip_keeps_rows_before_the_break(shared_sandbox, tmp_path, caplog):
    """Files are streamed: rows read before a break are written, the error names file#row."""
    data = gzip.compress("".join(json.dumps(_lead("cut", i)) + "\n" for i in range(2000)).encode())
    path = tmp_path / "cut.json.gz"
    path.write_bytes(data[: len(data) * 2 // 3])
    url = path.resolve().as_uri()
    config = target_config(shared_sandbox, tmp_path)
    code, errors = _invoke(
        config, [schema("leads", LEAD_SCHEMA, ["email"]), batch("leads", [url], gz=True)], caplog
    )
    assert code == 1
    assert any(f"BATCH file {url}#" in e and "cannot be read" in e for e in errors)
    emails = {lead["email"] for lead in shared_sandbox.admin.dump("leads")}
    assert "cut0@batch.example" in emails


def test_sdk_batch_names_the_adapter_relies_on(tmp_path):
    """Pins the private SDK batch names batch_files.py reads through the adapter (sdk.py)."""
    from singer_sdk.helpers import _batch  # noqa: PLC0415

    assert PluginCapabilities.BATCH in TargetMarketoIngest.capabilities
    pinned = (_batch.BaseBatchFileEncoding, _batch.BatchFileFormat, _batch.StorageTarget)
    assert pinned == (sdk.BaseBatchFileEncoding, sdk.BatchFileFormat, sdk.StorageTarget)
    encoding = _batch.BaseBatchFileEncoding.from_dict({"format": "jsonl", "compression": "gzip"})
    assert encoding.format == _batch.BatchFileFormat.JSONL
    url = _write_rows(tmp_path / "pin.json.gz", [{"a": 1}, "not json", {"b": 2}], gz=True)
    head, tail = _batch.StorageTarget.split_url(url)
    assert tail == "pin.json.gz"
    with _batch.StorageTarget.from_url(head).open(tail, mode="rb") as fh:
        assert fh.read(2) == b"\x1f\x8b"
    rows = list(batch_files.iter_rows(url, encoding, line=1, stream="s"))
    assert rows[0][1] == {"a": 1}
    assert isinstance(rows[1][1], batch_files.BadRow)
    assert [lines.label(position) for position, _ in rows] == [f"{url}#{i}" for i in (1, 2, 3)]


def test_rows_are_streamed_not_loaded(tmp_path):
    """Peak memory while reading a 50,000-row file stays far below the file's size."""
    rows = [_lead("mem", i, company="x" * 60) for i in range(50_000)]
    url = _write_rows(tmp_path / "big.json.gz", rows, gz=True)
    size = sum(len(json.dumps(r)) + 1 for r in rows)
    encoding = batch_files.parse_encoding(
        {"format": "jsonl", "compression": "gzip"}, line=1, stream="s"
    )
    tracemalloc.start()
    try:
        count = sum(1 for _ in batch_files.iter_rows(url, encoding, line=1, stream="s"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 50_000
    assert size > 7_000_000
    assert peak < 1_000_000, f"{peak} bytes at peak"


def test_sdk_still_dispatches_batch_to_the_overridden_hook():
    """BATCH rows reach our accounting only through Target._process_batch_message, a private
    SDK hook: if an SDK upgrade renames it, this fails instead of the SDK loading files itself."""
    from singer_sdk.target_base import Target  # noqa: PLC0415

    assert callable(vars(Target).get("_process_batch_message"))
    assert "_process_batch_message" in vars(TargetMarketoIngest)
