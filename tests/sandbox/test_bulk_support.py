"""Helpers the bulk and ingestion sandbox tests share, plus unit tests of the file helpers."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import time
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from marketo_sandbox.bulk import files
from sandbox_helpers import error as envelope_error

EXPORT = "/bulk/v1/program/members/export"


class Api:
    """A bare HTTP client of the sandbox for one API user (Bearer header)."""

    def __init__(self, sb: Any, client_id: str | None = None, secret: str | None = None) -> None:
        self.sb = sb
        self.base = sb.base_url
        self.http = requests.Session()
        reply = self.http.get(
            f"{self.base}/identity/oauth/token",
            params={
                "grant_type": "client_credentials",
                "client_id": client_id or sb.client_id,
                "client_secret": secret or sb.client_secret,
            },
            timeout=30,
        )
        reply.raise_for_status()
        self.token = reply.json()["access_token"]
        self.auth = {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str, **kw: Any) -> requests.Response:
        headers = {**self.auth, **kw.pop("headers", {})}
        return self.http.get(self.base + path, headers=headers, timeout=60, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        headers = {**self.auth, **kw.pop("headers", {})}
        return self.http.post(self.base + path, headers=headers, timeout=60, **kw)

    def ok(self, method: str, path: str, **kw: Any) -> list[dict]:
        """The `result` of a successful envelope (fails the test otherwise)."""
        reply = getattr(self, method)(path, **kw)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["success"] is True, body
        return body.get("result", [])

    def error(self, method: str, path: str, **kw: Any) -> tuple[str, str]:
        """(code, message) of a failed envelope."""
        return envelope_error(getattr(self, method)(path, **kw))

    # exports

    def create_export(self, fields: list[str], flt: dict, **extra: Any) -> str:
        body = {"fields": fields, "filter": flt, **extra}
        return self.ok("post", f"{EXPORT}/create.json", json=body)[0]["exportId"]

    def enqueue(self, export_id: str) -> dict:
        return self.ok("post", f"{EXPORT}/{export_id}/enqueue.json")[0]

    def export_status(self, export_id: str) -> dict:
        return self.ok("get", f"{EXPORT}/{export_id}/status.json")[0]

    def wait_export(self, export_id: str, timeout: float = 30.0, until: tuple = ()) -> dict:
        """Poll until the job is final (or one of `until`)."""
        final = ("Completed", "Failed", "Cancelled", *until)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.export_status(export_id)
            if job["status"] in final:
                return job
            time.sleep(0.02)
        raise AssertionError(f"export {export_id} still {job['status']} after {timeout} s")

    def run_export(self, fields: list[str], flt: dict, **extra: Any) -> tuple[dict, bytes]:
        export_id = self.create_export(fields, flt, **extra)
        self.enqueue(export_id)
        job = self.wait_export(export_id)
        assert job["status"] == "Completed", job
        reply = self.get(f"{EXPORT}/{export_id}/file.json")
        assert reply.status_code == 200, reply.text
        return job, reply.content

    # imports

    def wait_import(self, path: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.ok("get", path)[0]
            if job["status"] in ("Complete", "Failed"):
                return job
            time.sleep(0.02)
        raise AssertionError(f"import {path} not finished after {timeout} s")


#: Bulk options a test may change, with the values that restore the defaults.
DEFAULT_OPTIONS = {
    "job_fixed_seconds": None,
    "export_rows_per_second": None,
    "import_rows_per_second": None,
    "export_daily_quota_mb": None,
    "updated_at_filter_supported": True,
}


def fresh(sb: Any, **options: Any) -> Any:
    """A module's shared sandbox emptied, re-seeded, and given `options` (the rest default).

    Cheaper than a new server process for tests that only need a clean queue and options.
    """
    sb.admin.reset()
    sb.admin.set_options(**{**DEFAULT_OPTIONS, **options})
    return sb


def at_central_noon(sb: Any) -> Any:
    """Move sandbox time to the next 12:00 US Central, the middle of the export quota's day.

    A test that spends quota and expects it still spent must not cross midnight Central: at
    the fast time scale a test started near midnight did (CI, 06:01 UTC sandbox time).
    """
    now = dt.datetime.fromisoformat(sb.admin.now().replace("Z", "+00:00"))
    local = now.astimezone(ZoneInfo("America/Chicago"))
    noon = local.replace(hour=12, minute=0, second=0, microsecond=0)
    if noon <= local:
        noon += dt.timedelta(days=1)
    sb.admin.advance((noon - local).total_seconds())
    return sb


def parse(data: bytes, fmt: str = "CSV") -> list[list[str]]:
    text = data.decode("utf-8")
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=files.DELIMITERS[fmt]))


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def demo_fields(api: Api) -> tuple[list[str], list[str]]:
    """(program member field names, lead field names) from the describes."""
    pm = api.ok("get", "/rest/v1/programs/members/describe.json")[0]["fields"]
    lead = api.ok("get", "/rest/v1/leads/describe2.json")[0]["fields"]
    return [f["name"] for f in pm], [f["name"] for f in lead]


# ---------------------------------------------------------------------------- unit tests


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "null"), ("", "null"), (True, "true"), (False, "false"), (3.0, "3"), (2.5, "2.5")],
)
def test_format_value(value, text):
    assert files.format_value(value) == text


def test_parse_range():
    assert files.parse_range(None, 100) is None
    assert files.parse_range("bytes=0-9", 100) == (0, 9)
    assert files.parse_range("bytes=90-", 100) == (90, 99)
    assert files.parse_range("bytes=90-500", 100) == (90, 99)
    assert files.parse_range("bytes=-10", 100) == (90, 99)
    assert files.parse_range("bytes=0-1,5-6", 100) is None  # multi-range: whole file
    with pytest.raises(files.RangeNotSatisfiableError):
        files.parse_range("bytes=100-", 100)
    with pytest.raises(files.RangeNotSatisfiableError):
        files.parse_range("bytes=9-3", 100)


def test_write_delimited_quotes_and_hashes(tmp_path):
    rows = [["a,b", 'say "hi"', "line\nbreak", None], ["ü", 1, True, ""]]
    written = files.write_delimited(tmp_path / "x.csv", "CSV", ["h1", "h2", "h3", "h4"], rows)
    data = (tmp_path / "x.csv").read_bytes()
    assert written.rows == 2
    assert written.size == len(data)
    assert written.checksum == sha256(data)
    assert parse(data) == [
        ["h1", "h2", "h3", "h4"],
        ["a,b", 'say "hi"', "line\nbreak", "null"],
        ["ü", "1", "true", "null"],
    ]
    assert not (tmp_path / "x.csv.part").exists()
