"""Route options are sent and honoured, not just accepted: each against the sandbox, which checks
them as the published pages say, and each refusal ends as rejects with Marketo's reason."""

from __future__ import annotations

import pytest
from target_helpers import record, run_target, schema, state, target_config, wait_ingested

LEAD_BY_ID = {
    "properties": {
        "id": {"type": ["integer", "null"]},
        "firstName": {"type": ["string", "null"]},
    }
}
PERSON = {
    "properties": {
        "email": {"type": ["string", "null"]},
        "firstName": {"type": ["string", "null"]},
        "lastName": {"type": ["string", "null"]},
    }
}


def _existing_leads(sandbox, n: int) -> list[dict]:
    return sorted(sandbox.admin.dump("leads"), key=lambda lead: lead["id"])[:n]


def test_bulk_leads_list_partition_and_non_email_lookup(fast_sandbox, tmp_path):
    fast_sandbox.admin.set_options(static_lists=[77], lead_partitions=["Default", "EMEA"])
    leads = _existing_leads(fast_sandbox, 3)
    route = {"method": "bulk_leads", "lookup_field": "id", "list_id": 77, "partition_name": "EMEA"}
    config = target_config(fast_sandbox, tmp_path, streams={"by_id": route})
    messages = [schema("by_id", LEAD_BY_ID)]
    messages += [
        record("by_id", {"id": lead["id"], "firstName": f"ById{lead['id']}"}) for lead in leads
    ]
    messages.append(state({"by_id": 1}))
    run = run_target(config, messages)

    assert run.summary("by_id")["imported"] == 3
    assert run.rejects == []
    (job,) = fast_sandbox.admin.dump("import_jobs")
    assert job["params"]["lookupField"] == "id"
    assert job["params"]["listId"] == 77
    assert job["params"]["partitionName"] == "EMEA"
    after = {lead["id"]: lead for lead in fast_sandbox.admin.dump("leads")}
    assert all(after[lead["id"]]["firstName"] == f"ById{lead['id']}" for lead in leads)
    assert all(after[lead["id"]]["email"] == lead["email"] for lead in leads)
    assert run.states == [{"by_id": 1}]


@pytest.mark.parametrize(
    ("option", "value", "code"),
    [
        ("list_id", 78, "1013"),  # not a static list of the instance
        ("partition_name", "APAC", "1003"),  # not a lead partition
        ("lookup_field", "firstName", "1011"),  # a standard field Marketo cannot look up by
    ],
)
def test_bulk_leads_refused_option_rejects_with_marketos_reason(
    fast_sandbox, tmp_path, option, value, code
):
    fast_sandbox.admin.set_options(static_lists=[77], lead_partitions=["Default", "EMEA"])
    config = target_config(
        fast_sandbox, tmp_path, streams={"people": {"method": "bulk_leads", option: value}}
    )
    messages = [
        schema("people", PERSON),
        record("people", {"email": "refused1@example.com", "firstName": "R1"}),
        record("people", {"email": "refused2@example.com", "firstName": "R2"}),
        state({"people": 1}),
    ]
    run = run_target(config, messages)

    summary = run.summary("people")
    assert (summary["imported"], summary["rejected"]) == (0, 2)
    assert {(r["reason"], str(r["code"])) for r in run.rejects} == {("import_rejected", code)}
    assert all(r["message"] for r in run.rejects)
    assert fast_sandbox.admin.dump("import_jobs") == []
    emails = {lead["email"] for lead in fast_sandbox.admin.dump("leads")}
    assert "refused1@example.com" not in emails


def test_ingest_persons_priority_partition_and_two_dedupe_fields(fast_sandbox, tmp_path):
    """The demo's first names repeat (100 leads each): only both fields together find one."""
    fast_sandbox.admin.set_options(lead_partitions=["Default", "EMEA"])
    (lead,) = _existing_leads(fast_sandbox, 1)
    namesakes = [x for x in fast_sandbox.admin.dump("leads") if x["firstName"] == lead["firstName"]]
    assert len(namesakes) > 1
    route = {
        "method": "ingest_persons",
        "priority": "high",
        "partition_name": "EMEA",
        "dedupe_fields": ["firstName", "email"],
    }
    config = target_config(fast_sandbox, tmp_path, streams={"people": route})
    messages = [
        schema("people", PERSON),
        record(
            "people", {"firstName": lead["firstName"], "email": lead["email"], "lastName": "Two"}
        ),
        state({"people": 1}),
    ]
    run = run_target(config, messages)

    assert run.summary("people")["applied"] == 1
    assert run.rejects == []
    assert wait_ingested(fast_sandbox) == []
    after = {x["id"]: x for x in fast_sandbox.admin.dump("leads")}
    assert after[lead["id"]]["lastName"] == "Two"
    assert [x["id"] for x in after.values() if x["lastName"] == "Two"] == [lead["id"]]
    assert run.states == [{"people": 1}]


def test_ingest_persons_unknown_partition_rejects_with_reason(fast_sandbox, tmp_path):
    config = target_config(
        fast_sandbox,
        tmp_path,
        streams={"people": {"method": "ingest_persons", "partition_name": "Nowhere"}},
    )
    messages = [
        schema("people", PERSON),
        record("people", {"email": "p1@partition.example"}),
        record("people", {"email": "p2@partition.example"}),
    ]
    run = run_target(config, messages)

    summary = run.summary("people")
    assert (summary["applied"], summary["rejected"]) == (0, 2)
    assert {r["code"] for r in run.rejects} == {"4000801"}
    assert all("Nowhere" in r["message"] for r in run.rejects)


def test_ingest_companies_update_only_by_id_field(fast_sandbox, tmp_path):
    company = {
        "properties": {
            "id": {"type": ["integer", "null"]},
            "externalCompanyId": {"type": ["string", "null"]},
            "company": {"type": ["string", "null"]},
        }
    }
    create = target_config(fast_sandbox, tmp_path, streams={"companies": {}})
    run = run_target(
        create,
        [
            schema("companies", company),
            record("companies", {"externalCompanyId": "opt-1", "company": "Before"}),
        ],
    )
    assert run.summary("companies")["applied"] == 1
    assert wait_ingested(fast_sandbox) == []
    (created,) = [
        c for c in fast_sandbox.admin.dump("companies") if c["externalCompanyId"] == "opt-1"
    ]

    update = target_config(
        fast_sandbox,
        tmp_path,
        streams={"companies": {"action": "updateOnly", "dedupe_by": "idField"}},
    )
    run = run_target(
        update,
        [
            schema("companies", company),
            record("companies", {"id": created["id"], "company": "After"}),
        ],
    )
    assert run.summary("companies")["applied"] == 1
    assert run.rejects == []
    assert wait_ingested(fast_sandbox) == []
    companies = {c["id"]: c for c in fast_sandbox.admin.dump("companies")}
    assert companies[created["id"]]["company"] == "After"
    assert companies[created["id"]]["externalCompanyId"] == "opt-1"


def test_ingest_custom_object_by_marketo_guid_with_priority(fast_sandbox, tmp_path):
    purchase = {
        "properties": {
            "marketoGUID": {"type": ["string", "null"]},
            "vin": {"type": ["string", "null"]},
            "email": {"type": ["string", "null"]},
            "make": {"type": ["string", "null"]},
        }
    }
    (lead,) = _existing_leads(fast_sandbox, 1)
    by_vin = {
        "method": "ingest_custom_object",
        "custom_object_name": "purchases",
        "dedupe_fields": ["vin"],
    }
    run = run_target(
        target_config(fast_sandbox, tmp_path, streams={"purchases": by_vin}),
        [
            schema("purchases", purchase),
            record("purchases", {"vin": "GUID-VIN", "email": lead["email"], "make": "BMW"}),
        ],
    )
    assert run.summary("purchases")["applied"] == 1
    assert wait_ingested(fast_sandbox) == []
    (made,) = [o for o in fast_sandbox.admin.dump("custom_objects") if o.get("vin") == "GUID-VIN"]

    by_guid = {
        "method": "ingest_custom_object",
        "custom_object_name": "purchases",
        "dedupe_by": "marketoGUID",
        "priority": "high",
    }
    run = run_target(
        target_config(fast_sandbox, tmp_path, streams={"purchases": by_guid}),
        [
            schema("purchases", purchase),
            record("purchases", {"marketoGUID": made["marketoGUID"], "make": "Audi"}),
        ],
    )
    assert run.summary("purchases")["applied"] == 1
    assert run.rejects == []
    assert wait_ingested(fast_sandbox) == []
    objects = {o["marketoGUID"]: o for o in fast_sandbox.admin.dump("custom_objects")}
    assert objects[made["marketoGUID"]]["make"] == "Audi"
    assert objects[made["marketoGUID"]]["vin"] == "GUID-VIN"
