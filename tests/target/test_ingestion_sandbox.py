"""Data Ingestion writes (persons, companies, custom objects) against the sandbox."""

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


def test_persons_split_on_400_rejects_only_the_bad_record(shared_sandbox, tmp_path):
    config = target_config(
        shared_sandbox, tmp_path, streams={"people": {"method": "ingest_persons"}}
    )
    messages = [schema("people", LEAD_SCHEMA)]
    n = 40
    for i in range(n):
        rec = {"email": f"person{i}@ingest.example", "firstName": f"P{i}", "leadScore": i}
        if i == 27:
            rec["lastWebinarAt"] = "yesterday-ish"  # passes through; Marketo answers 4000802
        messages.append(record("people", rec))
    messages.append(state({"people": n}))
    run = run_target(config, messages)

    summary = run.summary("people")
    assert summary["applied"] == n - 1
    assert summary["rejected"] == 1
    (reject,) = run.rejects
    assert reject["line"] == 29
    assert reject["code"] == "4000802"
    assert reject["record"]["email"] == "person27@ingest.example"
    assert summary["requests"] > 2  # the 40-object batch was split down to the bad record

    wait_ingested(shared_sandbox)
    leads = {lead["email"]: lead for lead in shared_sandbox.admin.dump("leads")}
    assert all(f"person{i}@ingest.example" in leads for i in range(n) if i != 27)
    assert "person27@ingest.example" not in leads
    assert leads["person3@ingest.example"]["firstName"] == "P3"
    assert run.states == [{"people": n}]


def _purchase(vin: str, make: str, price: float) -> dict:
    return {"vin": vin, "email": "lead1@example.com", "make": make, "year": 2003, "price": price}


def test_companies_and_custom_objects(shared_sandbox, tmp_path):
    config = target_config(
        shared_sandbox,
        tmp_path,
        streams={
            "companies": {},
            "purchases": {
                "method": "ingest_custom_object",
                "custom_object_name": "purchases",
                "dedupe_fields": ["vin"],
            },
        },
    )
    company_schema = {
        "properties": {
            "externalCompanyId": {"type": "string"},
            "company": {"type": "string"},
            "numberOfEmployees": {"type": ["integer", "null"]},
        }
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
    messages = [
        schema("companies", company_schema),
        schema("purchases", purchase_schema),
        record(
            "companies", {"externalCompanyId": "ext-1", "company": "Acme", "numberOfEmployees": 5}
        ),
        record("companies", {"externalCompanyId": "ext-2", "company": "Globex"}),
        record("companies", {"company": "No key"}),
        record(
            "purchases",
            {
                "vin": "VIN1",
                "email": "lead1@example.com",
                "make": "BMW",
                "year": 2003,
                "price": 12.5,
            },
        ),
        record(
            "purchases",
            {"vin": "VIN1", "email": "lead1@example.com", "make": "Audi", "year": 2004, "price": 1},
        ),
        record(
            "purchases",
            {"vin": "VIN2", "email": "lead2@example.com", "make": "VW", "year": 1999, "price": 3},
        ),
    ]
    run = run_target(config, messages)
    assert run.summary("companies")["applied"] == 2
    assert run.summary("companies")["rejected_by_reason"] == {"missing_key_field": 1}
    purchases = run.summary("purchases")
    assert purchases["applied"] == 2
    assert purchases["superseded"] == 1

    wait_ingested(shared_sandbox)
    companies = {c.get("externalCompanyId"): c for c in shared_sandbox.admin.dump("companies")}
    assert companies["ext-1"]["company"] == "Acme"
    objects = shared_sandbox.admin.dump("custom_objects")
    by_vin = {o.get("vin", o.get("fields", {}).get("vin")): o for o in objects}
    assert "VIN1" in by_vin
    assert "Audi" in str(by_vin["VIN1"])  # last record wins within a batch


def test_persons_with_impossible_emails_are_rejected_before_any_request(shared_sandbox, tmp_path):
    """Soak finding: one email without '@' in a 1,000-object request made Marketo refuse the
    request (4000802) and the target split down to it: dozens of requests (and their verify
    read-backs) per bad record. Caught locally, the good ones go in one request."""
    config = target_config(
        shared_sandbox, tmp_path, streams={"people": {"method": "ingest_persons"}}
    )
    messages = [schema("people", LEAD_SCHEMA)]
    n = 300
    for i in range(n):
        email = f"noat{i}.example" if i % 50 == 7 else f"noat{i}@ingest.example"
        messages.append(record("people", {"email": email, "firstName": f"N{i}"}))
    messages.append(state({"people": n}))
    run = run_target(config, messages)
    summary = run.summary("people")
    assert summary["rejected"] == n // 50
    assert {r["reason"] for r in run.rejects} == {"type"}
    assert summary["applied"] == n - n // 50
    assert summary["requests"] == 1
