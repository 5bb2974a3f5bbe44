"""Program members through bulk import, REST and Data Ingestion against the sandbox."""

from __future__ import annotations

from target_helpers import record, run_target, schema, state, target_config, wait_ingested

MEMBER_SCHEMA = {
    "properties": {
        "leadId": {"type": ["integer", "null"]},
        "programId": {"type": ["integer", "null"]},
        "statusName": {"type": ["string", "null"]},
        "email": {"type": ["string", "null"]},
        "firstName": {"type": ["string", "null"]},
        "registrationCode": {"type": ["string", "null"]},
        "sessionsAttended": {"type": ["integer", "null"]},
        "membershipDate": {"type": ["string", "null"], "format": "date-time"},
        "_sdc_deleted_at": {"type": ["string", "null"]},
    }
}


def _members(sandbox, program_id):
    return {m["leadId"]: m for m in sandbox.admin.dump("program_members", program_id=program_id)}


def test_bulk_program_members_one_file_per_program_and_status(fast_sandbox, tmp_path):
    plan = [(1001, "Registered"), (1001, "Attended"), (1003, "Waitlisted"), (1003, "Registered")]
    messages = [schema("program_members", MEMBER_SCHEMA, ["email", "programId"])]
    for n, (program_id, status) in enumerate(plan * 5):
        messages.append(
            record(
                "program_members",
                {
                    "programId": program_id,
                    "statusName": status,
                    "email": f"pm{n}@example.com",
                    "firstName": f"Member {n}",
                    "registrationCode": f'R-{n}, "q"',
                    "sessionsAttended": n,
                    "membershipDate": "2026-01-01T00:00:00Z",  # read-only: not sent
                },
            )
        )
    messages.append(
        record("program_members", {"programId": 1001, "statusName": "Sleeping", "email": "a@b.c"})
    )
    messages.append(
        record("program_members", {"programId": 4242, "statusName": "Member", "email": "a@b.c"})
    )
    messages.append(state({"done": True}))
    run = run_target(target_config(fast_sandbox, tmp_path), messages)

    summary = run.summary("program_members")
    assert summary["received"] == 22
    assert summary["imported"] == 20
    assert summary["rejected_by_reason"] == {"unknown_status": 1, "unknown_program": 1}
    assert summary["files"] == 4
    jobs = fast_sandbox.admin.dump("import_jobs")
    assert sorted((j["params"]["programId"], j["params"]["programMemberStatus"]) for j in jobs) == (
        sorted(plan)
    )
    leads = {lead["email"]: lead["id"] for lead in fast_sandbox.admin.dump("leads")}
    for n, (program_id, status) in enumerate(plan * 5):
        member = _members(fast_sandbox, program_id)[leads[f"pm{n}@example.com"]]
        assert member["statusName"] == status
        assert member["registrationCode"] == f'R-{n}, "q"'
        assert member["sessionsAttended"] == n
    assert run.states == [{"done": True}]


def test_rest_program_members_status_skip_and_delete(shared_sandbox, tmp_path):
    before = _members(shared_sandbox, 1002)
    influenced = sorted(i for i, m in before.items() if m["statusName"] == "Influenced")
    others = sorted(i for i in before if i not in influenced)
    absent = next(i for i in range(1, 2000) if i not in before)
    config = target_config(
        shared_sandbox,
        tmp_path,
        streams={"members_rest": {"method": "rest_program_members", "program_id": 1002}},
    )
    messages = [
        schema("members_rest", MEMBER_SCHEMA),
        record("members_rest", {"leadId": absent, "statusName": "Engaged"}),  # created
        record("members_rest", {"leadId": influenced[0], "statusName": "Member"}),  # past: 1037
        record("members_rest", {"leadId": others[0], "_sdc_deleted_at": "2026-01-01T00:00:00Z"}),
        record("members_rest", {"leadId": others[1], "statusName": "Bogus"}),  # unknown status
        record("members_rest", {"leadId": 987_654_321, "statusName": "Engaged"}),  # no such lead
        state({"rest": 1}),
    ]
    run = run_target(config, messages)
    summary = run.summary("members_rest")
    assert (summary["imported"], summary["skipped"], summary["rejected"]) == (2, 1, 2)
    after = _members(shared_sandbox, 1002)
    assert after[absent]["statusName"] == "Engaged"
    assert after[influenced[0]]["statusName"] == "Influenced"
    assert others[0] not in after
    by_line = {r["line"]: r for r in run.rejects}
    assert by_line[5]["reason"] == "unknown_status"
    assert by_line[6]["reason"] == "marketo_skipped"  # Marketo's per-record answer
    assert by_line[6]["code"]
    assert run.states == [{"rest": 1}]


def test_ingest_program_members_sync_and_delete(shared_sandbox, tmp_path):
    fast_sandbox = shared_sandbox
    before = _members(fast_sandbox, 1003)
    leads = sorted(lead["id"] for lead in fast_sandbox.admin.dump("leads"))
    new = [i for i in leads if i not in before][:30]
    gone = sorted(before)[:2]
    config = target_config(
        fast_sandbox,
        tmp_path,
        streams={
            "pm_ingest": {
                "method": "ingest_program_members",
                "program_id": 1003,
                "status": "Registered",
            }
        },
    )
    messages = [schema("pm_ingest", MEMBER_SCHEMA)]
    messages += [record("pm_ingest", {"leadId": lead_id}) for lead_id in new[:15]]
    messages.append(record("pm_ingest", {"leadId": -5}))
    messages += [record("pm_ingest", {"leadId": lead_id}) for lead_id in new[15:]]
    messages += [
        record("pm_ingest", {"leadId": lead_id, "_sdc_deleted_at": "2026-01-01T00:00:00Z"})
        for lead_id in gone
    ]
    messages.append(state({"pm": 1}))
    run = run_target(config, messages)

    summary = run.summary("pm_ingest")
    assert summary["applied"] == len(new) + len(gone)
    assert summary["rejected"] == 1
    (reject,) = run.rejects
    assert reject["line"] == 17
    assert reject["field"] == "leadId"
    assert summary["requests"] == 2  # one sync, one delete: members packed into one body

    wait_ingested(fast_sandbox)
    members = _members(fast_sandbox, 1003)
    assert all(members.get(i, {}).get("statusName") == "Registered" for i in new)
    assert all(i not in members for i in gone)
    assert run.states == [{"pm": 1}]


def test_bulk_member_warnings_are_written_and_optionally_rejected(shared_sandbox, tmp_path):
    leads = {lead["id"]: lead["email"] for lead in shared_sandbox.admin.dump("leads")}
    attended = [
        leads[m["leadId"]]
        for m in shared_sandbox.admin.dump("program_members", program_id=1003)
        if m["statusName"] == "Attended"
    ][:4]
    assert len(attended) == 4

    def lines(emails):
        # members already past "Invited": Marketo keeps them and warns
        return [schema("program_members", MEMBER_SCHEMA)] + [
            record("program_members", {"programId": 1003, "statusName": "Invited", "email": e})
            for e in emails
        ]

    run = run_target(target_config(shared_sandbox, tmp_path / "a"), lines(attended[:2]))
    summary = run.summary("program_members")
    assert (summary["imported"], summary["warnings"], summary["rejected"]) == (2, 2, 0)
    assert {(w["kind"], w["line"]) for w in run.rejects} == {("warning", 2), ("warning", 3)}

    config = target_config(shared_sandbox, tmp_path / "b", warnings_as_rejects=True)
    run = run_target(config, lines(attended[2:]))
    summary = run.summary("program_members")
    assert (summary["imported"], summary["rejected"]) == (0, 2)
    assert {r["reason"] for r in run.rejects} == {"marketo_warning"}


def test_bulk_program_member_stream_deletes_through_rest(shared_sandbox, tmp_path):
    members = _members(shared_sandbox, 1004)
    leads = {lead["id"]: lead["email"] for lead in shared_sandbox.admin.dump("leads")}
    doomed = sorted(members)[:3]
    keep = sorted(members)[3]
    lines = [schema("program_members", MEMBER_SCHEMA)]
    lines += [
        record(
            "program_members",
            {"leadId": lead_id, "programId": 1004, "_sdc_deleted_at": "2026-01-01T00:00:00Z"},
        )
        for lead_id in doomed
    ]
    lines.append(
        record(
            "program_members",
            {"leadId": keep, "programId": 1004, "statusName": "Clicked", "email": leads[keep]},
        )
    )
    run = run_target(target_config(shared_sandbox, tmp_path), lines)
    summary = run.summary("program_members")
    assert summary["imported"] == 4
    after = _members(shared_sandbox, 1004)
    assert not set(doomed) & set(after)
    assert after[keep]["statusName"] == "Clicked"


def test_same_member_in_two_statuses_last_record_wins(shared_sandbox, tmp_path):
    lines = [schema("program_members", MEMBER_SCHEMA)]
    lines += [
        record(
            "program_members",
            {"programId": 1003, "statusName": status, "email": "flipflop@example.com"},
        )
        for status in ("Invited", "Registered", "Waitlisted")
    ]
    lines.append(
        record(
            "program_members",
            {"programId": 1001, "statusName": "Invited", "email": "flipflop@example.com"},
        )
    )
    run = run_target(target_config(shared_sandbox, tmp_path), lines)
    summary = run.summary("program_members")
    assert (summary["imported"], summary["superseded"]) == (2, 2)
    lead_id = next(
        lead["id"]
        for lead in shared_sandbox.admin.dump("leads")
        if lead["email"] == "flipflop@example.com"
    )
    assert _members(shared_sandbox, 1003)[lead_id]["statusName"] == "Waitlisted"
    assert _members(shared_sandbox, 1001)[lead_id]["statusName"] == "Invited"


def test_rest_member_deleted_after_a_status_change_stays_deleted(shared_sandbox, tmp_path):
    members = _members(shared_sandbox, 1004)
    first, second = sorted(members)[-2:]
    config = target_config(
        shared_sandbox,
        tmp_path,
        streams={"rest_order": {"method": "rest_program_members", "program_id": 1004}},
    )
    deleted = {"_sdc_deleted_at": "2026-01-01T00:00:00Z"}
    lines = [
        schema("rest_order", MEMBER_SCHEMA),
        record("rest_order", {"leadId": first, **deleted}),  # opens the delete batch first
        record("rest_order", {"leadId": second, "statusName": "Clicked"}),
        record("rest_order", {"leadId": second, **deleted}),  # the last word on `second`
    ]
    run = run_target(config, lines)
    assert run.summary("rest_order")["superseded"] == 1
    after = _members(shared_sandbox, 1004)
    assert first not in after
    assert second not in after


def test_ingest_program_members_carry_custom_fields_in_any_case(shared_sandbox, tmp_path):
    """Data Ingestion sync members carry custom member fields, checked against describe."""
    before = _members(shared_sandbox, 1001)
    leads = sorted(lead["id"] for lead in shared_sandbox.admin.dump("leads"))
    new = [i for i in leads if i not in before][:3]
    config = target_config(
        shared_sandbox,
        tmp_path,
        streams={"pm_custom": {"method": "ingest_program_members", "program_id": 1001}},
    )
    custom_schema = {
        "properties": {
            **MEMBER_SCHEMA["properties"],
            "VIPATTENDEE": {"type": ["boolean", "null"]},  # vipAttendee, another case
            "feedbackScore": {"type": ["number", "string", "null"]},
        }
    }
    messages = [
        schema("pm_custom", custom_schema),
        record(
            "pm_custom",
            {
                "leadId": new[0],
                "statusName": "Registered",
                "email": "not-sent@example.com",  # a lead field: known, not a member field
                "sessionsAttended": 41,
                "VIPATTENDEE": True,
                "feedbackScore": "4.5",
                "registrationCode": "STANDARD-1",  # standard: Data Ingestion takes custom only
            },
        ),
        record("pm_custom", {"leadId": new[1], "statusName": "Registered", "sessionsAttended": 7}),
        record(
            "pm_custom", {"leadId": new[2], "statusName": "Registered", "feedbackScore": "lots"}
        ),
        state({"custom": 1}),
    ]
    run = run_target(config, messages)

    summary = run.summary("pm_custom")
    assert (summary["applied"], summary["rejected"]) == (2, 1)
    (reject,) = run.rejects
    assert (reject["line"], reject["reason"], reject["field"]) == (4, "type", "feedbackScore")
    assert wait_ingested(shared_sandbox) == []
    members = _members(shared_sandbox, 1001)
    first, second = members[new[0]], members[new[1]]
    assert (first["statusName"], first["sessionsAttended"]) == ("Registered", 41)
    assert first["vipAttendee"] is True
    assert first["feedbackScore"] == 4.5
    assert first.get("registrationCode") != "STANDARD-1"
    assert second["sessionsAttended"] == 7
    assert new[2] not in members
    assert run.states == [{"custom": 1}]


def test_ingestion_sends_only_documented_attributes(fast_sandbox, tmp_path, monkeypatch):
    """No `priority` on program members, X-Request-Source within 50 characters.

    The sandbox refuses either with 4000801, which would reject every record here.
    """
    import target_marketo_ingest  # noqa: PLC0415

    version = "1.2.3.dev456+g" + "0123456789abcdef" * 4
    monkeypatch.setattr(target_marketo_ingest, "__version__", version)
    before = _members(fast_sandbox, 1003)
    leads = sorted(lead["id"] for lead in fast_sandbox.admin.dump("leads"))
    new = next(i for i in leads if i not in before)
    config = target_config(
        fast_sandbox,
        tmp_path,
        streams={
            "pm_priority": {
                "method": "ingest_program_members",
                "program_id": 1003,
                "status": "Registered",
                "priority": "high",
            }
        },
    )
    messages = [
        schema("pm_priority", MEMBER_SCHEMA),
        record("pm_priority", {"leadId": new}),
        record("pm_priority", {"leadId": 987_654_321}),  # fails after the 202: shows the source
    ]
    run = run_target(config, messages)

    assert run.summary("pm_priority")["applied"] == 1
    # verify (on by default) read it back: the failed one is rejected, not counted applied
    assert [(r["reason"], r["record"]["leadId"]) for r in run.rejects] == [
        ("not_applied", 987_654_321)
    ]
    (failure,) = wait_ingested(fast_sandbox)
    source = failure["requestSource"]
    assert len(source) == 50
    assert source.startswith("target-marketo-ingest/1.2.3.dev456+g0123")
    assert _members(fast_sandbox, 1003)[new]["statusName"] == "Registered"


def test_rest_program_members_sync_member_data(shared_sandbox, tmp_path):
    """The REST sync-data call writes updateable member fields after the status call."""
    before = _members(shared_sandbox, 1001)
    leads = sorted(lead["id"] for lead in shared_sandbox.admin.dump("leads"))
    new = [i for i in leads if i not in before][-2:]
    config = target_config(
        shared_sandbox,
        tmp_path,
        streams={"pm_data": {"method": "rest_program_members", "program_id": 1001}},
    )
    messages = [
        schema("pm_data", MEMBER_SCHEMA),
        record(
            "pm_data",
            {
                "leadId": new[0],
                "statusName": "Registered",
                "registrationCode": "REST-DATA-1",
                "sessionsAttended": 3,
                "membershipDate": "2026-01-01T00:00:00Z",  # read-only: not sent
            },
        ),
        record(
            "pm_data",
            {"leadId": new[1], "statusName": "Registered", "registrationCode": "R" * 101},
        ),
        state({"data": 1}),
    ]
    run = run_target(config, messages)

    summary = run.summary("pm_data")
    assert (summary["imported"], summary["rejected"]) == (1, 1)
    (reject,) = run.rejects
    assert (reject["line"], reject["reason"], reject["field"]) == (
        3,
        "too_long",
        "registrationCode",
    )
    members = _members(shared_sandbox, 1001)
    assert members[new[0]]["registrationCode"] == "REST-DATA-1"
    assert members[new[0]]["sessionsAttended"] == 3
    assert new[1] not in members
    assert run.states == [{"data": 1}]
