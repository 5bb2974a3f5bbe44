"""Verified Data Ingestion writes against the sandbox, which applies after the 202 and fails
some records then (unknown leads, companies missing for updateOnly)."""

from __future__ import annotations

from target_helpers import (
    LEAD_SCHEMA,
    record,
    run_target,
    schema,
    state,
    target_config,
    wait_ingested,
)

MEMBER_SCHEMA = {
    "properties": {
        "leadId": {"type": ["integer", "null"]},
        "programId": {"type": ["integer", "null"]},
        "statusName": {"type": ["string", "null"]},
    }
}
UNKNOWN_LEADS = (9_100_001, 9_100_002, 9_100_003)


def _config(sandbox, tmp_path, streams, **extra):
    extra.setdefault("verify_timeout_seconds", 5)
    return target_config(sandbox, tmp_path, streams=streams, **extra)


def test_1000_members_a_few_unknown_leads_exactly_those_not_applied(fast_sandbox, tmp_path):
    leads = [lead["id"] for lead in fast_sandbox.admin.dump("leads")][: 1000 - len(UNKNOWN_LEADS)]
    assert len(leads) == 1000 - len(UNKNOWN_LEADS)
    ids = leads[:500] + list(UNKNOWN_LEADS) + leads[500:]
    config = _config(fast_sandbox, tmp_path, {"pm": {"method": "ingest_program_members"}})
    messages = [schema("pm", MEMBER_SCHEMA)]
    messages += [
        record("pm", {"leadId": lead_id, "programId": 1004, "statusName": "Sent"})
        for lead_id in ids
    ]
    messages.append(state({"pm": "done"}))
    run = run_target(config, messages)

    summary = run.summary("pm")
    assert (summary["applied"], summary["accepted"]) == (997, 0)
    assert summary["rejected_by_reason"] == {"not_applied": 3}
    assert sorted(r["record"]["leadId"] for r in run.rejects) == list(UNKNOWN_LEADS)
    reject = run.rejects[0]
    assert reject["line"] == 2 + 500
    failures = fast_sandbox.admin.ingestion()["failures"]
    assert reject["code"] in {f["requestId"] for f in failures}  # the request's X-Request-Id
    assert reject["code"] in reject["message"]
    assert "read back: not found" in reject["message"]
    assert "may still be applied later" in reject["message"]
    assert "feeding it again is safe" in reject["message"]
    assert run.states == [{"pm": "done"}]
    assert summary["without_outcome"] == 0


def test_verify_false_leaves_records_accepted(fast_sandbox, tmp_path):
    leads = [lead["id"] for lead in fast_sandbox.admin.dump("leads")][:5]
    route = {"method": "ingest_program_members", "verify": False}
    config = _config(fast_sandbox, tmp_path, {"pm": route})
    messages = [schema("pm", MEMBER_SCHEMA)]
    messages += [
        record("pm", {"leadId": i, "programId": 1004, "statusName": "Sent"})
        for i in [*leads, UNKNOWN_LEADS[0]]
    ]
    messages.append(state({"pm": 1}))
    run = run_target(config, messages)
    summary = run.summary("pm")
    assert (summary["accepted"], summary["applied"], summary["rejected"]) == (6, 0, 0)
    assert summary["api_calls"] <= 3  # no read-back calls
    assert run.states == [{"pm": 1}]


def test_persons_verified_by_email_and_values(fast_sandbox, tmp_path):
    config = _config(fast_sandbox, tmp_path, {"people": {"method": "ingest_persons"}})
    messages = [schema("people", LEAD_SCHEMA)]
    messages += [
        record(
            "people",
            {
                "email": f"Verify{i}@Persons.example",
                "firstName": f"V{i}",
                "leadScore": i,
                "unsubscribed": i % 2 == 0,
                "lastWebinarAt": "2026-03-01T10:00:00Z",
            },
        )
        for i in range(30)
    ]
    run = run_target(config, messages)
    summary = run.summary("people")
    assert (summary["applied"], summary["rejected"]) == (30, 0)
    assert summary["api_calls"] >= 2  # the request and at least one read-back


def test_companies_update_only_missing_company_is_not_applied(fast_sandbox, tmp_path):
    company_schema = {
        "properties": {
            "externalCompanyId": {"type": "string"},
            "company": {"type": "string"},
            "numberOfEmployees": {"type": ["integer", "null"]},
        }
    }
    config = _config(fast_sandbox, tmp_path, {"companies": {}})
    messages = [schema("companies", company_schema)]
    messages += [
        record(
            "companies",
            {"externalCompanyId": f"vc-{i}", "company": f"V{i}", "numberOfEmployees": i},
        )
        for i in range(3)
    ]
    run = run_target(config, messages)
    assert run.summary("companies")["applied"] == 3

    wait_ingested(fast_sandbox)
    update_only = {"companies": {"action": "updateOnly"}}
    config = _config(fast_sandbox, tmp_path, update_only, verify_timeout_seconds=2)
    messages = [
        schema("companies", company_schema),
        record(
            "companies", {"externalCompanyId": "vc-1", "company": "V1", "numberOfEmployees": 50}
        ),
        record("companies", {"externalCompanyId": "vc-none", "company": "Nobody"}),
    ]
    run = run_target(config, messages)
    summary = run.summary("companies")
    assert (summary["applied"], summary["rejected_by_reason"]) == (1, {"not_applied": 1})
    (reject,) = run.rejects
    assert reject["record"]["externalCompanyId"] == "vc-none"


def test_custom_objects_verified_by_dedupe_field(fast_sandbox, tmp_path):
    route = {
        "method": "ingest_custom_object",
        "custom_object_name": "purchases",
        "dedupe_fields": ["vin"],
    }
    purchase_schema = {
        "properties": {
            "vin": {"type": "string"},
            "email": {"type": "string"},
            "make": {"type": "string"},
            "year": {"type": "integer"},
            "price": {"type": "number"},
        }
    }
    config = _config(fast_sandbox, tmp_path, {"purchases": route})
    messages = [schema("purchases", purchase_schema)]
    messages += [
        record(
            "purchases",
            {
                "vin": f"VVIN{i}",
                "email": "lead1@example.com",
                "make": "Ford",
                "year": 2003,
                "price": 1000.5 + i,
            },
        )
        for i in range(4)
    ]
    run = run_target(config, messages)
    summary = run.summary("purchases")
    assert (summary["applied"], summary["rejected"]) == (4, 0)
