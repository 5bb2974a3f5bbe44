"""The plan of the next run (`plan_only`): jobs, bytes, quota days and wall time.

Nothing here calls Marketo: the numbers come from the planned units and the state.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tap_marketo_members.scheduler import MB
from tap_marketo_members.settings import MAX_PROGRAM_IDS_PER_JOB

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from tap_marketo_members.scheduler import ExportUnit

# Assumed pace of Marketo's export workers (not published): a job waits about this long in the
# queue and starts before it writes; then it writes this many seconds per MB of file.
JOB_OVERHEAD_SECONDS = 120.0
SECONDS_PER_MB = 30.0
# A keys-only (programId, leadId) file's bytes per member as measured against the sandbox (9.5
# with 7-digit lead ids, issue 20); used until a removal check has measured the real files.
KEYS_ONLY_BYTES_PER_MEMBER = 10.0


@dataclass(frozen=True)
class PlanInputs:
    """What the plan needs besides the units: state's sizes, the quota, the clock."""

    members: Mapping[int, int]  # member_count_max per program, where state has it
    bytes_per_member: Mapping[int, float]  # last run's fileSize / numberOfRecords per program
    counted_with: Mapping[int, tuple[int, ...]]  # programs whose member count is one job's
    quota_bytes: float
    used_today_bytes: int
    concurrency: int
    now: str  # the local clock, standing in for Marketo's
    resets_at: str
    removal_due: Sequence[int] = ()  # detect_removals: programs whose check is due
    keys_bytes_per_member: float | None = None  # measured by the last removal check


def expected_bytes(program_ids: Sequence[int], inputs: PlanInputs) -> int | None:
    """At most every member once (each member is in one window only); None if any is unknown.

    Programs last exported in one job share that job's count, so it is counted once.
    """
    total = 0.0
    seen: set[tuple[int, ...]] = set()
    for pid in program_ids:
        if pid not in inputs.members or pid not in inputs.bytes_per_member:
            return None
        together = inputs.counted_with.get(pid, (pid,))
        if together in seen:
            continue
        seen.add(together)
        total += inputs.members[pid] * inputs.bytes_per_member[pid]
    return math.ceil(total)


def removal_jobs(inputs: PlanInputs) -> int:
    """Keys-only jobs of the removal check: one per 10 due programs."""
    return math.ceil(len(inputs.removal_due) / MAX_PROGRAM_IDS_PER_JOB)


def removal_bytes(inputs: PlanInputs) -> int | None:
    """Every due program's members once, keys only; None if a member count is unknown."""
    per_member = inputs.keys_bytes_per_member or KEYS_ONLY_BYTES_PER_MEMBER
    sized = dataclasses.replace(
        inputs, bytes_per_member=dict.fromkeys(inputs.removal_due, per_member)
    )
    return expected_bytes(inputs.removal_due, sized)


def quota_days(total: int, left_today: float, quota: float) -> int:
    """Quota days the export spans: today's remainder first, then whole days."""
    if total <= left_today:
        return 1
    return 1 + math.ceil((total - max(left_today, 0)) / quota)


def wall_seconds(jobs: int, total: int | None, concurrency: int) -> float:
    """Work time at the assumed pace with `concurrency` jobs at once (no quota waits)."""
    rounds = math.ceil(jobs / max(concurrency, 1))
    writing = (total or 0) / MB * SECONDS_PER_MB / max(concurrency, 1)
    return rounds * JOB_OVERHEAD_SECONDS + writing


def render(units: Sequence[ExportUnit], rest_ids: Sequence[int], inputs: PlanInputs) -> list[str]:
    """The plan as lines of text, for people deciding whether to start a backfill."""
    groups: dict[int, list[ExportUnit]] = {}
    for unit in units:
        groups.setdefault(unit.group, []).append(unit)
    lines = [
        (
            f"program_members plan (plan_only: no export job created; local clock {inputs.now} "
            "stands in for Marketo's)"
        ),
    ]
    if rest_ids:
        lines.append(
            "  REST query (no export jobs, no quota): programs "
            + ",".join(str(pid) for pid in rest_ids)
        )
    total: int | None = 0
    for group, members in groups.items():
        ids = members[0].program_ids
        size = expected_bytes(ids, inputs)
        total = None if size is None or total is None else total + size
        first = members[0]
        shape = (
            f"full export{f' kept from {first.lower}' if first.lower else ''}"
            if first.server_filter is None
            else f"{len(members)} updatedAt windows {first.lower}..{members[-1].upper}"
        )
        lines.append(
            f"  group {group}: programs {','.join(str(p) for p in ids)}: {shape}; "
            f"{len(members)} jobs; expected bytes {_size(size)}"
        )
    jobs = len(units)
    if inputs.removal_due:
        size = removal_bytes(inputs)
        total = None if size is None or total is None else total + size
        jobs += removal_jobs(inputs)
        measured = "measured" if inputs.keys_bytes_per_member else "assumed"
        lines.append(
            f"  removal check (detect_removals): programs "
            f"{','.join(str(p) for p in inputs.removal_due)}: {removal_jobs(inputs)} keys-only "
            f"jobs; expected bytes {_size(size)} (member count x "
            f"{inputs.keys_bytes_per_member or KEYS_ONLY_BYTES_PER_MEMBER:g} bytes per member, "
            f"{measured})"
        )
    quota = inputs.quota_bytes
    left = max(quota - inputs.used_today_bytes, 0)
    lines.append(f"  export jobs: {jobs}")
    lines.append(f"  expected bytes: {_size(total)} (last run's bytes per member x member count)")
    lines.append(
        f"  quota left today: {left / MB:.1f} of {quota / MB:g} MB "
        f"({inputs.used_today_bytes / MB:.1f} MB used; resets {inputs.resets_at})"
    )
    work = wall_seconds(jobs, total, inputs.concurrency)
    if total is None:
        lines.append("  quota days: unknown (no bytes per member in state)")
        lines.append(f"  wall time: at least {_duration(work)} (job overhead only)")
    else:
        days = quota_days(total, left, quota)
        wait = f", plus {days - 1} quota reset(s) to wait for" if days > 1 else ""
        lines.append(f"  quota days: {days}")
        lines.append(f"  wall time: about {_duration(work)} of export work{wait}")
    lines.append(
        f"  assumptions: {JOB_OVERHEAD_SECONDS:g} s queue and start per job, "
        f"{SECONDS_PER_MB:g} s per MB written, {inputs.concurrency} jobs at once"
    )
    return lines


def _size(value: int | None) -> str:
    return "unknown" if value is None else f"{value} ({value / MB:.1f} MB)"


def _duration(seconds: float) -> str:
    hours, minutes = divmod(math.ceil(seconds / 60), 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"
