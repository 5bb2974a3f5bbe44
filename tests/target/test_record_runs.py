"""RECORD lines in runs, typed decoding per stream, and stdin read in large chunks.

The typed path (typed_records.py) takes lines that start exactly as a tap writes them
(compact JSON); the same records written with spaces take the dict path. The differential
tests below run both over the same records and require the same import files, rejects and
counts, so the typed path cannot drift from `RecordValidator`.
"""

from __future__ import annotations

import io
import json
import os
import sys

import pytest
from target_helpers import LEAD_SCHEMA, record, run_target, schema, state, target_config
from target_marketo_ingest import reader as reader_module
from target_marketo_ingest import typed_records
from target_marketo_ingest.errors import InputError
from target_marketo_ingest.reader import SingerLineReader, open_stdin
from target_marketo_ingest.row_store import RowStore

MEMBER_SCHEMA = {
    "properties": {
        "leadId": {"type": ["integer", "null"]},
        "programId": {"type": ["integer", "string", "null"]},
        "statusName": {"type": ["string", "null"]},
        "email": {"type": ["string", "null"]},
        "firstName": {"type": ["string", "null"]},
        "registrationCode": {"type": ["string", "null"]},
        "sessionsAttended": {"type": ["integer", "null"]},
        "membershipDate": {"type": ["string", "null"], "format": "date-time"},
        "_sdc_deleted_at": {"type": ["string", "null"]},
    }
}


def _compact(messages: list[dict]) -> bytes:
    return b"".join(json.dumps(m, separators=(",", ":")).encode() + b"\n" for m in messages)


def _spaced(messages: list[dict]) -> bytes:
    return b"".join(json.dumps(m).encode() + b"\n" for m in messages)


# ------------------------------------------------------------------ reader runs


def _read(data: bytes, *, raw_streams: dict[bytes, str] | None = None) -> list[tuple]:
    reader = SingerLineReader()
    calls: list[tuple] = []
    reader.on_records = lambda s, msgs, first: calls.append(
        ("records", s, first, [m["record"]["n"] for m in msgs])
    )
    reader.on_raw_records = lambda s, lines, first: calls.append(("raw", s, first, len(lines)))
    reader.raw_streams.update(raw_streams or {})
    callbacks = {
        "STATE": lambda m: calls.append(("state", reader.line_number)),
        "SCHEMA": lambda m: calls.append(("schema", reader.line_number)),
    }
    counts = reader.process_lines(io.BytesIO(data), callbacks)
    calls.append(("counts", dict(counts)))
    return calls


def test_records_go_in_runs_of_one_stream_and_consecutive_lines(monkeypatch):
    monkeypatch.setattr(reader_module, "RUN_LINES", 3)
    a = [record("a", {"n": i}) for i in range(5)]
    data = (
        _spaced([schema("a", {"properties": {}}), *a[:4]])
        + _spaced([record("b", {"n": 9}), a[4], state(1)])
        + b"\n"  # a blank line ends a run too
        + _spaced([a[0], a[1]])
    )
    assert _read(data) == [
        ("schema", 1),
        ("records", "a", 2, [0, 1, 2]),  # RUN_LINES
        ("records", "a", 5, [3]),
        ("records", "b", 6, [9]),
        ("records", "a", 7, [4]),
        ("state", 8),  # after every record before it
        ("records", "a", 10, [0, 1]),
        ("counts", {"SCHEMA": 1, "RECORD": 8, "STATE": 1}),
    ]


def test_a_bad_line_sends_the_records_before_it_first():
    reader = SingerLineReader()
    seen: list[int] = []
    reader.on_records = lambda s, msgs, first: seen.extend(m["record"]["n"] for m in msgs)
    data = _spaced([record("a", {"n": 1}), record("a", {"n": 2})]) + b"{oops\n"
    with pytest.raises(InputError, match="line 3"):
        reader.process_lines(io.BytesIO(data), {})
    assert seen == [1, 2]


def test_lines_of_a_typed_stream_stay_undecoded_only_when_written_compactly():
    lines = _compact([record("pm", {"n": 1}), record("pm", {"n": 2})])
    lines += _spaced([record("pm", {"n": 3})])  # another writer's spacing: decoded here
    lines += _compact([record("other", {"n": 4})])
    assert _read(lines, raw_streams={b"pm": "pm"}) == [
        ("raw", "pm", 1, 2),
        ("records", "pm", 3, [3]),
        ("records", "other", 4, [4]),
        ("counts", {"RECORD": 4}),
    ]


# ------------------------------------------------------------------ stdin


def test_stdin_pipe_is_read_with_a_large_buffer_and_widened(monkeypatch):
    read_fd, write_fd = os.pipe()
    try:
        with os.fdopen(read_fd, "r", closefd=False) as fake_stdin:
            monkeypatch.setattr(sys, "stdin", fake_stdin)
            stream = open_stdin()
            os.write(write_fd, b'{"type":"STATE","value":1}\n')
            os.close(write_fd)
            write_fd = -1
            assert stream.readline() == b'{"type":"STATE","value":1}\n'
            if sys.platform == "linux":
                import fcntl  # noqa: PLC0415

                assert fcntl.fcntl(read_fd, 1032) == reader_module.INPUT_BUFFER  # F_GETPIPE_SZ
            assert stream.raw.fileno() == read_fd
            stream.close()  # closefd=False: the descriptor stays open for stdin
            os.fstat(read_fd)
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)


def test_stdin_without_a_descriptor_is_read_as_it_is(monkeypatch):
    fake = io.TextIOWrapper(io.BytesIO(b"x\n"))
    monkeypatch.setattr(sys, "stdin", fake)
    assert open_stdin() is fake.buffer


# ------------------------------------------------------------------ typed vs dict path


def _member_messages() -> list[dict]:
    stream = "program_members"
    good = {
        "programId": 1001,
        "statusName": "Registered",
        "firstName": 'Zoë "Q", jr.\nline two',
        "registrationCode": "R-1",
        "sessionsAttended": 3,
        "membershipDate": "2026-01-01T00:00:00Z",
        "leadId": 7,
    }
    records = [
        {**good, "email": "a@example.com"},
        {**good, "email": "b@example.com", "firstName": None, "sessionsAttended": None},
        {"programId": 1001, "statusName": "Attended", "email": "c@example.com"},
        {**good, "email": "d@example.com", "statusName": "registered "},  # canonical status
        {**good, "email": "e@example.com", "programId": "1003", "statusName": "Waitlisted"},
        {**good, "email": "a@example.com", "statusName": "Attended"},  # a wins here
        {**good, "email": "f@example.com", "sessionsAttended": "5"},  # schema allows int only
        {**good, "email": "g@example.com", "registrationCode": "x" * 300},  # too long
        {**good, "email": "h@example.com", "color": "red"},  # unknown field
        {**good, "email": "i@example.com", "color": None, "_sdc_extracted_at": "2026"},
        {**good, "statusName": "Sleeping", "email": "j@example.com"},  # unknown status
        {**good, "programId": 4242, "email": "k@example.com"},  # unknown program
        {**good, "programId": True, "email": "l@example.com"},
        {**good, "email": ""},  # empty key field
        {**good, "email": "no-at-sign.example.com"},  # the email field's own check
        {**good, "email": "m@example.com", "_sdc_deleted_at": "2026-01-02T00:00:00Z"},
        {**good, "email": "n@example.com", "sessionsAttended": True},
        {k: v for k, v in good.items() if k != "programId"} | {"email": "o@example.com"},
        {**good, "email": "p@example.com", "statusName": ["Registered"]},  # unhashable
    ]
    messages = [schema(stream, MEMBER_SCHEMA, ["email", "programId"])]
    messages += [record(stream, r) for r in records]
    messages.append(state({"done": 1}))
    messages += [record(stream, {**good, "email": f"bulk{i}@example.com"}) for i in range(30)]
    return messages


def _lead_messages() -> list[dict]:
    stream = "leads"
    records = [
        {"email": "a@example.com", "firstName": "Ann", "leadScore": 5, "unsubscribed": False},
        {"email": "b@example.com", "leadScore": "7", "unsubscribed": None},  # str: dict path
        {"email": "c@example.com", "leadScore": True},
        {"email": None, "firstName": "No email"},
        {"email": "d@example.com", "company": "Acme, Inc.", "unsubscribed": True},
        {"email": "a@example.com", "firstName": "Ann again"},
        {"email": "e@example.com", "_sdc_deleted_at": "2026-01-01T00:00:00Z"},
        {"email": "f@example.com", "lastWebinarAt": "not a date"},
        {"email": "g@", "firstName": "Bad email"},
    ]
    messages = [schema(stream, LEAD_SCHEMA, ["email"])]
    return messages + [record(stream, r) for r in records] + [state({"leads": 1})]


_CUT = RowStore.cut
_DECODE = typed_records.RecordType.decode


def _run(monkeypatch, config: dict, data: bytes) -> tuple[list[bytes], list[dict], dict, int]:
    """Import files as cut, rejects (without run ids), summaries, records typed."""
    files: list[bytes] = []
    cut = _CUT

    def keep_cut(store, file, out, *, keys):
        buffer = io.BytesIO()
        result = cut(store, file, buffer, keys=keys)
        files.append(buffer.getvalue())
        out.write(buffer.getvalue())
        return result

    typed_count = [0]
    decode = _DECODE

    def counting_decode(self, lines):
        out = decode(self, lines)
        typed_count[0] += sum(r is not None for r in out)
        return out

    monkeypatch.setattr(RowStore, "cut", keep_cut)
    monkeypatch.setattr(typed_records.RecordType, "decode", counting_decode)
    run = run_target(config, data)
    rejects = [{k: v for k, v in r.items() if k not in {"run", "at", "time"}} for r in run.rejects]
    summaries = {s.stream: s.as_dict() for s in run.target.summaries}
    return files, rejects, summaries, typed_count[0]


def _lead_messages_with_a_key_outside_the_schema() -> list[dict]:
    """A key property the schema does not list: every record is the dict path's to judge."""
    messages = _lead_messages()
    messages[0] = schema("leads", LEAD_SCHEMA, ["email", "extId"])
    return messages


@pytest.mark.parametrize(
    "messages", [_member_messages, _lead_messages, _lead_messages_with_a_key_outside_the_schema]
)
def test_typed_path_gives_the_same_files_rejects_and_counts_as_the_dict_path(
    monkeypatch, shared_sandbox, tmp_path, messages
):
    msgs = messages()
    spaced_dir, compact_dir = tmp_path / "dict", tmp_path / "typed"
    spaced_dir.mkdir()
    compact_dir.mkdir()
    dict_run = _run(
        monkeypatch, target_config(shared_sandbox, spaced_dir, dry_run=True), _spaced(msgs)
    )
    typed_run = _run(
        monkeypatch, target_config(shared_sandbox, compact_dir, dry_run=True), _compact(msgs)
    )
    assert dict_run[3] == 0
    if messages is _lead_messages_with_a_key_outside_the_schema:
        assert typed_run[3] == 0  # the stream is not typed at all
    else:
        assert typed_run[3] >= len(msgs) // 2  # most records took the typed path
    assert typed_run[0] == dict_run[0]  # import files, byte for byte, in order
    assert typed_run[1] == dict_run[1]  # rejects: line, reason, message, field, record
    assert typed_run[2] == dict_run[2]
    assert dict_run[1]  # the input does exercise rejects
    if typed_run[3]:
        assert any(b"\n" in content.split(b"\n", 1)[1] for content in dict_run[0])


def test_a_compact_line_the_struct_refuses_is_decoded_and_checked_in_its_place(
    monkeypatch, shared_sandbox, tmp_path
):
    msgs = _lead_messages()
    data = _compact(msgs[:3]) + b'{"type":"RECORD","stream":"leads","record":{"email": 5}}\n'
    data += _compact(msgs[3:])
    _files, rejects, summaries, typed = _run(
        monkeypatch, target_config(shared_sandbox, tmp_path, dry_run=True), data
    )
    assert typed > 0
    assert [r["line"] for r in rejects if r["reason"] == "schema_mismatch"][:1] == [4]
    assert summaries["leads"]["received"] == len(msgs) - 1


def test_a_stream_whose_lines_mostly_miss_the_typed_shape_goes_back_to_the_dict_path(
    monkeypatch, shared_sandbox, tmp_path
):
    calls: list[int] = []

    def counting_decode(self, lines):
        calls.append(len(lines))
        return _DECODE(self, lines)

    monkeypatch.setattr(typed_records.RecordType, "decode", counting_decode)
    stream = "leads"
    msgs = [schema(stream, LEAD_SCHEMA, ["email"])]
    # `_sdc_batched_at` is not in the schema: allowed, but not in the typed shape.
    msgs += [
        record(stream, {"email": f"x{i}@example.com", "_sdc_batched_at": "t"}) for i in range(5)
    ]
    msgs.append(state(1))
    msgs += [
        record(stream, {"email": f"y{i}@example.com", "_sdc_batched_at": "t"}) for i in range(5)
    ]
    run = run_target(target_config(shared_sandbox, tmp_path, dry_run=True), _compact(msgs))
    assert calls == [5]  # the first run only; the stream then decodes as dicts
    assert run.target.message_reader.raw_streams == {}
    assert run.summary(stream)["dry_run"] == 10


def test_a_compact_line_holding_two_objects_is_malformed_json_naming_its_line(
    shared_sandbox, tmp_path
):
    msgs = _lead_messages()
    two = _compact([msgs[1]]).strip() + b"," + _compact([msgs[2]])
    data = _compact(msgs[:2]) + two + _compact(msgs[3:])
    with pytest.raises(InputError, match=r"line 3: malformed JSON"):
        run_target(target_config(shared_sandbox, tmp_path, dry_run=True), data)


def test_a_compact_line_that_is_not_utf8_is_reported_with_its_line(shared_sandbox, tmp_path):
    msgs = _lead_messages()
    bad = _compact([msgs[1]]).replace(b"a@example.com", b"a\xff@example.com")
    data = _compact(msgs[:1]) + bad + _compact(msgs[2:])
    with pytest.raises(InputError, match=r"line 2: input is not UTF-8"):
        run_target(target_config(shared_sandbox, tmp_path, dry_run=True), data)


def test_typed_records_know_every_column_attribute():
    """A new per-column rule in validation.py must be taught to typed_records.RecordType too
    (which builds cells without the validator); this pin makes adding one fail here first.
    """
    from dataclasses import fields  # noqa: PLC0415

    from target_marketo_ingest.validation import Column  # noqa: PLC0415

    assert {f.name for f in fields(Column)} == {
        "source",
        "target",
        "convert",
        "fast_types",
        "render",
        "max_len",
        "check",
    }
