"""The fast RECORD-line path: rows as Structs give the same lines as dicts; the pipe is widened."""

import csv
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tap_marketo_members.parsing import CHUNK_ROWS, MemberFileParser, record_struct
from tap_marketo_members.pipes import PIPE_BYTES, widen_pipe
from tap_marketo_members.writers import RecordLines

from .support import PARSING_PROPS, parsed

PROPS = PARSING_PROPS
HARD = 'a, "quoted", comma,\nnew line\r\nCRLF \u2028 sep \u00e9 \U0001f600 \\ back \t tab \x7f'


def members_csv(path: Path, header: list[str], rows: int) -> Path:
    """`rows` members with hard text, nulls, floats with exponents, and a spread of updatedAt."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for i in range(rows):
            row = {
                "programId": "1001",
                "leadId": str(i + 1),
                "updatedAt": f"2024-01-{1 + i % 28:02d}T03:04:05Z" if i % 11 else "null",
                "reachedSuccess": ("true", "false", "null")[i % 3],
                "score": ("1.5", "1e20", "0.1", "null", "-0", "2.5e-7")[i % 6],
                "note": (HARD, "null", "", "plain")[i % 4],
            }
            writer.writerow([row[name] for name in header])
    return path


def record_lines(capsysbinary, chunks, version=None) -> list[bytes]:
    RecordLines("program_members", version).write(chunks)
    return capsysbinary.readouterr().out.splitlines()


def without_time(line: bytes) -> dict:
    message = json.loads(line)
    assert message.pop("time_extracted")
    return message


@pytest.mark.parametrize("version", [None, 1733000000000])
@pytest.mark.parametrize(
    ("header", "kwargs"),
    [
        (list(PROPS), {}),
        (list(PROPS), {"lower": "2024-01-05T00:00:00Z", "upper": "2024-01-20T00:00:00Z"}),
        ([name for name in PROPS if name != "programId"], {"program_id": 42}),
    ],
    ids=["all", "bounds", "programId-added"],
)
def test_struct_rows_give_the_lines_dict_rows_give(tmp_path, capsysbinary, version, header, kwargs):
    """Same messages, same key order, same bytes for the record (floats may differ in form)."""
    path = members_csv(tmp_path / "m.csv", header, CHUNK_ROWS * 3 + 17)
    lines = {}
    for structs in (False, True):
        parser = MemberFileParser(PROPS, {}, structs=structs)
        chunks = parser.chunks(path, label="t", **kwargs)
        lines[structs] = record_lines(capsysbinary, chunks, version)
    assert len(lines[True]) == len(lines[False]) > 0
    for as_dict, as_struct in zip(lines[False], lines[True], strict=True):
        a, b = without_time(as_dict), without_time(as_struct)
        assert a == b
        assert list(a) == list(b)  # the message's keys in the SDK's order
        assert list(a["record"]) == list(b["record"])  # the columns' order
        if "e" not in str(a["record"]["score"]):
            assert (
                as_dict.split(b',"time_extracted"')[0] == as_struct.split(b',"time_extracted"')[0]
            )
    if version is not None:
        assert all(json.loads(line)["version"] == version for line in lines[True])


def test_struct_rows_really_are_structs(tmp_path):
    """The path the writer is fastest on is the one export files take (not dicts after all)."""
    path = members_csv(tmp_path / "m.csv", list(PROPS), 10)
    chunk = next(MemberFileParser(PROPS, {}, structs=True).chunks(path, label="t"))
    assert type(chunk[0]) is not dict
    assert type(chunk[0]).__name__ == "ProgramMemberRow"


def test_a_refused_row_falls_back_to_dicts_in_the_same_write(tmp_path, capsysbinary):
    """A chunk with a value only the tolerant path takes is dicts; the writer takes both."""
    path = members_csv(tmp_path / "m.csv", list(PROPS), CHUNK_ROWS + 5)
    text = path.read_text(encoding="utf-8").replace("\n1001,12,", "\n1001,12.0,", 1)
    path.write_text(text, encoding="utf-8")  # leadId 12.0: only the tolerant converter takes it
    chunks = list(MemberFileParser(PROPS, {}, structs=True).chunks(path, label="t"))
    assert [type(chunk[0]) is dict for chunk in chunks] == [True, False]
    lines = record_lines(capsysbinary, chunks)
    expected = parsed(MemberFileParser(PROPS, {}), path, label="t")
    assert expected[11]["leadId"] == 12
    assert [json.loads(line)["record"] for line in lines] == expected


def test_a_column_name_msgspec_refuses_keeps_dicts(tmp_path, capsysbinary):
    """A name with a quote cannot be a Struct field's JSON name: that file's rows stay dicts."""
    assert record_struct(["ok", 'say "hi"']) is None
    props = {**PROPS, 'say "hi"': {"type": ["string", "null"]}}
    header = [*PROPS, 'say "hi"']
    path = tmp_path / "q.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(
            [header, ["1", "2", "2024-01-02T03:04:05Z", "true", "1.5", "n", "hello"]]
        )
    chunks = list(MemberFileParser(props, {}, structs=True).chunks(path, label="t"))
    assert type(chunks[0][0]) is dict
    (line,) = record_lines(capsysbinary, chunks)
    assert json.loads(line)["record"]['say "hi"'] == "hello"


def test_widen_pipe_on_a_pipe_and_not_on_a_file(tmp_path):
    limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
    read_end, write_end = os.pipe()
    try:
        granted = widen_pipe(write_end)
        assert granted == fcntl.fcntl(read_end, fcntl.F_GETPIPE_SZ) >= min(PIPE_BYTES, limit)
    finally:
        os.close(read_end)
        os.close(write_end)
    with (tmp_path / "f").open("wb") as fh:
        assert widen_pipe(fh.fileno()) is None


def test_widen_pipe_never_shrinks_a_wider_pipe():
    """A pipe already wider than asked (a parent widened it) stays as it is."""
    read_end, write_end = os.pipe()
    try:
        wide = widen_pipe(write_end)  # 1 MiB here
        assert widen_pipe(write_end, 64 * 1024) == wide > 64 * 1024
        assert fcntl.fcntl(read_end, fcntl.F_GETPIPE_SZ) == wide
    finally:
        os.close(read_end)
        os.close(write_end)


def test_the_tap_widens_its_stdout_pipe():
    """A RecordLines writer asks for a 1 MiB pipe, so the reader and the tap work side by side."""
    code = (
        "from tap_marketo_members.writers import RecordLines\n"
        "import sys, time\n"
        "RecordLines('program_members', None)\n"
        "sys.stdout.write('ready\\n'); sys.stdout.flush(); time.sleep(5)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"ready\n"
        size = fcntl.fcntl(proc.stdout.fileno(), fcntl.F_GETPIPE_SZ)
    finally:
        proc.kill()
        proc.wait()
    limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
    assert size >= min(PIPE_BYTES, limit) > 64 * 1024
