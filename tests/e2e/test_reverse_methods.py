"""JSONL input -> target-marketo-ingest -> sandbox, through every write method.

Each case feeds good rows and a few deliberately bad ones to the target process and checks two
things against the sandbox's own dump: everything good is there with the values sent, and the
rejects file lists exactly the bad rows (each with a reason). Counts are compared first, so a run
that writes nothing fails.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from marketo_sandbox.server import SandboxServer

from .support import ROOT, read_jsonl, tail

if TYPE_CHECKING:
    from pathlib import Path

TARGET = ROOT / ".venv" / "bin" / "target-marketo-ingest"
NOW = "2026-01-01T00:00:00Z"


@dataclass
class Case:
    """One write method: routing, input rows, which of them must be rejected, how to check."""

    method: str
    route: dict[str, Any]
    properties: dict[str, Any]
    good: list[dict[str, Any]]
    bad: list[dict[str, Any]]
    key_properties: list[str] = field(default_factory=list)


def _string(nullable: bool = True) -> dict:
    return {"type": ["string", "null"] if nullable else ["string"]}


PERSON_PROPS = {
    "email": _string(),
    "firstName": _string(),
    "lastName": _string(),
    "company": _string(),
    "accountTier": {"type": ["integer", "string", "null"]},
    "isPartner": {"type": ["boolean", "null"]},
}
MEMBER_PROPS = {
    "email": _string(),
    "leadId": {"type": ["integer", "null"]},
    "programId": {"type": ["integer", "null"]},
    "statusName": _string(),
    "myCustomField": _string(),
    "sessionsAttended": {"type": ["integer", "null"]},
}


def persons(prefix: str, count: int) -> list[dict]:
    """New people with unicode, quotes and commas in their values."""
    return [
        {
            "email": f"{prefix}.{i}@example.net",
            "firstName": ["Zoë", "José", "Mary-Jane", "李"][i % 4],
            "lastName": f'O\'Brien "{prefix}" {i}',
            "company": f"Acme, {prefix} #{i}",
            "accountTier": 1 + i % 3,
            "isPartner": i % 2 == 0,
        }
        for i in range(count)
    ]


def bad_persons(prefix: str) -> list[dict]:
    """No email; an integer field given a word; a name longer than the field's 255."""
    return [
        {"firstName": "No", "lastName": "Email", "company": "x", "accountTier": 1},
        {"email": f"{prefix}.gold@example.net", "firstName": "Gold", "accountTier": "gold"},
        {"email": f"{prefix}.long@example.net", "firstName": "L" * 300, "accountTier": 2},
    ]


def _cases() -> dict[str, Case]:
    return {
        "bulk_leads": Case(
            "bulk_leads",
            {"method": "bulk_leads", "lookup_field": "email"},
            PERSON_PROPS,
            persons("bulk", 40),
            [*bad_persons("bulk"), {"email": "not-an-email", "firstName": "Bad"}],
        ),
        "ingest_persons": Case(
            "ingest_persons",
            {"method": "ingest_persons", "dedupe_fields": ["email"]},
            PERSON_PROPS,
            persons("ingest", 40),
            bad_persons("ingest"),
        ),
        "bulk_program_members": Case(
            "bulk_program_members",
            {"method": "bulk_program_members"},
            MEMBER_PROPS,
            [
                {
                    "email": f"pm.bulk.{i}@example.net",
                    "programId": 1001 if i % 2 else 1003,
                    "statusName": "Registered" if i % 3 else "Invited",
                    "myCustomField": f"note, with comma {i}\nand a second line",
                    "sessionsAttended": i % 4,
                }
                for i in range(24)
            ],
            [
                {"email": "pm.bulk.bad1@example.net", "programId": 1001, "statusName": "VIP"},
                {"email": "pm.bulk.bad2@example.net", "programId": 9999, "statusName": "Invited"},
                {"programId": 1003, "statusName": "Invited", "myCustomField": "no email"},
            ],
        ),
        "ingest_program_members": Case(
            "ingest_program_members",
            {"method": "ingest_program_members"},
            MEMBER_PROPS,
            [
                # The channel's last step: Marketo never moves a member backwards.
                {"leadId": lead_id, "programId": 1004, "statusName": "Clicked"}
                for lead_id in range(1500, 1530)
            ],
            [
                {"leadId": 1531, "programId": 1004, "statusName": "Attended"},
                {"leadId": 1532, "programId": 8888, "statusName": "Opened"},
                {"programId": 1004, "statusName": "Opened"},
            ],
        ),
        "rest_program_members": Case(
            "rest_program_members",
            {"method": "rest_program_members"},
            MEMBER_PROPS,
            [
                {"leadId": lead_id, "programId": 1002, "statusName": "Influenced"}
                for lead_id in range(1700, 1720)
            ],
            [
                {"leadId": 1721, "programId": 1002, "statusName": "Registered"},
                {"leadId": 1722, "programId": 7777, "statusName": "Influenced"},
            ],
        ),
        "ingest_companies": Case(
            "ingest_companies",
            {"method": "ingest_companies"},
            {
                "externalCompanyId": _string(),
                "company": _string(),
                "industry": _string(),
                "numberOfEmployees": {"type": ["integer", "string", "null"]},
            },
            [
                {
                    "externalCompanyId": f"EXT-{i:03d}",
                    "company": f'Société {i}, GmbH & "Co"',
                    "industry": ["Software", "Retail", "Public Sector"][i % 3],
                    "numberOfEmployees": 10 * (i + 1),
                }
                for i in range(25)
            ],
            [
                {"company": "No External Id Ltd", "industry": "Software"},
                {"externalCompanyId": "EXT-BAD", "company": "Bad", "numberOfEmployees": "many"},
            ],
        ),
        "ingest_custom_object": Case(
            "ingest_custom_object",
            {
                "method": "ingest_custom_object",
                "custom_object_name": "purchases",
                "dedupe_fields": ["vin"],
            },
            {
                "vin": _string(),
                "email": _string(),
                "make": _string(),
                "model": _string(),
                "year": {"type": ["integer", "string", "null"]},
            },
            [
                {
                    "vin": f"VIN{i:014d}",
                    "email": f"lead{i + 1}@example.com",
                    "make": ["Škoda", "Citroën", "Ford"][i % 3],
                    "model": f'Model {i}, "special"',
                    "year": 2000 + i,
                }
                for i in range(20)
            ],
            [
                {"email": "lead1@example.com", "make": "NoVin", "year": 2020},
                {"vin": "VINBADYEAR", "email": "lead2@example.com", "year": "last year"},
            ],
        ),
    }


CASES = _cases()


@pytest.fixture(scope="module")
def module_sandbox(tmp_path_factory: pytest.TempPathFactory) -> SandboxServer:
    """One demo-seeded sandbox for every method: the cases touch disjoint people and programs."""
    server = SandboxServer(
        tmp_path_factory.mktemp("reverse") / "sandbox.db", seed="demo", time_scale=60.0
    )
    server.start()
    yield server
    server.stop()


def run_target(
    sandbox: SandboxServer,
    tmp_path: Path,
    *,
    stream: str,
    route: dict,
    properties: dict,
    records: list[dict],
    key_properties: list[str] | None = None,
) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
    """Feed SCHEMA, RECORDs and a STATE to the target process; return it and its rejects."""
    rejects = tmp_path / "rejects.jsonl"
    config = {
        **sandbox.config,
        "rejects_path": str(rejects),
        "streams": {stream: route},
        "poll_interval_seconds": 0.2,
    }
    config_path = tmp_path / "target.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    messages = [
        {
            "type": "SCHEMA",
            "stream": stream,
            "schema": {"type": "object", "properties": properties},
            "key_properties": key_properties or [],
        },
        *({"type": "RECORD", "stream": stream, "record": r} for r in records),
        {"type": "STATE", "value": {"bookmarks": {stream: {"done": len(records)}}}},
    ]
    started = time.monotonic()
    proc = subprocess.run(
        [str(TARGET), "--config", str(config_path)],
        input="".join(json.dumps(m) + "\n" for m in messages),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=tmp_path,
    )
    print(f"target {stream}: exit {proc.returncode} in {time.monotonic() - started:.1f}s")
    assert proc.returncode == 0, tail(proc.stderr, 60)
    # STATE passed on only after every record has an outcome (singer-sdk targets print the
    # state value itself): the input's final STATE must come out last.
    states = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert states, f"no STATE emitted\n{tail(proc.stderr)}"
    assert states[-1]["bookmarks"][stream]["done"] == len(records)
    # Data Ingestion applies a little after the 202: wait before reading what was written
    sandbox.admin.wait_ingestion(60)
    return proc, [r for r in read_jsonl(rejects) if r.get("kind", "reject") == "reject"]


def interleave(good: list[dict], bad: list[dict]) -> list[dict]:
    """Bad rows spread among the good ones, as they would be in a real table."""
    rows = list(good)
    step = max(1, len(good) // (len(bad) + 1))
    for n, row in enumerate(bad, start=1):
        rows.insert(min(len(rows), n * step + n - 1), row)
    return rows


def assert_rejects_are_exactly(rejects: list[dict], records: list[dict], bad: list[dict]) -> None:
    """The rejects file lists each bad row once, by its input line, with a reason and nothing else.

    Input line 1 is the SCHEMA, so record i is on line i + 2. (For Marketo's own failures the
    rejects file carries the row as sent, so the line is what identifies the input record.)
    """
    assert len(rejects) == len(bad), [(r["reason"], r["message"], r["record"]) for r in rejects]
    for entry in rejects:
        assert entry["reason"], entry
        assert entry["message"], entry
    expected = sorted(i + 2 for i, record in enumerate(records) if record in bad)
    assert sorted(entry["line"] for entry in rejects) == expected
    for entry in rejects:
        if entry["reason"] != "marketo_failure":
            assert entry["record"] == records[entry["line"] - 2]


def leads_by_email(sandbox: SandboxServer) -> dict[str, dict]:
    """The sandbox's leads keyed by lower-cased email."""
    return {str(lead["email"]).lower(): lead for lead in sandbox.admin.dump("leads")}


def members_of(sandbox: SandboxServer, program_id: int) -> dict[int, dict]:
    """A program's members keyed by lead id."""
    return {m["leadId"]: m for m in sandbox.admin.dump("program_members", program_id=program_id)}


def check_person_like(sandbox: SandboxServer, case: Case) -> None:
    leads = leads_by_email(sandbox)
    found = [leads.get(row["email"].lower()) for row in case.good]
    assert sum(lead is not None for lead in found) == len(case.good)
    for row, lead in zip(case.good, found, strict=True):
        for key, value in row.items():
            assert lead[key] == value, (key, row, lead)
    for row in case.bad:
        email = row.get("email")
        if email:
            assert email.lower() not in leads, f"rejected row reached Marketo: {row}"


def check_members_by_email(sandbox: SandboxServer, case: Case) -> None:
    leads = leads_by_email(sandbox)
    checked = 0
    for program_id in sorted({row["programId"] for row in case.good}):
        members = members_of(sandbox, program_id)
        for row in (r for r in case.good if r["programId"] == program_id):
            lead = leads[row["email"].lower()]
            member = members[lead["id"]]
            assert member["statusName"] == row["statusName"]
            assert member["myCustomField"] == row["myCustomField"]
            assert member["sessionsAttended"] == row["sessionsAttended"]
            checked += 1
    assert checked == len(case.good)
    for row in case.bad:
        assert str(row.get("email")).lower() not in leads, f"rejected row created a lead: {row}"


def check_members_by_lead(sandbox: SandboxServer, case: Case) -> None:
    checked = 0
    for program_id in sorted({row["programId"] for row in case.good}):
        members = members_of(sandbox, program_id)
        for row in (r for r in case.good if r["programId"] == program_id):
            assert members[row["leadId"]]["statusName"] == row["statusName"], row
            checked += 1
    assert checked == len(case.good)
    for row in case.bad:
        if row.get("leadId") and row.get("programId") in (1002, 1004):
            member = members_of(sandbox, row["programId"]).get(row["leadId"])
            assert member is None or member["statusName"] != row["statusName"], row


def check_companies(sandbox: SandboxServer, case: Case) -> None:
    companies = {c.get("externalCompanyId"): c for c in sandbox.admin.dump("companies")}
    assert len(companies) >= len(case.good)
    for row in case.good:
        company = companies[row["externalCompanyId"]]
        for key, value in row.items():
            assert company[key] == value, (key, row, company)
    assert "EXT-BAD" not in companies


def check_custom_objects(sandbox: SandboxServer, case: Case) -> None:
    objects = {o.get("vin"): o for o in sandbox.admin.dump("custom_objects")}
    assert sum(row["vin"] in objects for row in case.good) == len(case.good)
    for row in case.good:
        for key, value in row.items():
            assert objects[row["vin"]][key] == value, (key, row, objects[row["vin"]])
    assert "VINBADYEAR" not in objects


CHECKS = {
    "bulk_leads": check_person_like,
    "ingest_persons": check_person_like,
    "bulk_program_members": check_members_by_email,
    "ingest_program_members": check_members_by_lead,
    "rest_program_members": check_members_by_lead,
    "ingest_companies": check_companies,
    "ingest_custom_object": check_custom_objects,
}


@pytest.mark.parametrize("method", list(CASES))
def test_method_writes_good_rows_and_rejects_exactly_the_bad(
    module_sandbox: SandboxServer, tmp_path: Path, method: str
) -> None:
    case = CASES[method]
    records = interleave(case.good, case.bad)
    _, rejects = run_target(
        module_sandbox,
        tmp_path,
        stream=f"e2e_{method}",
        route=case.route,
        properties=case.properties,
        records=records,
        key_properties=case.key_properties,
    )
    assert_rejects_are_exactly(rejects, records, case.bad)
    CHECKS[method](module_sandbox, case)


@pytest.mark.parametrize("method", ["ingest_program_members", "bulk_program_members"])
def test_deleted_members_leave_the_program(
    module_sandbox: SandboxServer, tmp_path: Path, method: str
) -> None:
    """Records carrying `_sdc_deleted_at` remove the membership (Data Ingestion / REST delete)."""
    program_id = 1003
    members = members_of(module_sandbox, program_id)
    first = 1 if method == "ingest_program_members" else 2
    lead_ids = sorted(members)[first::4][:12]
    assert len(lead_ids) == 12
    emails = {
        lead["id"]: lead["email"]
        for lead in module_sandbox.admin.dump("leads")
        if lead["id"] in set(lead_ids)
    }
    records = [
        {
            "leadId": lead_id,
            "email": emails[lead_id],
            "programId": program_id,
            "statusName": members[lead_id]["statusName"],
            "_sdc_deleted_at": NOW,
        }
        for lead_id in lead_ids
    ]
    bad = [{"leadId": 5, "email": "lead5@example.com", "programId": 6666, "_sdc_deleted_at": NOW}]
    properties = {**MEMBER_PROPS, "_sdc_deleted_at": {"type": ["string", "null"]}}
    records = interleave(records, bad)
    _, rejects = run_target(
        module_sandbox,
        tmp_path,
        stream=f"e2e_delete_{method}",
        route={"method": method},
        properties=properties,
        records=records,
    )
    assert_rejects_are_exactly(rejects, records, bad)
    after = members_of(module_sandbox, program_id)
    assert len(after) == len(members) - len(lead_ids)
    assert not set(lead_ids) & set(after)
