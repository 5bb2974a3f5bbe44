"""Behaviours the published pages do not state, each a run-time option the tests randomise.

A fake Marketo that hard-codes one guess for every silence agrees with the connectors built on
the same guess. Every such guess is listed here: its option key (read by the family that owns
it through `options.get(key, default)`), the sandbox's default, the values a test run draws
from, and why it is an assumption. `randomised(seed)` gives one draw; `SandboxServer` applies
the draw named by `MARKETO_SANDBOX_ASSUMPTION_SEED` (tests/conftest.py sets it, printing the
seed so a failure can be replayed), explicit `options=` always win.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

#: Environment variable naming the seed of the randomised draw (unset: defaults throughout).
SEED_ENV = "MARKETO_SANDBOX_ASSUMPTION_SEED"


@dataclass(frozen=True)
class Assumption:
    """One behaviour the pages leave open."""

    option: str
    default: Any
    choices: tuple[Any, ...]
    why: str
    family: str


#: Every assumed behaviour, by family. Add a row when you add a switch; the README table and
#: `tests/sandbox/test_assumptions.py` read this list.
ASSUMPTIONS: tuple[Assumption, ...] = (
    # bulk export and REST
    Assumption(
        option="export_status_phase",
        default="queued",
        choices=("queued", "clock", "job"),
        why="bulk-extract.md says a status refreshes at most once per 60 s, not when: from the "
        "job's queuedAt (queued), on whole minutes of the clock (clock), or at an offset of "
        "its own (job)",
        family="bulk export",
    ),
    Assumption(
        option="export_status_start_lag_refreshes",
        default=0,
        choices=(0, 1, 2),
        why="how soon a started job reads Processing is unstated: it may read Queued for up to "
        "this many refreshes after it started (a finished job reads Completed at once)",
        family="bulk export",
    ),
    Assumption(
        option="export_duration_jitter",
        default=0.0,
        choices=(0.0, 0.2, 0.5),
        why="real export durations vary with load: each job's processing time is scaled by a "
        "factor drawn per job from [1 - j, 1 + j]",
        family="bulk export",
    ),
    Assumption(
        option="export_program_id_column",
        default="once",
        choices=("once", "repeated"),
        why="a programIds export adds programId as the first field; when `fields` names it "
        "too the page is silent: moved to the front once, or repeated where it was asked",
        family="bulk export",
    ),
    Assumption(
        option="export_expired_file_answer",
        default="1003",
        choices=("1003", "404"),
        why="bulk-extract.md keeps files seven days but does not say what the file endpoint "
        "answers after that: an error envelope (1003), or the plaintext 404 it gives for an "
        "invalid job id",
        family="bulk export",
    ),
    # bulk import and Data Ingestion
    Assumption(
        option="import_rows_per_second",
        default=1000.0,
        choices=(250.0, 1000.0, 4000.0),
        why="bulk-import.md gives no import speed; the sandbox's import pace in sandbox time",
        family="bulk import",
    ),
    Assumption(
        option="import_duration_jitter",
        default=0.0,
        choices=(0.0, 0.25, 0.5),
        why="import job durations vary on a real instance; each job's duration is scaled by a "
        "factor drawn from 1 ± this fraction",
        family="bulk import",
    ),
    Assumption(
        option="ingestion_apply_delay_seconds",
        default=5.0,
        choices=(1.0, 5.0, 30.0, 120.0),
        why="data-ingestion.md says requests execute asynchronously (low latency) but not how "
        "long after the 202 they are applied; sandbox seconds",
        family="data ingestion",
    ),
)


def defaults() -> dict[str, Any]:
    """The sandbox's own choice for every assumption."""
    return {a.option: a.default for a in ASSUMPTIONS}


def randomised(seed: int) -> dict[str, Any]:
    """One reproducible draw over every assumption's choices."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test draws, not secrets
    return {a.option: rng.choice(a.choices) for a in ASSUMPTIONS}
