"""Each bulk job/file fault kind fires where a client would meet it, once, then the API recovers."""

from __future__ import annotations

import pytest
import requests
from test_bulk_support import EXPORT, Api, sha256


@pytest.fixture(scope="module")
def sb(fast_sandbox):
    return fast_sandbox


@pytest.fixture
def api(sb):
    sb.admin.clear_faults()
    return Api(sb)


@pytest.mark.parametrize(
    ("kind", "message"),
    [("too_many_jobs", "Too many jobs in queue"), ("export_quota", "Export daily quota exceeded")],
)
def test_enqueue_faults(api, sb, kind, message):
    sb.admin.inject_fault(f"{EXPORT}/*/enqueue.json", kind)
    export_id = api.create_export(["leadId"], {"programId": 1001})
    assert api.error("post", f"{EXPORT}/{export_id}/enqueue.json") == ("1029", message)
    assert api.enqueue(export_id)["status"] == "Queued"
    assert api.wait_export(export_id)["status"] == "Completed"


def test_export_job_failed(api, sb):
    sb.admin.inject_fault(f"{EXPORT}/*/enqueue.json", "job_failed")
    export_id = api.create_export(["leadId"], {"programId": 1001})
    api.enqueue(export_id)
    job = api.wait_export(export_id)
    assert job["status"] == "Failed"
    assert job["errorMsg"]
    assert api.error("get", f"{EXPORT}/{export_id}/file.json")[0] == "1003"


def test_truncated_file_then_whole(api, sb):
    job, whole = api.run_export(["leadId", "email"], {"programId": 1001})
    sb.admin.inject_fault(f"{EXPORT}/*/file.json", "truncate")
    got = bytearray()

    def download() -> None:
        reply = api.get(f"{EXPORT}/{job['exportId']}/file.json", stream=True)
        assert reply.headers["Content-Length"] == str(job["fileSize"])
        for chunk in reply.iter_content(8192):
            got.extend(chunk)

    with pytest.raises(requests.exceptions.RequestException):
        download()
    assert len(got) < job["fileSize"]
    again = api.get(f"{EXPORT}/{job['exportId']}/file.json")
    assert again.content == whole
    assert sha256(again.content) == job["fileChecksum"]


def test_bad_checksum_once(api, sb):
    export_id = api.create_export(["leadId"], {"programId": 1002})
    api.enqueue(export_id)
    api.wait_export(export_id)
    sb.admin.inject_fault(f"{EXPORT}/*/status.json", "bad_checksum")
    data = api.get(f"{EXPORT}/{export_id}/file.json").content
    lied = api.export_status(export_id)
    truth = api.export_status(export_id)
    assert lied["fileChecksum"] != sha256(data)
    assert truth["fileChecksum"] == sha256(data)


def test_too_many_imports_fault(api, sb):
    sb.admin.inject_fault("/bulk/v1/leads.json", "too_many_imports")
    files_ = {"file": ("l.csv", "email\nfault.import@example.com\n")}
    params = {"format": "csv"}
    assert api.error("post", "/bulk/v1/leads.json", params=params, files=files_) == (
        "1016",
        "Too many imports",
    )
    batch = api.ok("post", "/bulk/v1/leads.json", params=params, files=files_)[0]
    assert api.wait_import(f"/bulk/v1/leads/batch/{batch['batchId']}.json")["status"] == "Complete"


def test_import_job_failed_applies_nothing(api, sb):
    sb.admin.inject_fault("/bulk/v1/program/*/members/import.json", "job_failed")
    files_ = {"file": ("m.csv", "email\nnever.imported@example.com\n")}
    params = {"format": "csv", "programMemberStatus": "Registered"}
    batch = api.ok(
        "post", "/bulk/v1/program/1001/members/import.json", params=params, files=files_
    )[0]
    job = api.wait_import(f"/bulk/v1/program/members/import/{batch['batchId']}/status.json")
    assert job["status"] == "Failed"
    assert job["message"]
    assert all(lead["email"] != "never.imported@example.com" for lead in sb.admin.dump("leads"))
