"""The tap against the published contract (issue 14): first sync, programId column, percent,
extract filters, Failed reasons, the REST query's limits and its lead-field join."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from marketo_common import MarketoClient, MarketoSettings
from marketo_common.export_files import ExportDownloader
from marketo_common.program_member_export import ExportError, ProgramMemberExports
from tap_marketo_members.engine import ExportEngine
from tap_marketo_members.parsing import MemberFileParser
from tap_marketo_members.tap import TapMarketoMembers

from .support import assert_same_members, catalog_for, config_for, key, parsed, run_tap

EXPORT = "/bulk/v1/program/members/export"
MEMBERS_ONLY = {"program_members": None}
OLD_START = "2000-01-01T00:00:00Z"


def members_run(sb, state=None, **extra):
    config = config_for(sb, **extra)
    return run_tap(config, state=state, catalog=catalog_for(config, MEMBERS_ONLY))


def job_ids(sb):
    return {j["exportId"] for j in sb.admin.dump("export_jobs")}


def new_jobs(sb, before):
    return [j for j in sb.admin.dump("export_jobs") if j["exportId"] not in before]


def client_for(sb):
    return MarketoClient(MarketoSettings.from_config(sb.config), user_agent="test")


# 1. first sync from an old start_date


def test_first_sync_from_old_start_date_is_one_export_per_group(sb):
    before = job_ids(sb)
    run = members_run(sb, start_date=OLD_START)
    assert_same_members(run.members(), sb.admin.dump("program_members"))
    # the clock probe and one full export of the four programs, as without start_date
    assert len(new_jobs(sb, before)) == 2
    assert f"full export, kept from {OLD_START}" in run.logs
    assert run.logs.index("program_members plan:") < run.logs.index(" created (programs")
    parts = run.state["bookmarks"]["program_members"]["partitions"]
    assert {p["context"]["programId"] for p in parts} == {1001, 1002, 1003, 1004}
    assert all(p["replication_key_value"] > OLD_START for p in parts)


def test_plan_bounds_windows_by_program_creation(sb):
    start = "2026-01-01T00:00:00Z"
    tap = TapMarketoMembers(config=config_for(sb, start_date=start))
    stream = tap.streams["program_members"]
    stream.catalog.created_at.update(
        {
            1: "2025-06-01T00:00:00Z",
            2: "2026-02-01T00:00:00Z",
            3: "2026-03-01T00:00:00Z",
        }
    )
    upper = "2026-04-20T00:00:00Z"
    # start_date predates both programs: one full export, rows kept from start_date locally
    (unit,) = stream.engine().plan([2, 3], upper)
    assert (unit.program_ids, unit.server_filter, unit.lower, unit.upper) == (
        (2, 3),
        None,
        start,
        upper,
    )
    # program 1 existed before start_date: its group reads windows from start_date
    units = stream.engine().plan([1, 2, 3], upper)
    assert {u.program_ids for u in units} == {(1, 2, 3)}
    assert units[0].lower == start
    assert all(u.server_filter for u in units)
    # a saved bookmark is never replaced by a full export
    stream.ledger().partition(2)["replication_key_value"] = "2026-04-10T00:00:00Z"
    units = stream.engine().plan([2, 3], upper)
    assert [(u.program_ids, u.lower, bool(u.server_filter)) for u in units] == [
        ((2,), "2026-04-10T00:00:00Z", True),
        ((3,), start, False),
    ]


# 2. the programId column of programIds exports


@pytest.mark.parametrize("mode", ["once", "repeated"])
def test_program_ids_export_program_id_column(sb, mode):
    sb.admin.set_options(export_program_id_column=mode)
    dump = [r for r in sb.admin.dump("program_members") if r["programId"] in (1001, 1003)]
    # the tap's own export: `fields` names programId too
    run = members_run(sb, program_ids=[1001, 1003], lead_fields=[])
    assert_same_members(run.members(), dump)
    # `fields` without programId: the column Marketo adds is the only one
    exports = ProgramMemberExports(client_for(sb))
    fields = ["leadId", "statusName", "updatedAt"]
    created = exports.create(fields, [1001, 1003])
    export_id = str(created["exportId"])
    exports.enqueue(export_id)
    status = {}
    while status.get("status") != "Completed":
        status = exports.status(export_id)
    tmp = sb.db_path.parent / f"export-{mode}.csv"
    exported = ExportDownloader(exports).download(
        export_id, tmp, file_size=status["fileSize"], checksum=status["fileChecksum"]
    )
    header = tmp.read_text().splitlines()[0].split(",")
    assert header == ["programId", *fields]
    props = TapMarketoMembers(config=config_for(sb)).streams["program_members"].schema
    parser = MemberFileParser(props["properties"], {})
    rows = parsed(parser, exported.path, label="test")
    assert sorted((r["programId"], r["leadId"], r["statusName"]) for r in rows) == sorted(
        (r["programId"], r["leadId"], r["statusName"]) for r in dump
    )


# 3. percent holds decimals; any other bad cell is one line


def test_decimal_percent_is_read_as_number(sb):
    client_for(sb).post(
        "/rest/v1/programs/members/schema/fields.json",
        json={
            "input": [{"displayName": "Discount Pct", "name": "discountPct", "dataType": "percent"}]
        },
    )
    a, b, c = (r["leadId"] for r in sb.admin.dump("program_members", program_id=1004)[:3])
    sb.admin.touch_members(1004, [a, b], discountPct=12.5)
    sb.admin.touch_members(1004, [c], discountPct=30)
    config = config_for(sb, program_ids=[1004], lead_fields=[])
    tap = TapMarketoMembers(config=config)
    assert tap.streams["program_members"].schema["properties"]["discountPct"]["type"] == [
        "number",
        "null",
    ]
    run = run_tap(config, catalog=catalog_for(config, MEMBERS_ONLY))
    values = {r["leadId"]: r["discountPct"] for r in run.members() if r["leadId"] in (a, b, c)}
    assert values == {a: 12.5, b: 12.5, c: 30.0}
    assert all(isinstance(v, float) for v in values.values())


BAD_SCHEMA_TAP = """
import sys
import tap_marketo_members.tap as tap

real = tap.program_member_schema

def lying_describe(member_fields, lead_fields):
    schema = real(member_fields, lead_fields)
    schema["properties"]["registrationCode"] = {"type": ["integer", "null"]}
    return schema

tap.program_member_schema = lying_describe
sys.argv = ["tap-marketo-members", "--config", sys.argv[1]]
tap.TapMarketoMembers.cli()
"""


def test_unconvertible_cell_is_one_line_naming_program_row_column(sb, tmp_path):
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config_for(sb, program_ids=[1001, 1003], lead_fields=[])))
    proc = subprocess.run(
        [sys.executable, "-c", BAD_SCHEMA_TAP, str(config_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "column registrationCode" in line]
    assert len(errors) == 1, proc.stderr[-2000:]
    assert "record ending on line " in errors[0]
    assert "program 1001" in errors[0] or "program 1003" in errors[0]


# 4. the extract's optional filters


def test_member_filters_export_only_matching_members(sb):
    dump = sb.admin.dump("program_members")
    run = members_run(sb, status_names=["attended", "Registered"])
    assert_same_members(
        run.members(), [r for r in dump if r["statusName"] in ("Attended", "Registered")]
    )
    run = members_run(sb, is_exhausted=True, nurture_cadence="pause")
    expected = [r for r in dump if r["isExhausted"] is True and r["nurtureCadence"] == "pause"]
    assert expected
    assert_same_members(run.members(), expected)


def test_status_found_in_no_program_of_a_job(sb):
    """1003 names no status: each is asked alone, and the one no member has exports nothing."""
    dump = sb.admin.dump("program_members")
    run = members_run(sb, program_ids=[1001, 1004], status_names=["Attended", "Waitlisted"])
    assert_same_members(
        run.members(),
        [r for r in dump if r["programId"] in (1001, 1004) and r["statusName"] == "Attended"],
    )
    assert "no member of these programs has status Waitlisted" in run.logs
    parts = run.state["bookmarks"]["program_members"]["partitions"]
    assert {p["context"]["programId"] for p in parts if p.get("replication_key_value")} == {
        1001,
        1004,
    }


def test_filter_change_is_a_new_partition_of_state(sb):
    dump = sb.admin.dump("program_members")
    unfiltered = members_run(sb, program_ids=[1002])
    state = unfiltered.state
    # a new filter set starts from start_date (here: in full), not from the old bookmarks
    paused = members_run(sb, state=state, program_ids=[1002], nurture_cadence="pause")
    want = [r for r in dump if r["programId"] == 1002 and r["nurtureCadence"] == "pause"]
    assert_same_members(paused.members(), want)
    parts = paused.state["bookmarks"]["program_members"]["partitions"]
    contexts = [p["context"] for p in parts]
    assert {"programId": 1002} in contexts  # the unfiltered bookmark is kept as it was
    assert {"programId": 1002, "memberFilters": "nurtureCadence=pause"} in contexts
    # each filter set then reads only its own changes
    sb.admin.touch_members(1002, [want[0]["leadId"]])
    again = members_run(sb, state=paused.state, program_ids=[1002], nurture_cadence="pause")
    assert [key(r) for r in again.members()] == [key(want[0])]
    back = members_run(sb, state=again.state, program_ids=[1002])
    assert [key(r) for r in back.members()] == [key(want[0])]


def test_rest_query_keeps_only_filtered_members(sb):
    dump = [r for r in sb.admin.dump("program_members") if r["programId"] == 1002]
    start = sorted(r["updatedAt"] for r in dump)[-300]
    run = members_run(
        sb,
        start_date=start,
        rest_fallback="always",
        program_ids=[1002],
        lead_fields=[],
        nurture_cadence="pause",
    )
    want = [r for r in dump if r["updatedAt"] >= start and r["nurtureCadence"] == "pause"]
    assert want
    assert_same_members(run.members(), want)


# 5. a Failed export says why


def test_failed_export_reports_marketo_error_message(sb):
    sb.admin.inject_fault(f"{EXPORT}/*/enqueue.json", "job_failed", count=0)
    with pytest.raises(ExportError) as info:
        members_run(sb, program_ids=[1004])
    assert "Job failed: export error" in str(info.value)  # the status's errorMsg
    assert "gave no reason" not in str(info.value)


# 6. the REST query's 100,000 limit


def rest_member_calls(sb, since):
    return [c for c in sb.admin.dump("calls")[since:] if c["path"].endswith("/members.json")]


def test_rest_total_membership_limit_switches_program_to_bulk(sb):
    sb.admin.set_options(rest_member_filter_limit=20, rest_member_limit_mode="total")
    dump = [r for r in sb.admin.dump("program_members") if r["programId"] == 1001]
    start = sorted(r["updatedAt"] for r in dump)[-60]
    calls = len(sb.admin.dump("calls"))
    before = job_ids(sb)
    run = members_run(
        sb, start_date=start, rest_fallback="always", program_ids=[1001], lead_fields=[]
    )
    assert_same_members(run.members(), [r for r in dump if r["updatedAt"] >= start])
    assert len(rest_member_calls(sb, calls)) == 1  # not a dozen halvings
    assert run.logs.count("exporting it through bulk instead") == 1
    assert "halving" not in run.logs
    assert [j for j in new_jobs(sb, before) if j["status"] == "Completed"]


def test_rest_total_membership_limit_without_bulk_is_one_clear_error(sb, monkeypatch):
    sb.admin.set_options(rest_member_filter_limit=20, rest_member_limit_mode="total")
    monkeypatch.setattr(
        ExportEngine,
        "_upper_bound",
        lambda self, exports, pid: ("2099-01-01T00:00:00Z", False),
    )
    calls = len(sb.admin.dump("calls"))
    with pytest.raises(ExportError, match="bulk export is not available") as info:
        members_run(sb, start_date="2026-01-01T00:00:00Z", program_ids=[1001], lead_fields=[])
    assert "\n" not in str(info.value)
    assert "Program 1001" in str(info.value)
    assert len(rest_member_calls(sb, calls)) == 1


# 10. the REST lead-field join


def test_rest_fallback_joins_lead_fields(sb):
    dump = [r for r in sb.admin.dump("program_members") if r["programId"] == 1003]
    start = sorted(r["updatedAt"] for r in dump)[-350]  # more than one 300-lead page
    names = ["email", "firstName", "lastName", "company"]
    calls = len(sb.admin.dump("calls"))
    run = members_run(
        sb, start_date=start, rest_fallback="always", program_ids=[1003], lead_fields=names
    )
    assert_same_members(run.members(), [r for r in dump if r["updatedAt"] >= start])
    leads = {lead["id"]: lead for lead in sb.admin.dump("leads")}
    for member in run.members():
        lead = leads[member["leadId"]]
        for name in names:
            assert member[name] == (lead.get(name) or None), (member["leadId"], name)
    lead_calls = [c for c in sb.admin.dump("calls")[calls:] if c["path"] == "/rest/v1/leads.json"]
    assert len(lead_calls) >= 2
