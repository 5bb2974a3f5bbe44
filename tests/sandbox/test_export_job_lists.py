"""Get Export Lead / Activity / Program Member Jobs: injected jobs, the caller's only, the quota."""

from __future__ import annotations

import datetime as dt

import pytest
from marketo_sandbox.admin_client import AdminError
from test_bulk_support import EXPORT, Api, at_central_noon, fresh

LISTS = {
    "leads": "/bulk/v1/leads/export.json",
    "activities": "/bulk/v1/activities/export.json",
    "program_members": f"{EXPORT}.json",
}


def _ago(sb, seconds: float) -> str:
    now = dt.datetime.fromisoformat(sb.admin.now().replace("Z", "+00:00"))
    return (now - dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_each_list_shows_its_injected_jobs_of_the_last_7_days(fast_sandbox):
    sb = fresh(fast_sandbox)
    api = Api(sb)
    for path in LISTS.values():
        assert api.ok("get", path) == []
    sb.admin.inject_export_job("leads", 1000, numberOfRecords=10)
    sb.admin.inject_export_job("activities", 2000, finishedAt=_ago(sb, 3600))
    sb.admin.inject_export_job("activities", 5, status="Failed")
    sb.admin.inject_export_job("activities", 9, finishedAt=_ago(sb, 8 * 86400))  # too old
    sb.admin.inject_export_job("program_members", 3000)
    sb.admin.inject_export_job("leads", 4000, apiUser="someone-else")  # not the caller's
    leads = api.ok("get", LISTS["leads"])
    assert [(j["status"], j["fileSize"], j["numberOfRecords"]) for j in leads] == [
        ("Completed", 1000, 10)
    ]
    assert {"finishedAt", "createdAt", "exportId", "format"} <= set(leads[0])
    activities = api.ok("get", LISTS["activities"])
    assert sorted(j["status"] for j in activities) == ["Completed", "Failed"]
    assert api.ok("get", LISTS["activities"], params={"status": "Completed"})[0]["fileSize"] == 2000
    assert [j["fileSize"] for j in api.ok("get", LISTS["program_members"])] == [3000]
    assert len(sb.admin.dump("injected_export_jobs")) == 6


def test_injected_jobs_count_against_the_shared_daily_quota(fast_sandbox):
    sb = at_central_noon(fresh(fast_sandbox, export_daily_quota_mb=1))
    api = Api(sb)
    export_id = api.create_export(["leadId"], {"programId": 1001})
    sb.admin.inject_export_job("activities", 1024 * 1024)
    assert api.error("post", f"{EXPORT}/{export_id}/enqueue.json") == (
        "1029",
        "Export daily quota exceeded",
    )


def test_inject_validates_its_job(fast_sandbox):
    sb = fresh(fast_sandbox)
    with pytest.raises(AdminError, match="type must be"):
        sb.admin.inject_export_job("opportunities", 10)
    with pytest.raises(AdminError, match="fileSize"):
        sb.admin.inject_export_job("leads", -1)
