"""The extract as bulk-program-member-extract.md and bulk-extract.md publish it (issue 13).

Filters (statusNames, isExhausted, nurtureCadence), the programId column of programIds exports,
the queue counting processing jobs, "Job already queued", per-user job lists, whole-second
updatedAt bounds, and the assumed status rhythm switches.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from marketo_sandbox.assumptions import ASSUMPTIONS, defaults, randomised
from marketo_sandbox.bulk.export import STATUS_RHYTHM_SECONDS, _jitter, visible
from sandbox_helpers import FAST
from test_bulk_support import EXPORT, Api, fresh, parse


def _members(sb, program_id):
    return sb.admin.dump("program_members", program_id)


def _lead_ids(data: bytes, column: str = "leadId") -> list[int]:
    rows = parse(data)
    at = rows[0].index(column)
    return sorted(int(r[at]) for r in rows[1:])


def test_status_names_are_ored(api, fast_sandbox):
    wanted = ["Attended", "no show"]  # any case, as Marketo's status names are
    _, data = api.run_export(["leadId", "statusName"], {"programId": 1001, "statusNames": wanted})
    expected = [
        m["leadId"]
        for m in _members(fast_sandbox, 1001)
        if m["statusName"] in {"Attended", "No Show"}
    ]
    assert expected
    assert _lead_ids(data) == sorted(expected)
    assert {r[1] for r in parse(data)[1:]} == {"Attended", "No Show"}


def test_status_names_with_program_ids_missing_from_every_program_is_1003(api, fast_sandbox):
    create = f"{EXPORT}/create.json"
    # "Influenced" is a Nurture status: neither the webinar nor the newsletter has it.
    body = {
        "fields": ["leadId"],
        "filter": {"programIds": [1001, 1004], "statusNames": ["Influenced"]},
    }
    assert api.error("post", create, json=body)[0] == "1003"
    # Found in one of the programs is enough; the others simply match nothing.
    body["filter"] = {"programIds": [1001, 1002], "statusNames": ["Influenced", "Attended"]}
    _, data = api.run_export(body["fields"], body["filter"])
    rows = parse(data)
    assert rows[0] == ["programId", "leadId"]
    by_program = {
        pid: sorted(
            m["leadId"]
            for m in _members(fast_sandbox, pid)
            if m["statusName"] in {"Influenced", "Attended"}
        )
        for pid in (1001, 1002)
    }
    for pid, expected in by_program.items():
        assert sorted(int(r[1]) for r in rows[1:] if r[0] == str(pid)) == expected
    for bad in ([], "Attended", [1]):
        body = {"fields": ["leadId"], "filter": {"programId": 1001, "statusNames": bad}}
        assert api.error("post", create, json=body)[0] == "1003"


def test_is_exhausted_and_nurture_cadence_filters(api, fast_sandbox):
    members = _members(fast_sandbox, 1002)
    exhausted = sorted(m["leadId"] for m in members if m["isExhausted"])
    paused = sorted(m["leadId"] for m in members if m["nurtureCadence"] == "pause")
    assert exhausted, "the demo's engagement program has members who exhausted its content"
    assert paused, "the demo's engagement program has paused members"
    _, data = api.run_export(["leadId"], {"programId": 1002, "isExhausted": True})
    assert _lead_ids(data) == exhausted
    _, data = api.run_export(["leadId"], {"programId": 1002, "nurtureCadence": "pause"})
    assert _lead_ids(data) == paused
    both = {"programIds": [1002, 1003], "isExhausted": False, "nurtureCadence": "norm"}
    _, data = api.run_export(["leadId", "isExhausted", "nurtureCadence"], both)
    rows = parse(data)[1:]
    expected = sorted(
        m["leadId"] for m in members if not m["isExhausted"] and m["nurtureCadence"] == "norm"
    )
    assert sorted(int(r[1]) for r in rows) == expected  # 1003 is no engagement program
    assert {(r[0], r[2], r[3]) for r in rows} == {("1002", "false", "norm")}
    create = f"{EXPORT}/create.json"
    for flt in ({"isExhausted": "true"}, {"isExhausted": 1}, {"nurtureCadence": "paused"}):
        body = {"fields": ["leadId"], "filter": {"programId": 1002, **flt}}
        assert api.error("post", create, json=body)[0] == "1003"


def test_filters_combine_with_updated_at(api, fast_sandbox):
    members = [m for m in _members(fast_sandbox, 1002) if m["nurtureCadence"] == "pause"]
    touched = [m["leadId"] for m in members[:3]]
    other = next(m["leadId"] for m in _members(fast_sandbox, 1002) if m["nurtureCadence"] == "norm")
    before = fast_sandbox.admin.now()
    fast_sandbox.admin.touch_members(1002, [*touched, other], registrationCode="TOUCHED")
    after = fast_sandbox.admin.now()
    flt = {
        "programIds": [1002],
        "nurtureCadence": "pause",
        "statusNames": sorted({m["statusName"] for m in members[:3]}),
        "updatedAt": {"startAt": before, "endAt": after},
    }
    _, data = api.run_export(["leadId", "registrationCode"], flt)
    rows = parse(data)[1:]
    assert sorted(int(r[1]) for r in rows) == sorted(touched)


def test_program_id_column_first_only_for_program_ids(api):
    _, data = api.run_export(["leadId", "statusName"], {"programIds": [1003, 1004]})
    rows = parse(data)
    assert rows[0] == ["programId", "leadId", "statusName"]
    assert {r[0] for r in rows[1:]} == {"1003", "1004"}
    _, data = api.run_export(["leadId", "statusName"], {"programId": 1003})
    assert parse(data)[0] == ["leadId", "statusName"]


@pytest.mark.parametrize(
    ("choice", "header"),
    [
        ("once", ["Program", "leadId"]),
        ("repeated", ["programId", "leadId", "Program"]),
    ],
)
def test_program_id_named_in_fields(fast_sandbox, choice, header):
    sb = fresh(fast_sandbox, export_program_id_column=choice)
    api = Api(sb)
    names = {"programId": "Program"}
    _, data = api.run_export(
        ["leadId", "programId"], {"programIds": [1001]}, columnHeaderNames=names
    )
    rows = parse(data)
    assert rows[0] == header
    at = [i for i, name in enumerate(rows[0]) if name in ("programId", "Program")]
    assert {r[i] for r in rows[1:] for i in at} == {"1001"}


def test_enqueue_twice_is_1029_job_already_queued(fast_sandbox):
    sb = fresh(fast_sandbox, job_fixed_seconds=10**7)
    api = Api(sb)
    first, second = (api.create_export(["leadId"], {"programId": 1001}) for _ in range(2))
    api.enqueue(first)
    api.enqueue(second)
    for export_id in (first, second):  # one processing, one still queued
        assert api.error("post", f"{EXPORT}/{export_id}/enqueue.json") == (
            "1029",
            "Job already queued",
        )


def test_job_list_shows_only_the_callers_jobs(sandbox_factory):
    sb = sandbox_factory(seed="demo", time_scale=FAST, api_users=[("other-user", "other-secret")])
    owner, other = Api(sb), Api(sb, "other-user", "other-secret")
    mine = owner.create_export(["leadId"], {"programId": 1001})
    theirs = other.create_export(["leadId"], {"programId": 1002})
    other.enqueue(theirs)
    assert [j["exportId"] for j in owner.ok("get", f"{EXPORT}.json")] == [mine]
    assert [j["exportId"] for j in other.ok("get", f"{EXPORT}.json")] == [theirs]


@pytest.mark.parametrize(
    "bound",
    ["2024-01-01T00:00:00.000Z", "2024-01-01T00:00:00.5+00:00", "2024-01-01", "yesterday"],
)
def test_updated_at_with_milliseconds_or_without_time_is_1003(api, bound):
    ok_end = "2024-01-10T00:00:00Z"
    for window in (
        {"startAt": bound, "endAt": ok_end},
        {"startAt": "2024-01-01T00:00:00Z", "endAt": bound},
    ):
        body = {"fields": ["leadId"], "filter": {"programId": 1001, "updatedAt": window}}
        assert api.error("post", f"{EXPORT}/create.json", json=body)[0] == "1003"


@pytest.mark.parametrize(
    "bound", ["2024-01-01T00:00:00Z", "2024-01-01T01:00:00+01:00", "2024-01-01T00:00:00-0500"]
)
def test_updated_at_whole_seconds_accepted(api, bound):
    window = {"startAt": bound, "endAt": "2024-01-10T00:00:00Z"}
    body = {"fields": ["leadId"], "filter": {"programId": 1001, "updatedAt": window}}
    assert api.ok("post", f"{EXPORT}/create.json", json=body)[0]["status"] == "Created"


# ---------------------------------------------------------------- assumed status rhythm

QUEUED_AT = 1_700_000_010.0  # 10 s past a whole minute


def _job(started=None, finished=None, status="Processing"):
    return {
        "id": "0b5c7c1e-0000-4000-8000-000000000001",
        "format": "CSV",
        "status": status,
        "created_at": QUEUED_AT - 5,
        "queued_at": QUEUED_AT,
        "started_at": started,
        "finished_at": finished,
        "number_of_records": 3,
        "file_size": 10,
        "file_checksum": "sha256:00",
        "fail_message": None,
    }


def _changes(job, phase, lag, until=600.0):
    """(moment, shown status) at every second, keeping the moments the status changed."""
    seen, last = [], None
    for second in range(int(until)):
        now = QUEUED_AT + second
        shown = visible(job, now, phase, lag)["status"]
        if shown != last:
            seen.append((now, shown))
            last = shown
    return seen


@pytest.mark.parametrize("phase", ["queued", "clock", "job"])
@pytest.mark.parametrize("lag", [0, 1, 2])
def test_status_rhythm_phase_and_start_lag(phase, lag):
    job = _job(started=QUEUED_AT + 30, finished=QUEUED_AT + 400, status="Completed")
    changes = _changes(job, phase, lag)
    statuses = [s for _, s in changes]
    assert statuses[0] == "Queued"
    assert statuses[-1] == "Completed"
    # Changes only on the job's refresh grid: whole minutes apart.
    for (a, _), (b, _) in itertools.pairwise(changes[1:]):
        assert (b - a) % STATUS_RHYTHM_SECONDS == 0
    moments = {s: t for t, s in changes}
    # A start shows `lag` refreshes after the first refresh that saw it; a finish at once.
    first_refresh_after_start = moments["Processing"] - lag * STATUS_RHYTHM_SECONDS
    assert 0 <= first_refresh_after_start - (QUEUED_AT + 30) < STATUS_RHYTHM_SECONDS
    assert 0 <= moments["Completed"] - (QUEUED_AT + 400) < STATUS_RHYTHM_SECONDS
    if phase == "queued":
        assert (moments["Completed"] - QUEUED_AT) % STATUS_RHYTHM_SECONDS == 0
    if phase == "clock":
        assert moments["Completed"] % STATUS_RHYTHM_SECONDS == 0


def test_start_lag_keeps_a_started_job_queued_for_up_to_two_refreshes():
    job = _job(started=QUEUED_AT + 1)
    shown = [visible(job, QUEUED_AT + 60 * k + 1, "queued", 2)["status"] for k in range(4)]
    assert shown == ["Queued", "Queued", "Queued", "Processing"]


def test_duration_jitter_stays_in_its_band_and_is_stable_per_job():
    ids = [f"job-{k}" for k in range(200)]
    assert {_jitter(0.0, i) for i in ids} == {1.0}
    factors = [_jitter(0.5, i) for i in ids]
    assert all(0.5 <= f <= 1.5 for f in factors)
    assert max(factors) - min(factors) > 0.5  # really spread
    assert factors == [_jitter(0.5, i) for i in ids]


def test_jitter_option_changes_job_durations(fast_sandbox):
    sb = fresh(fast_sandbox, job_fixed_seconds=600, export_duration_jitter=0.5)
    api = Api(sb)
    ids = [api.create_export(["leadId"], {"programId": 1004}) for _ in range(2)]
    for export_id in ids:
        api.enqueue(export_id)
    took = set()
    for export_id in ids:
        job = api.wait_export(export_id)
        took.add(_seconds(job["finishedAt"]) - _seconds(job["startedAt"]))
    assert all(300 <= t <= 900 for t in took)
    assert took != {600.0}


def _seconds(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_export_assumptions_registered_with_todays_defaults():
    rows = {a.option: a for a in ASSUMPTIONS if a.family == "bulk export"}
    assert set(rows) >= {
        "export_status_phase",
        "export_status_start_lag_refreshes",
        "export_duration_jitter",
        "export_program_id_column",
    }
    for row in rows.values():
        assert row.default in row.choices
        assert row.why
    assert defaults()["export_status_phase"] == "queued"
    assert defaults()["export_status_start_lag_refreshes"] == 0
    assert defaults()["export_duration_jitter"] == 0.0
    draws = [randomised(seed) for seed in range(40)]
    for option, row in rows.items():
        assert {d[option] for d in draws} == set(row.choices)
