"""What the write methods hold per record stays bounded by their settings, at a record's size.

The target's RSS grew with input over the chaos soak's five routes until the ingestion
batches it holds reached their bound (benchmarks/target_memory.py: 87 -> 142 MB from 10,000
to 50,000 records). These tests pin the structures that grew, by count or by bytes traced,
never by RSS or time.
"""

from __future__ import annotations

import gc
import logging
import tracemalloc
import weakref

from target_marketo_ingest.checkpoint import Checkpoints
from target_marketo_ingest.context import WriteContext
from target_marketo_ingest.executor import FailureLatch, UnitExecutor
from target_marketo_ingest.ingestion import IngestionWriter
from target_marketo_ingest.methods import REGISTRY
from target_marketo_ingest.rejects import RejectsFile
from target_marketo_ingest.routing import parse_route
from target_marketo_ingest.settings import TargetOptions
from target_marketo_ingest.summary import StreamSummary


class _Validator:
    def to_object(self, record: dict) -> dict:
        return dict(record)


def _ctx(tmp_path, stream: str, route: dict, **options) -> WriteContext:
    return WriteContext(
        stream=stream,
        route=parse_route(stream, stream, route),
        client=None,
        rejects=RejectsFile(tmp_path / "rejects.jsonl"),
        checkpoints=Checkpoints(lambda _state: None),
        summary=StreamSummary(stream, route["method"]),
        options=TargetOptions(**options),
        fatal=FailureLatch(),
        logger=logging.getLogger("test-memory-bounds"),
    )


def test_a_buffered_ingestion_record_costs_its_own_size_not_an_encoder_buffer(tmp_path):
    """orjson returns its 4 KB output buffer as the bytes object; held as is, a batch of
    1000 persons took 4 MB and the (2 x parallel + 1) batches a stream holds took 36 MB."""
    ctx = _ctx(tmp_path, "people", {"method": "ingest_persons", "verify": False})
    writer = IngestionWriter(ctx, _Validator(), None, REGISTRY["ingest_persons"])
    records = [
        {"email": f"person{i}@example.com", "firstName": "Ada", "lastName": f"L{i}"}
        for i in range(900)  # one open batch (1000 objects at most): nothing is sent
    ]
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for seq, record in enumerate(records):
            writer.add(record, seq, seq + 1)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    per_record = (after - before) / len(records)
    # The JSON of one of these persons is about 75 bytes; its entry, key and dict slot about
    # 300 more. The encoder's buffer alone was 4096.
    assert per_record < 1024, f"{per_record:.0f} bytes held per buffered record"
    assert sum(len(batch.entries) for batch in writer._open.values()) == len(records)


class _Held:
    """Stands for what a unit's work holds: its records, their JSON, the read-back."""


def test_an_ended_unit_holds_nothing_while_it_waits_to_leave_the_executor():
    """Done units stay in the executor's pending list until the next submit, and a worker
    keeps its last one: their records must not stay with them."""
    executor = UnitExecutor(
        name="t",
        workers=2,
        queued=2,
        latch=FailureLatch(),
        checkpoints=Checkpoints(lambda _state: None),
    )
    refs = []
    tasks = []
    for i in range(4):
        held = _Held()
        refs.append(weakref.ref(held))
        tasks.append(executor.submit(lambda held=held: held, keys={i}, unit=None))
        del held
    for task in tasks:
        assert task.done.wait(5)
    assert len(executor._pending) == 4  # nothing submitted since: all still listed
    gc.collect()
    assert [ref() for ref in refs] == [None] * 4
    executor.close()


def test_an_inline_unit_holds_nothing_once_it_ran():
    executor = UnitExecutor(
        name="t", workers=0, queued=0, latch=FailureLatch(), checkpoints=Checkpoints(print)
    )
    held = _Held()
    ref = weakref.ref(held)
    task = executor.submit(lambda held=held: held, keys={1})
    del held
    gc.collect()
    assert ref() is None
    assert task.done.is_set()
