"""Import files: byte-size roll-over (small and the real 10 MB), dedupe, failures mapped back."""

from __future__ import annotations

import csv
import logging
import threading

from target_marketo_ingest import import_jobs
from target_marketo_ingest.bulk_import import BulkImportWriter, match_rows
from target_marketo_ingest.checkpoint import Checkpoints
from target_marketo_ingest.context import WriteContext
from target_marketo_ingest.executor import FailureLatch
from target_marketo_ingest.rejects import RejectsFile
from target_marketo_ingest.routing import StreamRoute
from target_marketo_ingest.settings import TargetOptions
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
        fatal=FailureLatch(),
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
    assert list(file.line_numbers) == [3, 4]
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


class _Clock:
    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(round(seconds, 3))
        self.now += seconds


class _Endpoint:
    """A job that takes `duration` seconds from creation."""

    def __init__(self, clock, duration):
        self.clock, self.duration, self.calls = clock, duration, 0
        self.created_at = 0.0

    def status(self, client, batch_id):
        self.calls += 1
        done = self.clock.now - self.created_at >= self.duration
        return {"batchId": batch_id, "status": "Complete" if done else "Importing"}


def test_polling_grows_then_learns_when_jobs_end(tmp_path, monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(import_jobs, "time", clock)
    writer, _ = _writer(tmp_path, max_bytes=10_000)
    runner = writer.runner
    runner.ctx.options.poll_interval_seconds = 5.0
    runner.ctx.options.poll_max_seconds = 30.0
    endpoint = _Endpoint(clock, duration=100.0)
    runner.endpoint = endpoint
    file = import_jobs.ImportFile(tmp_path / "f.csv", ["email"], [2] * 1000, 10, 1, {}, "f")

    runner._poll(file, 1, {"status": "Queued"})
    first = list(clock.sleeps)
    assert first[:4] == [5.0, 5.0, 7.5, 11.25]  # 5 s, reset on Queued -> Importing, +50%...
    assert max(first) <= 30.0  # ...never past 30 s
    first_calls = endpoint.calls

    clock.sleeps.clear()
    endpoint.calls = 0
    endpoint.created_at = clock.now
    runner._poll(file, 2, {"status": "Queued"})
    # the second job of the same size: sleep (in steps of at most 30 s) to its expected end
    assert endpoint.calls < first_calls
    assert clock.now - endpoint.created_at <= 100.0 + 5.0
    assert all(5.0 <= s <= 30.0 for s in clock.sleeps)


def test_a_key_in_an_unfinished_file_orders_the_next_file_after_it(tmp_path):
    # Jobs run on the executor but hold until released, so every file stays unfinished.
    writer, _ = _writer(tmp_path, max_bytes=30)
    writer.ctx.options.import_queue_files = 3  # 2 running + 3 waiting: no submit blocks
    runner = writer.runner = import_jobs.ImportJobRunner(writer.ctx, endpoint=None)
    release = threading.Event()
    runner._run_file = lambda _file: release.wait(10)
    files: list = []
    submit = runner.submit

    def keep(file):
        files.append(file)
        submit(file)

    runner.submit = keep
    try:
        writer.add(["a@x.com", "one"], 0, 2)
        writer.add(["b@x.com", "one"], 1, 3)  # rolls: file 1 = a
        writer.add(["c@x.com", "two"], 2, 4)  # rolls: file 2 = b
        writer.add(["a@x.com", "three"], 3, 5)  # rolls: file 3 = c
        writer.flush()  # file 4 = a again
        assert [f.rows for f in files] == [1, 1, 1, 1]
        assert files[3].after == [files[0].done]  # a's second version waits for the first
        assert files[1].after == files[2].after == []
        files[0].done.set()
        writer.add(["a@x.com", "four"], 4, 6)
        writer.flush()
        assert files[4].after == [files[3].done]
    finally:
        release.set()
        writer.close()
