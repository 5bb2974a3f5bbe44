"""Syncs against the sandbox: full equals the dump, incremental, windows, custom fields, values."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import requests
from marketo_common import MarketoClient, MarketoSettings
from tap_marketo_members.tap import TapMarketoMembers
from tap_marketo_members.windows import iso, parse_iso

from .support import (
    assert_same_members,
    assert_state_follows_its_records,
    catalog_for,
    config_for,
    key,
    run_tap,
)

MEMBERS_ONLY = {"program_members": None}


def test_full_sync_equals_sandbox_dump(sb):
    config = config_for(sb, lead_fields=["email", "firstName", "lastName", "company"])
    run = run_tap(config)
    expected = sb.admin.dump("program_members")
    assert len(expected) > 1000
    assert_same_members(run.members(), expected)
    leads = {lead["id"]: lead for lead in sb.admin.dump("leads")}
    for member in run.members():
        lead = leads[member["leadId"]]
        for name in ("email", "firstName", "lastName", "company"):
            assert member[name] == (lead.get(name) or None), (member["leadId"], name)
    # every program member field of the describe is in each record, typed by the schema
    schema = next(
        m for m in run.messages if m["type"] == "SCHEMA" and m["stream"] == "program_members"
    )
    assert set(run.members()[0]) == set(schema["schema"]["properties"])
    assert len(run.records["programs"]) == 4
    assert {p["id"] for p in run.records["programs"]} == {1001, 1002, 1003, 1004}
    assert "fast path" in run.logs
    # progress: status changes with elapsed time, bytes downloaded
    assert "Queued -> " in run.logs
    assert " s since created)" in run.logs
    assert "bytes, checksum ok" in run.logs


def test_hard_values_survive(sb):
    """null, quotes, commas, CR/LF, U+2028, unicode and NUL in values."""
    hard = {
        "myCustomField": 'He said "hi", then\r\nleft; \u2028 caf\u00e9 \u4e2d\u6587 \U0001f600',
        "attendeeNotes": 'a,b,,c\n""',
        "registrationCode": "with\x00nul",
        "webinarUrl": None,
    }
    touched = sorted(
        m["leadId"] for m in sb.admin.dump("program_members") if m["programId"] == 1002
    )[:2]
    sb.admin.touch_members(1002, touched, **hard)
    run = run_tap(config_for(sb, program_ids=[1002]), catalog=catalog_for(sb.config, MEMBERS_ONLY))
    rows = {r["leadId"]: r for r in run.members() if r["leadId"] in touched}
    assert len(rows) == 2, "touched members missing"
    for row in rows.values():
        assert row["myCustomField"] == hard["myCustomField"]
        assert row["attendeeNotes"] == hard["attendeeNotes"]
        assert row["registrationCode"] == "withnul"  # NUL stripped, counted in the log
        assert row["webinarUrl"] is None
    assert "NUL" in run.logs


def test_incremental_second_run_only_changed(sb):
    config = config_for(sb)
    catalog = catalog_for(config, MEMBERS_ONLY)
    first = run_tap(config, catalog=catalog)
    assert len(first.members()) == len(sb.admin.dump("program_members"))
    sb.admin.touch_members(1001, [1, 2, 3], statusName="Attended")
    sb.admin.touch_members(1003, [10])
    second = run_tap(config, state=first.state, catalog=catalog)
    got = sorted(key(r) for r in second.members())
    expected = sorted(
        key(r)
        for r in sb.admin.dump("program_members")
        if (r["programId"], r["leadId"]) in {(1001, 1), (1001, 2), (1001, 3), (1003, 10)}
    )
    assert got == expected
    assert {r["statusName"] for r in second.members() if r["programId"] == 1001} == {"Attended"}
    # bookmarks per program partition, all advanced
    parts = second.state["bookmarks"]["program_members"]["partitions"]
    assert {p["context"]["programId"] for p in parts} == {1001, 1002, 1003, 1004}
    for part in parts:
        assert part["replication_key"] == "updatedAt"
        assert (
            part["replication_key_value"]
            >= first.state["bookmarks"]["program_members"]["partitions"][0]["replication_key_value"]
        )
    third = run_tap(config, state=second.state, catalog=catalog)
    assert third.members() == []


def test_member_on_window_boundary_appears_once(sb):
    dump = sb.admin.dump("program_members")
    edge = max(r["updatedAt"] for r in dump if r["programId"] == 1001)
    start = iso(parse_iso(edge) - dt.timedelta(days=2))
    config = config_for(sb, start_date=start, window_days=1, program_ids=[1001])
    run = run_tap(config, catalog=catalog_for(config, MEMBERS_ONLY))
    assert "updatedAt " + start in run.logs  # windowed jobs ran
    expected = [r for r in dump if r["programId"] == 1001 and r["updatedAt"] >= start]
    assert any(r["updatedAt"] == edge for r in expected)
    assert_same_members(run.members(), expected)
    counts = Counter(key(r) for r in run.members())
    assert max(counts.values()) == 1
    assert_state_follows_its_records(run)


def test_discovery_types_a_new_custom_field(sb):
    client = MarketoClient(MarketoSettings.from_config(sb.config), user_agent="test")
    client.post(
        "/rest/v1/programs/members/schema/fields.json",
        json={
            "input": [{"displayName": "Seats Booked", "name": "seatsBooked", "dataType": "integer"}]
        },
    )
    client.post(
        "/rest/v1/programs/members/schema/fields.json",
        json={"input": [{"displayName": "Promo", "name": "promoCode", "dataType": "string"}]},
    )
    tap = TapMarketoMembers(config=config_for(sb))
    props = tap.streams["program_members"].schema["properties"]
    assert props["seatsBooked"]["type"] == ["integer", "null"]
    assert props["promoCode"]["type"][0] == "string"
    fields = {
        f["name"]
        for f in run_tap(
            config_for(sb),
            catalog=catalog_for(sb.config, {"program_member_fields": None}),
        ).records["program_member_fields"]
    }
    assert {"seatsBooked", "promoCode"} <= fields


def test_lead_fields_star_and_selection(sb):
    config = config_for(sb, lead_fields=["*"], program_ids=[1004])
    tap = TapMarketoMembers(config=config)
    props = tap.streams["program_members"].schema["properties"]
    lead_names = {f["name"] for f in sb.admin.dump("fields") if f["object"] == "lead"}
    assert lead_names - {"id", "updatedAt", "createdAt"} <= set(props)
    # deselected properties are not even exported
    catalog = catalog_for(config, {"program_members": ["statusName", "email"]})
    run = run_tap(config, catalog=catalog)
    assert run.members()
    assert set(run.members()[0]) == {"programId", "leadId", "updatedAt", "statusName", "email"}
    jobs = sb.admin.dump("export_jobs")
    assert set(jobs[-1]["fields"]) == {"programId", "leadId", "updatedAt", "statusName", "email"}


def test_stream_maps_use_the_sdk_path(sb):
    config = config_for(
        sb,
        program_ids=[1003],
        stream_maps={
            "program_members": {"status_upper": "statusName.upper()", "attendeeNotes": None}
        },
    )
    run = run_tap(config, catalog=catalog_for(config, MEMBERS_ONLY))
    assert run.members()
    assert all(r["status_upper"] == r["statusName"].upper() for r in run.members())
    assert all("attendeeNotes" not in r for r in run.members())
    assert "records go through the SDK" in run.logs


def test_field_schema_streams(sb):
    run = run_tap(
        config_for(sb),
        catalog=catalog_for(sb.config, {"program_member_fields": None, "lead_fields": None}),
    )
    pm = {f["name"]: f for f in run.records["program_member_fields"]}
    assert pm["statusName"]["dataType"] == "string"
    assert any(f["isCustom"] for f in pm.values())
    assert {"email", "firstName"} <= {f["name"] for f in run.records["lead_fields"]}


def test_sandbox_reachable(sb):
    assert requests.get(sb.base_url + "/_sandbox/now", timeout=5).ok


def test_catalog_field_gone_from_marketo_is_skipped_with_warning(sb):
    config = config_for(sb, program_ids=[1004])
    catalog = catalog_for(config, MEMBERS_ONLY)
    entry = next(e for e in catalog["streams"] if e["tap_stream_id"] == "program_members")
    entry["schema"]["properties"]["retiredField"] = {"type": ["string", "null"]}
    entry["metadata"].append(
        {"breadcrumb": ["properties", "retiredField"], "metadata": {"inclusion": "available"}}
    )
    run = run_tap(config, catalog=catalog)
    assert run.members()
    assert "retiredField" in run.logs
    assert all("retiredField" not in r for r in run.members())


def test_full_table_replication_exports_everything_without_bookmarks(sb):
    config = config_for(sb, program_ids=[1003], start_date="2099-01-01T00:00:00Z")
    catalog = catalog_for(config, MEMBERS_ONLY)
    entry = next(e for e in catalog["streams"] if e["tap_stream_id"] == "program_members")
    entry["replication_method"] = "FULL_TABLE"
    root = next(m for m in entry["metadata"] if m["breadcrumb"] == [])
    root["metadata"]["forced-replication-method"] = "FULL_TABLE"
    run = run_tap(config, catalog=catalog)
    expected = [r for r in sb.admin.dump("program_members") if r["programId"] == 1003]
    assert_same_members(run.members(), expected)  # start_date does not apply to a full table
    parts = run.state["bookmarks"]["program_members"].get("partitions", [])
    assert all("replication_key_value" not in p for p in parts)
