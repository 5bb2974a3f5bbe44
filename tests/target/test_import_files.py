"""Import files: byte-size roll-over (small and the real 10 MB), dedupe, failures mapped back."""

from __future__ import annotations

import csv
import logging

from target_marketo_ingest.bulk_import import BulkImportWriter, match_rows
from target_marketo_ingest.checkpoint import Checkpoints
from target_marketo_ingest.context import FatalError, TargetOptions, WriteContext
from target_marketo_ingest.rejects import RejectsFile
from target_marketo_ingest.routing import StreamRoute
from target_marketo_ingest.summary import StreamSummary


def _writer(tmp_path, max_bytes: int) -> tuple[BulkImportWriter, list]:
    ctx = WriteContext(
        stream="leads",
        route=StreamRoute(stream="leads", method="bulk_leads"),
        client=None,
        rejects=RejectsFile(tmp_path / "rejects.jsonl"),
        checkpoints=Checkpoints(lambda _: None),
        summary=StreamSummary("leads", "bulk_leads"),
        options=TargetOptions(max_import_bytes=max_bytes, work_dir=str(tmp_path)),
        fatal=FatalError(),
        logger=logging.getLogger("test"),
    )
    writer = BulkImportWriter(ctx, endpoint=None, header=["email", "note"], key_index=[0])
    submitted: list = []
    writer.runner.submit = submitted.append  # keep the files instead of importing them
    return writer, submitted


def _read(path):
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))


def test_files_roll_before_passing_the_size_limit(tmp_path):
    writer, files = _writer(tmp_path, max_bytes=2_000)
    rows = [[f"u{i}@x.com", f'note, "{i}"\nwith ünïcode'] for i in range(300)]
    for seq, row in enumerate(rows):
        writer.add(row, seq, seq + 2)
    writer.flush()
    assert len(files) > 5
    read_back = []
    for index, file in enumerate(files):
        size = file.path.stat().st_size
        assert size == file.size
        assert size < 2_000
        if index < len(files) - 1:
            assert size > 2_000 - 120  # rolled just under the limit, not far from it
        content = _read(file.path)
        assert content[0] == ["email", "note"]
        assert len(file.line_numbers) == len(content) - 1
        read_back.extend(content[1:])
    assert read_back == rows  # escaping survives the round trip, nothing lost or reordered


def test_real_ten_megabyte_limit(tmp_path):
    writer, files = _writer(tmp_path, max_bytes=10_000_000)
    note = "x" * 990
    n = 10_500
    for seq in range(n):
        writer.add([f"user{seq}@example.com", note], seq, seq + 2)
    writer.flush()
    assert len(files) == 2
    first = files[0].path.stat().st_size
    assert 9_990_000 < first < 10_000_000
    assert sum(f.rows for f in files) == n


def test_duplicate_keys_in_a_file_last_wins(tmp_path):
    writer, files = _writer(tmp_path, max_bytes=10_000)
    writer.add(["a@x.com", "first"], 0, 2)
    writer.add(["b@x.com", "only"], 1, 3)
    writer.add(["a@x.com", "second"], 2, 4)
    writer.flush()
    (file,) = files
    assert _read(file.path)[1:] == [["b@x.com", "only"], ["a@x.com", "second"]]
    assert file.line_numbers == [3, 4]
    assert writer.ctx.summary.superseded == 1


def test_failures_map_back_by_values_with_empty_and_duplicate_keys():
    inputs = [
        ["", "Ann"],  # empty key
        ["dup@x.com", "One"],
        ["dup@x.com", "Two"],
        ["", "Ann"],  # same values as row 0
        ["ok@x.com", "Fine"],
    ]
    reported = [["", "Ann"], ["dup@x.com", "Two"], ["", "Ann"], ["", "Ann"], ["zz", "?"]]
    assert match_rows(inputs, reported) == [0, 2, 3, None, None]
