"""Program membership mirror (mirror.py) against the sandbox: plan, guard, dry run, removals."""

from __future__ import annotations

import logging

import pytest
from target_helpers import (
    MEMBER_SCHEMA,
    mirror_input,
    program_members,
    record,
    run_target,
    schema,
    state,
    target_config,
    wait_ingested,
)
from target_marketo_ingest.errors import TargetError

PROGRAM = 1002  # Customer Nurture: Member < Engaged < Influenced


def _members(sandbox, program_id=PROGRAM):
    return program_members(sandbox, program_id)


def _input(sandbox):
    """Keep 10 members as they are, move 5 to another status, add 4 leads, drop the rest."""
    return mirror_input(sandbox, PROGRAM)


def _messages(stream, desired, program_id=PROGRAM):
    messages = [schema(stream, MEMBER_SCHEMA)]
    messages += [
        record(stream, {"leadId": lead, "programId": program_id, "statusName": status})
        for lead, status in desired.items()
    ]
    messages.append(state({stream: "end"}))
    return messages


@pytest.mark.parametrize("method", ["ingest_program_members", "rest_program_members"])
def test_mirror_makes_the_program_exactly_the_input(fast_sandbox, tmp_path, method, caplog):
    _, desired, removed = _input(fast_sandbox)
    route = {"method": method, "mirror": True, "max_removals": len(removed)}
    config = target_config(fast_sandbox, tmp_path, streams={"nurture": route})
    with caplog.at_level(logging.INFO):
        run = run_target(config, _messages("nurture", desired))

    summary = run.summary("nurture")
    moved_back = sum(1 for lead in list(desired)[10:15] if desired[lead] == "Engaged")
    assert summary["mirror"] == {
        "adds": 4,
        "status_changes": 5,
        "removals": len(removed),
        "unchanged": 10,
    }
    assert summary["received"] == len(desired) + len(removed)
    assert summary["without_outcome"] == 0
    assert summary["rejected"] == 0, run.rejects
    assert f"mirror plan for program {PROGRAM}: 4 adds, 5 status changes" in caplog.text
    wait_ingested(fast_sandbox)
    after = _members(fast_sandbox)
    assert set(after) == set(desired)
    # Marketo never moves a member back a step: Engaged for an Influenced member stays.
    assert sum(1 for lead in desired if after[lead] != desired[lead]) == moved_back
    assert run.states == [{"nurture": "end"}]


def test_max_removals_stops_before_any_change(fast_sandbox, tmp_path):
    current, desired, _ = _input(fast_sandbox)
    route = {"method": "ingest_program_members", "mirror": True, "max_removals": 0.5}
    config = target_config(fast_sandbox, tmp_path, streams={"nurture": route})
    empty_ish = dict(list(desired.items())[:3])  # a warehouse query that lost most rows
    with pytest.raises(TargetError) as caught:
        run_target(config, _messages("nurture", empty_ish))
    message = str(caught.value)
    assert "\n" not in message
    assert message == (
        f"streams.nurture.max_removals: the mirror would remove {len(current) - 3} of "
        f"{len(current)} members of program {PROGRAM} (limit {0.5 * len(current):g}); "
        "nothing was changed"
    )
    assert _members(fast_sandbox) == current
    assert fast_sandbox.admin.ingestion()["pending"] == 0


def test_max_removals_count_allows_up_to_the_count(fast_sandbox, tmp_path):
    current, desired, removed = _input(fast_sandbox)
    route = {"method": "rest_program_members", "mirror": True, "max_removals": len(removed) - 1}
    config = target_config(fast_sandbox, tmp_path, streams={"nurture": route})
    with pytest.raises(TargetError, match=f"would remove {len(removed)} of"):
        run_target(config, _messages("nurture", desired))
    assert _members(fast_sandbox) == current


def test_dry_run_prints_the_plan_and_changes_nothing(fast_sandbox, tmp_path, caplog):
    current, desired, removed = _input(fast_sandbox)
    route = {"method": "ingest_program_members", "mirror": True}
    config = target_config(fast_sandbox, tmp_path, streams={"nurture": route}, dry_run=True)
    with caplog.at_level(logging.INFO):
        run = run_target(config, _messages("nurture", desired))
    line = (
        f"dry run: mirror plan for program {PROGRAM}: 4 adds, 5 status changes, "
        f"{len(removed)} removals, 10 unchanged (current members {len(current)})"
    )
    assert line in caplog.text
    summary = run.summary("nurture")
    assert summary["dry_run"] == len(desired) + len(removed)
    assert summary["mirror"]["removals"] == len(removed)
    assert _members(fast_sandbox) == current
    assert run.states == []


def test_input_deletes_count_as_removals_and_other_programs_are_untouched(fast_sandbox, tmp_path):
    _, desired, removed = _input(fast_sandbox)
    other_before = _members(fast_sandbox, 1004)
    route = {"method": "ingest_program_members", "mirror": True}
    config = target_config(fast_sandbox, tmp_path, streams={"nurture": route})
    gone = next(iter(desired))
    messages = _messages("nurture", desired)
    messages.insert(
        -1,
        record("nurture", {"leadId": gone, "programId": PROGRAM, "_sdc_deleted_at": "2026-01-01"}),
    )
    run = run_target(config, messages)
    assert run.summary("nurture")["mirror"]["removals"] == len(removed) + 1
    assert run.summary("nurture")["mirror"]["unchanged"] == 9
    wait_ingested(fast_sandbox)
    assert set(_members(fast_sandbox)) == set(desired) - {gone}
    assert _members(fast_sandbox, 1004) == other_before
