"""Bulk Lead Import and Bulk Program Member Import in the sandbox."""

from __future__ import annotations

import sqlite3
import time

import pytest
from marketo_sandbox.storage import LEAD
from sandbox_helpers import leads_by_email
from test_bulk_support import Api, fresh, parse

LEADS = "/bulk/v1/leads.json"
PM_IMPORT = "/bulk/v1/program/members/import"


def import_leads(api: Api, text: str, **params) -> dict:
    """Submit with parameters in the query string; return the final status."""
    params.setdefault("format", "csv")
    batch = api.ok("post", LEADS, params=params, files={"file": ("leads.csv", text)})[0]
    assert batch["status"] == "Queued"
    return api.wait_import(f"/bulk/v1/leads/batch/{batch['batchId']}.json")


def test_lead_import_create_or_update_failures_and_warnings(api, fast_sandbox):
    existing = fast_sandbox.admin.dump("leads")[0]
    text = (
        "email,firstName,numberOfEmployees,shoeSize\n"
        "new.one@example.com,First,5,\n"
        f"{existing['email']},Renamed,7,\n"
        ",NoEmail,3,\n"
        "bad.number@example.com,Bob,lots,\n"
        "new.one@example.com,Last,6,44\n"
    )
    job = import_leads(api, text)
    assert job["status"] == "Complete"
    assert (job["numOfLeadsProcessed"], job["numOfRowsFailed"], job["numOfRowsWithWarning"]) == (
        3,
        2,
        1,
    )
    assert "2 failed" in job["message"]
    leads = leads_by_email(fast_sandbox)
    assert leads["new.one@example.com"]["firstName"] == "Last"  # duplicate in file: last wins
    assert leads["new.one@example.com"]["numberOfEmployees"] == 6
    assert leads[existing["email"].lower()]["firstName"] == "Renamed"
    assert leads[existing["email"].lower()]["id"] == existing["id"]
    assert "bad.number@example.com" not in leads
    batch = job["batchId"]
    failures = parse(api.get(f"/bulk/v1/leads/batch/{batch}/failures.json").content)
    assert failures[0] == [
        "email",
        "firstName",
        "numberOfEmployees",
        "shoeSize",
        "Import Failure Reason",
    ]
    assert [row[:4] for row in failures[1:]] == [
        ["", "NoEmail", "3", ""],
        ["bad.number@example.com", "Bob", "lots", ""],
    ]
    assert "lookup field 'email'" in failures[1][4]
    assert "numberOfEmployees" in failures[2][4]
    warnings = parse(api.get(f"/bulk/v1/leads/batch/{batch}/warnings.json").content)
    assert warnings[0][-1] == "Import Warning Reason"
    assert warnings[1][:4] == ["new.one@example.com", "Last", "6", "44"]
    assert "shoeSize" in warnings[1][4]


def test_lead_import_params_as_form_fields_and_token_as_form_field(api, fast_sandbox):
    text = "email;firstName\nform.field@example.com;Formy\n"
    reply = api.http.post(
        api.base + LEADS,
        data={"format": "ssv", "lookupField": "email", "access_token": api.token},
        files={"file": ("leads.ssv", text)},
        timeout=30,
    )
    batch = reply.json()["result"][0]["batchId"]
    job = api.wait_import(f"/bulk/v1/leads/batch/{batch}.json")
    assert job["numOfLeadsProcessed"] == 1
    assert leads_by_email(fast_sandbox)["form.field@example.com"]["firstName"] == "Formy"
    calls = [c for c in fast_sandbox.admin.dump("calls") if c["path"] == LEADS]
    assert all(api.token not in (c["query"] or "") for c in calls)


def test_lead_import_lookup_by_id_and_tsv(api, fast_sandbox):
    lead = fast_sandbox.admin.dump("leads")[5]
    text = f"id\tcity\n{lead['id']}\tReykjavík\n999999999\tNowhere\n"
    job = import_leads(api, text, format="tsv", lookupField="id")
    assert (job["numOfLeadsProcessed"], job["numOfRowsFailed"]) == (1, 1)
    assert leads_by_email(fast_sandbox)[lead["email"].lower()]["city"] == "Reykjavík"
    failures = parse(api.get(f"/bulk/v1/leads/batch/{job['batchId']}/failures.json").content, "TSV")
    assert failures[1][:2] == ["999999999", "Nowhere"]


def test_lead_import_refusals(api):
    assert api.error("post", LEADS, files={"file": ("x.csv", "email\na@b.co\n")})[0] == "1003"
    bad_lookup = {"format": "csv", "lookupField": "shoeSize"}
    files_ = {"file": ("x.csv", "email\na@b.co\n")}
    assert api.error("post", LEADS, params=bad_lookup, files=files_)[0] == "1006"
    assert api.error("post", LEADS, params={"format": "csv"}, data={"x": "1"})[0] in {"1003", "612"}
    assert api.error("post", LEADS, params={"format": "csv"}, json={"a": 1})[0] == "612"
    missing = api.error("get", "/bulk/v1/leads/batch/987654.json")
    assert missing[0] == "1003"


@pytest.mark.parametrize("lookup", ["firstName", "lastName", "city", "createdAt"])
def test_lead_import_lookup_field_not_supported_1011(api, lookup):
    """error-codes.md 1011: a lookup field Marketo does not dedupe on (ex: firstName, lastName)."""
    files_ = {"file": ("x.csv", f"email,{lookup}\na@b.co,x\n")}
    code, message = api.error(
        "post", LEADS, params={"format": "csv", "lookupField": lookup}, files=files_
    )
    assert (code, lookup in message) == ("1011", True)


def test_lead_import_lookup_on_a_custom_string_field(api, fast_sandbox):
    fields = fast_sandbox.admin.dump("fields")
    custom = next(
        f["name"]
        for f in fields
        if f["object"] == LEAD and f["isCustom"] and f["dataType"] == "string"
    )
    job = import_leads(api, f"email,{custom}\ncustom.lookup@example.com,K-1\n", lookupField=custom)
    assert job["status"] == "Complete"


def test_lead_import_list_and_partition_must_exist(api, fast_sandbox):
    text = "email\nlisted@example.com\n"
    files_ = {"file": ("x.csv", text)}
    code, _ = api.error("post", LEADS, params={"format": "csv", "listId": "77"}, files=files_)
    assert code == "1013"
    code, _ = api.error(
        "post", LEADS, params={"format": "csv", "partitionName": "EMEA"}, files=files_
    )
    assert code == "1003"
    assert import_leads(api, text, partitionName="Default")["status"] == "Complete"
    fast_sandbox.admin.set_options(static_lists=[77], lead_partitions=["Default", "EMEA"])
    try:
        assert import_leads(api, text, listId="77", partitionName="EMEA")["status"] == "Complete"
    finally:
        fast_sandbox.admin.set_options(static_lists=None, lead_partitions=None)


@pytest.mark.parametrize("extra", [1, 2 * 1024 * 1024])
def test_import_file_over_10_mb_refused(api, fast_sandbox, extra):
    """bulk-import.md "Limits": 10 MB, i.e. more than 10,000,000 bytes is refused."""
    body = "x" * (10_000_000 - len("email\n") + extra)
    before = len(fast_sandbox.admin.dump("import_jobs"))
    reply = api.post(LEADS, params={"format": "csv"}, files={"file": ("big.csv", "email\n" + body)})
    assert reply.status_code == 413
    assert reply.json()["success"] is False
    assert len(fast_sandbox.admin.dump("import_jobs")) == before


def test_import_without_lookup_column_fails_the_job(api):
    job = import_leads(api, "firstName\nNobody\n")
    assert job["status"] == "Failed"
    assert "email" in job["message"]


def pm_import(api: Api, program_id: int, text: str, status: str, fmt: str = "csv") -> dict:
    params = {"format": fmt, "programMemberStatus": status}
    path = f"/bulk/v1/program/{program_id}/members/import.json"
    batch = api.ok("post", path, params=params, files={"file": ("m.csv", text)})[0]
    return api.wait_import(f"{PM_IMPORT}/{batch['batchId']}/status.json")


def test_program_member_import(api, fast_sandbox):
    # An existing member not yet at the imported status (the demo's statuses are random).
    member = next(
        m for m in fast_sandbox.admin.dump("program_members", 1002) if m["statusName"] == "Member"
    )
    lead = next(x for x in fast_sandbox.admin.dump("leads") if x["id"] == member["leadId"])
    pm_fields = api.ok("get", "/rest/v1/programs/members/describe.json")[0]["fields"]
    typed = "sessionsAttended"
    assert any(f["name"] == typed and f["dataType"] == "integer" for f in pm_fields)
    text = (
        f"email,firstName,registrationCode,{typed},favouriteColour\n"
        f"pm.new@example.com,Newbie,REG-1,3,blue\n"
        f"{lead['email']},,REG-2,,\n"
        f",Nobody,REG-3,,\n"
        f"pm.bad@example.com,Bad,REG-4,not-a-number,\n"
    )
    job = pm_import(api, 1002, text, "influenced")
    assert job["status"] == "Complete"
    assert (job["numOfLeadsProcessed"], job["numOfRowsFailed"]) == (2, 2)
    assert job["numOfRowsWithWarning"] == 1
    members = {m["leadId"]: m for m in fast_sandbox.admin.dump("program_members", 1002)}
    new_lead = leads_by_email(fast_sandbox)["pm.new@example.com"]
    assert new_lead["firstName"] == "Newbie"
    assert members[new_lead["id"]]["statusName"] == "Influenced"
    assert members[new_lead["id"]]["registrationCode"] == "REG-1"
    assert members[new_lead["id"]][typed] == 3
    assert members[lead["id"]]["registrationCode"] == "REG-2"
    assert members[lead["id"]]["statusName"] == "Influenced"
    assert "pm.bad@example.com" not in leads_by_email(fast_sandbox)
    failures = parse(api.get(f"{PM_IMPORT}/{job['batchId']}/failures.json").content)
    assert failures[0][-1] == "Import Failure Reason"
    assert [row[0] for row in failures[1:]] == ["", "pm.bad@example.com"]
    assert "email" in failures[1][-1]
    assert typed in failures[2][-1]
    warnings = parse(api.get(f"{PM_IMPORT}/{job['batchId']}/warnings.json").content)
    assert warnings[1][0] == "pm.new@example.com"
    assert "favouriteColour" in warnings[1][-1]
    # Importing again with an earlier status: imported, with a warning that nothing moved.
    again = pm_import(api, 1002, "email\npm.new@example.com\n", "Member")
    assert (again["numOfLeadsProcessed"], again["numOfRowsWithWarning"]) == (1, 1)
    members = {m["leadId"]: m for m in fast_sandbox.admin.dump("program_members", 1002)}
    assert members[new_lead["id"]]["statusName"] == "Influenced"


def test_program_member_import_invalid_email_is_a_warning(api, fast_sandbox):
    """The page's "Warnings" example: the row is imported, with "Invalid email address"."""
    text = (
        "firstName,lastName,email,title,company,leadScore\n"
        "Aerys,Targaryen,INVALID_EMAIL,Targaryen,House Targaryen,0\n"
    )
    job = pm_import(api, 1003, text, "Registered")
    assert job["status"] == "Complete"
    counts = (job["numOfLeadsProcessed"], job["numOfRowsFailed"], job["numOfRowsWithWarning"])
    assert counts == (1, 0, 1)
    warnings = parse(api.get(f"{PM_IMPORT}/{job['batchId']}/warnings.json").content)
    assert warnings == [
        [
            "firstName",
            "lastName",
            "email",
            "title",
            "company",
            "leadScore",
            "Import Warning Reason",
        ],
        [
            "Aerys",
            "Targaryen",
            "INVALID_EMAIL",
            "Targaryen",
            "House Targaryen",
            "0",
            "Invalid email address",
        ],
    ]
    lead = leads_by_email(fast_sandbox)["invalid_email"]
    members = {m["leadId"]: m for m in fast_sandbox.admin.dump("program_members", 1003)}
    assert members[lead["id"]]["statusName"] == "Registered"
    # Lead import keeps its own rule: a malformed lookup email fails the row.
    lead_job = import_leads(api, "email,firstName\nNOT_AN_EMAIL,X\n")
    assert (lead_job["numOfLeadsProcessed"], lead_job["numOfRowsFailed"]) == (0, 1)


def test_program_member_import_refuses_unknown_status_and_program(api):
    files_ = {"file": ("m.csv", "email\na@example.com\n")}
    for status in ("Not in Program", "Bogus Status"):
        params = {"format": "csv", "programMemberStatus": status}
        path = "/bulk/v1/program/1001/members/import.json"
        code, message = api.error("post", path, params=params, files=files_)
        assert code == "1003"
        assert status in message
    params = {"format": "csv", "programMemberStatus": "Member"}
    code, _ = api.error(
        "post", "/bulk/v1/program/424242/members/import.json", params=params, files=files_
    )
    assert code == "1013"


def test_batch_ids_expire_after_7_days(fast_sandbox):
    sb = fresh(fast_sandbox)
    api = Api(sb)
    job = import_leads(api, "email\nseven.days@example.com\n")
    path = f"/bulk/v1/leads/batch/{job['batchId']}.json"
    sb.admin.advance(6 * 86400)
    assert api.ok("get", path)[0]["status"] == "Complete"
    folder = sb.db_path.with_name(sb.db_path.name + ".files") / "imports"
    wait_gone(folder / f"{job['batchId']}.upload")  # dropped once the batch is final
    assert (folder / f"{job['batchId']}.failures").exists()
    sb.admin.advance(86400 + 60)
    code, message = api.error("get", path)
    assert code == "1003"
    assert "expired" in message
    wait_gone(folder / f"{job['batchId']}.failures")


def wait_gone(path, timeout=10.0):
    deadline = time.monotonic() + timeout
    while path.exists():
        assert time.monotonic() < deadline, f"{path.name} was kept"
        time.sleep(0.05)


def test_import_queue_limits_2_importing_10_in_queue(fast_sandbox):
    sb = fresh(fast_sandbox, job_fixed_seconds=10**7)
    api = Api(sb)
    text = "email\nqueue@example.com\n"
    for _ in range(10):
        api.ok("post", LEADS, params={"format": "csv"}, files={"file": ("q.csv", text)})
    assert api.error("post", LEADS, params={"format": "csv"}, files={"file": ("q.csv", text)}) == (
        "1016",
        "Too many imports",
    )
    pm = {"format": "csv", "programMemberStatus": "Registered"}
    path = "/bulk/v1/program/1001/members/import.json"
    assert api.error("post", path, params=pm, files={"file": ("q.csv", text)})[0] == "1016"
    states = [j["status"] for j in sb.admin.dump("import_jobs")]
    assert (states.count("Importing"), states.count("Queued")) == (2, 8)


def test_importing_batch_runs_again_after_a_crash(sandbox_factory):
    sb = sandbox_factory(seed="demo", time_scale=60.0, options={"job_fixed_seconds": 60})
    api = Api(sb)
    text = "email,firstName\ncrash.one@example.com,One\ncrash.two@example.com,Two\n,Nobody\n"
    batch = api.ok("post", LEADS, params={"format": "csv"}, files={"file": ("c.csv", text)})[0]
    deadline = time.monotonic() + 10
    while [j["status"] for j in sb.admin.dump("import_jobs")] != ["Importing"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    sb.kill()
    # As if the server died half-way through the file: nothing recorded as done.
    with sqlite3.connect(sb.db_path) as conn:
        conn.execute(
            "UPDATE bulk_import_jobs SET work_done = 0, rows_processed = NULL, rows_failed = NULL "
            "WHERE id = ?",
            (batch["batchId"],),
        )
    sb.start()
    api = Api(sb)
    job = api.wait_import(f"/bulk/v1/leads/batch/{batch['batchId']}.json")
    assert (job["status"], job["numOfLeadsProcessed"], job["numOfRowsFailed"]) == ("Complete", 2, 1)
    emails = [lead["email"] for lead in sb.admin.dump("leads")]
    assert emails.count("crash.one@example.com") == emails.count("crash.two@example.com") == 1
    failures = parse(api.get(f"/bulk/v1/leads/batch/{batch['batchId']}/failures.json").content)
    assert len(failures) == 2


def test_reset_forgets_jobs_and_frees_the_slots(fast_sandbox):
    sb = fresh(fast_sandbox, job_fixed_seconds=10**7)
    api = Api(sb)
    for _ in range(2):
        api.ok(
            "post", LEADS, params={"format": "csv"}, files={"file": ("r.csv", "email\na@b.co\n")}
        )
    sb.admin.reset()
    assert sb.admin.dump("import_jobs") == []
    api = Api(sb)
    batch = api.ok(
        "post", LEADS, params={"format": "csv"}, files={"file": ("r.csv", "email\na@b.co\n")}
    )[0]
    deadline = time.monotonic() + 10
    while sb.admin.dump("import_jobs")[0]["status"] != "Importing":
        assert time.monotonic() < deadline, "a fresh batch never got a slot after reset"
        time.sleep(0.02)
    assert batch["batchId"] == 1
