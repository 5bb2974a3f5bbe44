"""Bulk Program Member Extract in the sandbox: lifecycle, file contents, Range, rhythm, limits."""

from __future__ import annotations

import datetime as dt
import sqlite3
import time

import pytest
from marketo_sandbox.bulk import files
from sandbox_helpers import FAST
from test_bulk_support import EXPORT, Api, at_central_noon, demo_fields, fresh, parse, sha256


def _expected(rows: list[dict], fields: list[str]) -> list[list[str]]:
    return [[files.format_value(r.get(f)) for f in fields] for r in rows]


@pytest.mark.parametrize("fmt", ["CSV", "TSV", "SSV"])
def test_export_file_equals_store(api, fast_sandbox, fmt):
    pm_fields, lead_fields = demo_fields(api)
    custom = [f for f in pm_fields if f != "program"]
    fields = [*custom, "email", "firstName", "lastName"]
    headers = {"email": "Email Address", "statusName": "Status"}
    job, data = api.run_export(fields, {"programId": 1001}, format=fmt, columnHeaderNames=headers)
    rows = parse(data, fmt)
    assert rows[0] == [headers.get(f, f) for f in fields]
    members = fast_sandbox.admin.dump("program_members", 1001)
    leads = {lead["id"]: lead for lead in fast_sandbox.admin.dump("leads")}
    for member in members:
        member.update({k: leads[member["leadId"]][k] for k in ("email", "firstName", "lastName")})
    key = fields.index("leadId")
    assert sorted(rows[1:], key=lambda r: int(r[key])) == sorted(
        _expected(members, fields), key=lambda r: int(r[key])
    )
    assert job["numberOfRecords"] == len(members) == len(rows) - 1
    assert job["fileSize"] == len(data)
    assert job["fileChecksum"] == sha256(data)
    assert "null" in {cell for row in rows[1:] for cell in row}  # empty values written as null
    assert set(lead_fields) >= {"email", "firstName"}


def test_export_program_ids_and_updated_at_filter(api, fast_sandbox):
    touched = [m["leadId"] for m in fast_sandbox.admin.dump("program_members", 1002)[:3]]
    before = fast_sandbox.admin.now()
    time.sleep(0.05)
    fast_sandbox.admin.touch_members(1002, touched, registrationCode="TOUCHED")
    start = dt.datetime.fromisoformat(before.replace("Z", "+00:00"))
    window = {"startAt": before, "endAt": (start + dt.timedelta(days=30)).isoformat()}
    flt = {"programIds": [1001, 1002], "updatedAt": window}
    _, data = api.run_export(["leadId", "registrationCode"], flt)
    rows = parse(data)
    assert rows[0] == ["programId", "leadId", "registrationCode"]  # added first by programIds
    rows = rows[1:]
    assert sorted(int(r[1]) for r in rows) == sorted(touched)
    assert {r[0] for r in rows} == {"1002"}
    assert {r[2] for r in rows} == {"TOUCHED"}


def test_range_requests_and_checksum(api):
    job, whole = api.run_export(["leadId", "email", "statusName"], {"programId": 1003})
    export_id = job["exportId"]
    size = job["fileSize"]
    first = api.get(f"{EXPORT}/{export_id}/file.json", headers={"Range": "bytes=0-99"})
    assert first.status_code == 206
    assert first.headers["Content-Range"] == f"bytes 0-99/{size}"
    assert first.content == whole[:100]
    rest = api.get(f"{EXPORT}/{export_id}/file.json", headers={"Range": "bytes=100-"})
    assert rest.status_code == 206
    assert rest.headers["Content-Range"] == f"bytes 100-{size - 1}/{size}"
    assert sha256(first.content + rest.content) == job["fileChecksum"]
    beyond = api.get(f"{EXPORT}/{export_id}/file.json", headers={"Range": f"bytes={size}-"})
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{size}"


def test_create_validation(api, fast_sandbox):
    create = f"{EXPORT}/create.json"
    too_many = {"programIds": list(range(1001, 1012))}
    assert api.error("post", create, json={"fields": ["leadId"], "filter": too_many})[0] == "1003"
    assert (
        api.error("post", create, json={"fields": ["nope"], "filter": {"programId": 1001}})[0]
        == "1003"
    )
    assert api.error("post", create, json={"fields": ["leadId"], "filter": {}})[0] == "1003"
    bad_format = {"fields": ["leadId"], "filter": {"programId": 1001}, "format": "XML"}
    assert api.error("post", create, json=bad_format)[0] == "1003"
    wide = {"startAt": "2024-01-01T00:00:00Z", "endAt": "2024-02-15T00:00:00Z"}
    body = {"fields": ["leadId"], "filter": {"programId": 1001, "updatedAt": wide}}
    code, message = api.error("post", create, json=body)
    assert code == "1003"
    assert "31 days" in message
    assert api.error("post", create, data=b"{not json")[0] == "609"


def test_updated_at_filter_unsupported_option(fast_sandbox):
    sb = fresh(fast_sandbox)
    api = Api(sb)
    window = {"startAt": "2024-01-01T00:00:00Z", "endAt": "2024-01-15T00:00:00Z"}
    body = {"fields": ["leadId"], "filter": {"programId": 1001, "updatedAt": window}}
    assert api.ok("post", f"{EXPORT}/create.json", json=body)[0]["status"] == "Created"
    sb.admin.set_options(updated_at_filter_supported=False)
    assert api.error("post", f"{EXPORT}/create.json", json=body) == (
        "1035",
        "Unsupported filter type for target subscription",
    )
    body["filter"].pop("updatedAt")
    assert api.ok("post", f"{EXPORT}/create.json", json=body)[0]["status"] == "Created"


def test_status_only_for_creator(sandbox_factory):
    sb = sandbox_factory(seed="demo", time_scale=FAST, api_users=[("other-user", "other-secret")])
    owner, other = Api(sb), Api(sb, "other-user", "other-secret")
    export_id = owner.create_export(["leadId"], {"programId": 1001})
    for method, action in (("get", "status"), ("post", "enqueue"), ("post", "cancel")):
        code, _ = other.error(method, f"{EXPORT}/{export_id}/{action}.json")
        assert code == "1003"
    owner.enqueue(export_id)
    assert owner.wait_export(export_id)["status"] == "Completed"
    assert other.error("get", f"{EXPORT}/{export_id}/file.json")[0] == "1003"
    assert owner.get(f"{EXPORT}/{export_id}/file.json").status_code == 200


#: The sandbox's own choices for the status rhythm (the default draw), pinned where a test times it.
QUEUED_PHASE = {"export_status_phase": "queued", "export_status_start_lag_refreshes": 0}


def test_status_changes_at_most_once_per_60_sandbox_seconds(sandbox_factory):
    sb = sandbox_factory(seed="demo", time_scale=60.0, options=QUEUED_PHASE)
    api = Api(sb)
    export_id = api.create_export(["leadId"], {"programId": 1004})
    queued_at = api.enqueue(export_id)["queuedAt"]
    seen = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        job = api.export_status(export_id)
        real = next(j for j in sb.admin.dump("export_jobs") if j["exportId"] == export_id)
        seen.append((sb.admin.now(), job["status"], real["status"]))
        if job["status"] == "Completed":
            break
        time.sleep(0.1)
    # The job really finished long before its creator may see it.
    assert any(shown == "Queued" and real == "Completed" for _, shown, real in seen)
    first_done = next(now for now, shown, _ in seen if shown == "Completed")
    elapsed = (_ts(first_done) - _ts(queued_at)).total_seconds()
    assert 60 <= elapsed < 120
    assert job["finishedAt"] <= first_done


def _ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_queue_limits_2_processing_10_queued_including_processing(fast_sandbox):
    """bulk-extract.md: "Maximum queued export jobs, including jobs that are currently
    exporting: 10"; 2 of them processing."""
    sb = fresh(fast_sandbox, job_fixed_seconds=10**7)
    api = Api(sb)
    ids = [api.create_export(["leadId"], {"programId": 1001}) for _ in range(11)]
    for export_id in ids[:10]:
        api.enqueue(export_id)
    assert api.error("post", f"{EXPORT}/{ids[10]}/enqueue.json") == (
        "1029",
        "Too many jobs in queue",
    )
    states = _real_states(sb)
    assert (states.count("Processing"), states.count("Queued")) == (2, 8)
    running = [j["exportId"] for j in sb.admin.dump("export_jobs") if j["status"] == "Processing"]
    api.ok("post", f"{EXPORT}/{running[0]}/cancel.json")
    _wait(lambda: _real_states(sb).count("Processing") == 2)
    assert _real_states(sb).count("Queued") == 7
    assert api.enqueue(ids[10])["status"] == "Queued"
    listed = api.ok("get", f"{EXPORT}.json", params={"status": "Queued,Processing"})
    assert len(listed) == 10
    assert {j["status"] for j in listed} <= {"Queued", "Processing"}
    page = api.get(f"{EXPORT}.json", params={"status": "Cancelled", "batchSize": 1}).json()
    assert [j["exportId"] for j in page["result"]] == [running[0]]
    assert "nextPageToken" not in page
    page = api.get(f"{EXPORT}.json", params={"batchSize": 5}).json()
    assert (len(page["result"]), page["moreResult"]) == (5, True)
    rest = api.ok("get", f"{EXPORT}.json", params={"nextPageToken": page["nextPageToken"]})
    assert len(rest) == 6


def _real_states(sb):
    return [j["status"] for j in sb.admin.dump("export_jobs")]


def _wait(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def test_cancel(fast_sandbox):
    sb = fresh(fast_sandbox, job_fixed_seconds=10**7)
    api = Api(sb)
    export_id = api.create_export(["leadId"], {"programId": 1001})
    api.enqueue(export_id)
    _wait(lambda: _real_states(sb) == ["Processing"])
    assert api.ok("post", f"{EXPORT}/{export_id}/cancel.json")[0]["status"] == "Cancelled"
    assert api.export_status(export_id)["status"] == "Cancelled"
    assert api.error("get", f"{EXPORT}/{export_id}/file.json")[0] == "1003"
    assert api.error("post", f"{EXPORT}/{export_id}/cancel.json")[0] == "1003"
    assert api.error("post", f"{EXPORT}/{export_id}/enqueue.json")[0] == "1003"


def test_daily_quota_and_reset_next_day(fast_sandbox):
    sb = at_central_noon(fresh(fast_sandbox, export_daily_quota_mb=0.01))
    api = Api(sb)
    job, _ = api.run_export(["leadId", "email"], {"programId": 1001})
    assert job["fileSize"] > 0.01 * 1024 * 1024
    second = api.create_export(["leadId"], {"programId": 1002})
    assert api.error("post", f"{EXPORT}/{second}/enqueue.json") == (
        "1029",
        "Export daily quota exceeded",
    )
    sb.admin.advance(86400)
    assert api.enqueue(second)["status"] == "Queued"


def test_files_expire_after_7_days(fast_sandbox):
    sb = fresh(fast_sandbox, export_expired_file_answer="1003")
    api = Api(sb)
    job, _ = api.run_export(["leadId"], {"programId": 1001})
    path = sb.db_path.with_name(sb.db_path.name + ".files") / "exports"
    assert (path / f"{job['exportId']}.csv").is_file()
    sb.admin.advance(6 * 86400)
    assert api.get(f"{EXPORT}/{job['exportId']}/file.json").status_code == 200
    sb.admin.advance(86400 + 120)
    code, message = api.error("get", f"{EXPORT}/{job['exportId']}/file.json")
    assert code == "1003"
    assert "expired" in message
    _wait(lambda: not (path / f"{job['exportId']}.csv").exists())


def test_an_expired_file_can_be_a_plaintext_404(fast_sandbox):
    """The assumed other answer: the file endpoint's plaintext 404 (bulk-extract.md)."""
    sb = fresh(fast_sandbox, export_expired_file_answer="404")
    api = Api(sb)
    job, _ = api.run_export(["leadId"], {"programIds": [1001]})
    sb.admin.advance(6 * 86400)
    again = api.get(f"{EXPORT}/{job['exportId']}/file.json")  # downloaded again within 7 days
    assert again.status_code == 200
    assert again.content.startswith(b"programId,leadId")
    sb.admin.advance(86400 + 120)
    reply = api.get(f"{EXPORT}/{job['exportId']}/file.json")
    assert reply.status_code == 404
    assert reply.headers["content-type"].startswith("text/plain")


def test_processing_time_follows_rows_per_second(fast_sandbox):
    sb = fresh(fast_sandbox, export_rows_per_second=10, export_duration_jitter=0.0)
    api = Api(sb)
    job, _ = api.run_export(["leadId"], {"programId": 1001})
    took = (_ts(job["finishedAt"]) - _ts(job["startedAt"])).total_seconds()
    assert took >= job["numberOfRecords"] / 10 - 1


def test_processing_job_completes_after_a_crash(sandbox_factory):
    sb = sandbox_factory(seed="demo", time_scale=60.0, options={"job_fixed_seconds": 60})
    api = Api(sb)
    export_id = api.create_export(["leadId", "email"], {"programId": 1001})
    api.enqueue(export_id)
    _wait(lambda: _real_states(sb) == ["Processing"])
    sb.kill()
    # Make the job look as if the server died while writing its file.
    folder = sb.db_path.with_name(sb.db_path.name + ".files") / "exports"
    for leftover in folder.glob(f"{export_id}*"):
        leftover.unlink()
    with sqlite3.connect(sb.db_path) as conn:
        conn.execute(
            "UPDATE bulk_export_jobs SET work_done = 0, file_path = NULL, file_size = NULL, "
            "file_checksum = NULL WHERE id = ?",
            (export_id,),
        )
    sb.start()
    api = Api(sb)
    job = api.wait_export(export_id, timeout=30)
    assert job["status"] == "Completed"
    data = api.get(f"{EXPORT}/{export_id}/file.json").content
    assert sha256(data) == job["fileChecksum"]
    assert job["numberOfRecords"] == len(sb.admin.dump("program_members", 1001))
    assert (folder / f"{export_id}.csv").is_file()
