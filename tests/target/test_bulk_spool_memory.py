"""Bulk import memory: rows live on disk, not in the process; files still fill to the limit."""

from __future__ import annotations

import csv
import logging
import tracemalloc

from target_marketo_ingest.bulk_import import BulkImportWriter
from target_marketo_ingest.checkpoint import Checkpoints
from target_marketo_ingest.context import WriteContext
from target_marketo_ingest.executor import FailureLatch
from target_marketo_ingest.rejects import RejectsFile
from target_marketo_ingest.routing import StreamRoute
from target_marketo_ingest.settings import TargetOptions
from target_marketo_ingest.summary import StreamSummary


def _writer(tmp_path, max_bytes: int, *, scope: str | None = None) -> tuple[BulkImportWriter, list]:
    ctx = WriteContext(
        stream="members",
        route=StreamRoute(stream="members", method="bulk_program_members"),
        client=None,
        rejects=RejectsFile(tmp_path / "rejects.jsonl"),
        checkpoints=Checkpoints(lambda _: None),
        summary=StreamSummary("members", "bulk_program_members"),
        options=TargetOptions(max_import_bytes=max_bytes, work_dir=str(tmp_path)),
        fatal=FailureLatch(),
        logger=logging.getLogger("test"),
    )
    writer = BulkImportWriter(
        ctx, endpoint=None, header=["email", "note"], key_index=[0], scope_param=scope
    )
    submitted: list = []
    writer.runner.submit = submitted.append  # keep the files instead of importing them
    return writer, submitted


def _group(program: int, status: str) -> tuple:
    key = (program, status)
    return key, {"programId": program, "programMemberStatus": status}, f"{key} "


def _read(path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))[1:]


def _held_bytes(tmp_path, rows: int) -> int:
    """Python memory the writer holds after `rows` rows over 8 interleaved open files."""
    (tmp_path / str(rows)).mkdir()
    writer, _ = _writer(tmp_path / str(rows), max_bytes=10_000_000, scope="programId")
    groups = [_group(1000 + g % 4, f"status {g}") for g in range(8)]
    note = "a note of some forty characters, quoted"
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for seq in range(rows):
            writer.add([f"person{seq}@example.com", note], seq, seq + 2, groups[seq % 8])
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    writer.close()
    return held


def test_memory_does_not_grow_with_the_rows_of_open_files(tmp_path):
    # Nothing rolls (every file stays far under 10 MB), so every row is in an open file. The
    # old writer held each row (its CSV line, a dict entry, its key): ~300 bytes a row here.
    small = _held_bytes(tmp_path, 4_000)
    large = _held_bytes(tmp_path, 40_000)
    per_row = (large - small) / 36_000
    assert per_row < 16, f"{per_row:.0f} bytes held per extra row"
    assert large < 1_000_000  # spool buffers (64 KB a group) and counters only


def test_interleaved_groups_fill_each_file_to_the_limit(tmp_path):
    # 12 groups take turns row by row; the old 2x-limit bound across groups rolled the
    # biggest open file at about a sixth of the limit.
    limit = 20_000
    writer, files = _writer(tmp_path, max_bytes=limit, scope="programId")
    groups = [_group(2000 + g, "Registered") for g in range(12)]
    rows = 12 * 3 * limit // 40
    for seq in range(rows):
        writer.add([f"p{seq}@example.com", "x" * 20], seq, seq + 2, groups[seq % 12])
    writer.flush()
    by_group: dict = {}
    for file in files:
        by_group.setdefault(file.params["programId"], []).append(file.size)
    full = [size for sizes in by_group.values() for size in sizes[:-1]]
    assert len(full) >= 24
    assert min(full) >= 0.95 * limit
    assert max(full) < limit
    assert sum(file.rows for file in files) == rows  # nothing lost


def test_superseded_rows_on_disk_and_across_statuses_last_wins(tmp_path):
    writer, files = _writer(tmp_path, max_bytes=10_000_000, scope="programId")
    registered, attended = _group(1001, "Registered"), _group(1001, "Attended")
    other_program = _group(1002, "Registered")
    writer.add(["a@x.com", "first"], 0, 2, registered)
    for seq in range(1, 3_001):  # pushes a@x.com's row out of the buffer onto disk
        writer.add([f"filler{seq}@x.com", "y" * 40], seq, seq + 2, registered)
    writer.add(["a@x.com", "second"], 3_001, 3_003, registered)  # same file, row on disk
    writer.add(["a@x.com", "third"], 3_002, 3_004, attended)  # other status: wins again
    writer.add(["a@x.com", "elsewhere"], 3_003, 3_005, other_program)  # other program: kept
    writer.flush()
    contents = {file.label: (_read(file.path), list(file.line_numbers)) for file in files}
    reg, att, other = (
        contents[f"{g[2]}file {i}"] for i, g in ((1, registered), (2, attended), (3, other_program))
    )
    assert ["a@x.com", "first"] not in reg[0]
    assert ["a@x.com", "second"] not in reg[0]
    assert len(reg[0]) == 3_000
    assert reg[1] == list(range(3, 3_003))
    assert att == ([["a@x.com", "third"]], [3_004])
    assert other == ([["a@x.com", "elsewhere"]], [3_005])
    assert writer.ctx.summary.superseded == 2


def test_rewritten_keys_keep_their_last_row_at_its_last_position(tmp_path):
    # 50 keys written 4 times each: one row per key, the last one, where it last arrived.
    writer, files = _writer(tmp_path, max_bytes=10_000_000)
    for seq in range(200):
        writer.add([f"u{seq % 50}@x.com", f"v{seq}"], seq, seq + 2)
    writer.flush()
    (file,) = files
    rows = _read(file.path)
    assert sorted(rows) == sorted([f"u{n}@x.com", f"v{150 + n}"] for n in range(50))
    assert list(file.line_numbers) == list(range(152, 202))
    assert writer.ctx.summary.superseded == 150


def test_heavy_rewrites_of_one_key_keep_the_store_bounded(tmp_path):
    # One key rewritten over and over: the store keeps one row (no superseded rows pile up
    # on disk), and the file that goes out holds that row's last value.
    writer, files = _writer(tmp_path, max_bytes=2_000)
    n = 20_000
    for seq in range(n):
        writer.add(["same@x.com", f"value {seq}" + "x" * 100], seq, seq + 2)
    assert writer.store.live(1) == (1, len(f"same@x.com,value {n - 1}" + "x" * 100) + 1)
    assert writer.store.path.stat().st_size < 200_000  # 2.4 MB of rows went in
    writer.flush()
    assert sum(file.rows for file in files) + writer.ctx.summary.superseded == n
    assert _read(files[-1].path) == [["same@x.com", f"value {n - 1}" + "x" * 100]]
