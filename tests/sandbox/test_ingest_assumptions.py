"""The bulk import and Data Ingestion assumption switches (marketo_sandbox/assumptions.py)."""

from __future__ import annotations

import datetime as dt

from marketo_sandbox import assumptions
from marketo_sandbox.bulk.common import DEFAULTS as BULK_DEFAULTS
from marketo_sandbox.ingestion.common import DEFAULTS as INGESTION_DEFAULTS
from sandbox_helpers import FAST
from test_bulk_support import Api

OURS = ("import_rows_per_second", "import_duration_jitter", "ingestion_apply_delay_seconds")


def test_rows_are_registered_with_the_sandbox_defaults():
    rows = {a.option: a for a in assumptions.ASSUMPTIONS if a.option in OURS}
    assert set(rows) == set(OURS)
    defaults = {**BULK_DEFAULTS, **INGESTION_DEFAULTS}
    for option, row in rows.items():
        assert row.default == defaults[option], option
        assert row.default in row.choices, option
    # data-ingestion.md: requests execute asynchronously, so the default applies after the 202
    assert rows["ingestion_apply_delay_seconds"].default > 0
    draws = {assumptions.randomised(seed)["ingestion_apply_delay_seconds"] for seed in range(40)}
    assert len(draws) > 1


def _durations(sb) -> list[float]:
    api = Api(sb)
    for i in range(6):
        reply = api.post(
            "/bulk/v1/leads.json",
            params={"format": "csv"},
            files={"file": ("x.csv", f"email\njitter{i}@example.com\n")},
        )
        api.wait_import(f"/bulk/v1/leads/batch/{reply.json()['result'][0]['batchId']}.json")
    out = []
    for job in sb.admin.dump("import_jobs"):
        started = dt.datetime.fromisoformat(job["startedAt"].replace("Z", "+00:00"))
        finished = dt.datetime.fromisoformat(job["finishedAt"].replace("Z", "+00:00"))
        out.append((finished - started).total_seconds())
    return out


def test_import_duration_jitter(sandbox_factory):
    options = {"job_fixed_seconds": 600, "import_duration_jitter": 0.0}
    steady = sandbox_factory(seed=None, time_scale=FAST, options=options)
    assert set(_durations(steady)) == {600.0}
    options = {"job_fixed_seconds": 600, "import_duration_jitter": 0.5}
    jittery = sandbox_factory(seed=None, time_scale=FAST, options=options)
    durations = _durations(jittery)
    assert len(set(durations)) > 1
    assert all(300 <= d <= 900 for d in durations), durations
