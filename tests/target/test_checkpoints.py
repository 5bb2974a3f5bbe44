"""STATE is held until every earlier record has an outcome."""

from __future__ import annotations

from target_marketo_ingest.checkpoint import Checkpoints


def test_state_waits_for_the_oldest_open_unit():
    emitted = []
    cp = Checkpoints(emitted.append)
    first = cp.open_unit(0)  # records 0.. in an import file
    second = cp.open_unit(10)  # records 10.. in another
    cp.add_state({"n": 10}, received=10)
    cp.add_state({"n": 20}, received=20)
    assert emitted == []
    cp.close_unit(second)  # a later file finishing first changes nothing
    assert emitted == []
    cp.close_unit(first)
    assert emitted == [{"n": 20}]  # only the latest safe STATE is needed


def test_state_with_a_later_open_unit_goes_out_at_once():
    emitted = []
    cp = Checkpoints(emitted.append)
    unit = cp.open_unit(5)
    cp.add_state({"n": 5}, received=5)  # every record before it (0-4) already has an outcome
    assert emitted == [{"n": 5}]
    cp.add_state({"n": 6}, received=6)
    assert emitted == [{"n": 5}]
    cp.close_unit(unit)
    assert emitted == [{"n": 5}, {"n": 6}]


def test_disabled_checkpoints_emit_nothing():
    emitted = []
    cp = Checkpoints(emitted.append, enabled=False)
    cp.add_state({"n": 1}, received=0)
    assert emitted == []
