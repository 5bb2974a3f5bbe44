"""The wall-clock floors of issue 15: a raw client doing the tap's export jobs, and a bare target.

The raw client replays the very export jobs the tap created (same fields, same filters, same
sandbox), with nothing but `requests`, `csv.reader` and `orjson`: create, enqueue (at most
Marketo's 10 queued), poll at the tap's interval, download, and write each row as a RECORD line
to /dev/null. Its wall clock, start to last row, is what the tap's whole process run (start-up
included) is compared with.
"""

from __future__ import annotations

import csv
import os
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import orjson
import requests

if TYPE_CHECKING:
    from pathlib import Path

EXPORT = "/bulk/v1/program/members/export"
MAX_QUEUED = 10  # Marketo: 10 bulk export jobs queued per subscription


def replayable_jobs(dumped: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Create-call bodies of the jobs a run completed, from the sandbox's `export_jobs` dump."""
    bodies = []
    for job in dumped:
        if job.get("status") != "Completed":
            continue
        body: dict[str, Any] = {
            "format": job.get("format") or "CSV",
            "fields": job["fields"],
            "filter": job["filter"],
        }
        if job.get("headers"):
            body["columnHeaderNames"] = job["headers"]
        bodies.append(body)
    return bodies


class RawExportClient:
    """A bare Marketo client: one session, bearer token, no retries, no checksums, no state."""

    def __init__(self, config: dict[str, Any], poll_s: float, work: Path) -> None:
        self.base = config["base_url"].rstrip("/")
        self.config = config
        self.poll_s = poll_s
        self.work = work
        self.session = requests.Session()
        resp = self.session.post(
            f"{self.base}/identity/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": config["client_id"],
                "client_secret": config["client_secret"],
            },
            timeout=30,
        )
        resp.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        resp = self.session.request(method, f"{self.base}{path}", timeout=60, **kwargs)
        resp.raise_for_status()
        data = resp.json()
        if not data.get("success"):
            raise RuntimeError(f"{path}: {data.get('errors')}")
        return data["result"][0]

    def _start(self, body: dict[str, Any]) -> str:
        export_id = self._call("POST", f"{EXPORT}/create.json", json=body)["exportId"]
        self._call("POST", f"{EXPORT}/{export_id}/enqueue.json")
        return export_id

    def _wait(self, export_id: str) -> None:
        while True:
            status = self._call("GET", f"{EXPORT}/{export_id}/status.json")["status"]
            if status == "Completed":
                return
            if status in {"Failed", "Cancelled"}:
                raise RuntimeError(f"export {export_id} {status}")
            time.sleep(self.poll_s)

    def _rows(self, export_id: str, out: Any) -> int:
        path = self.work / f"raw-{export_id}.csv"
        url = f"{self.base}{EXPORT}/{export_id}/file.json"
        with self.session.get(url, stream=True, timeout=300) as resp, path.open("wb") as f:
            resp.raise_for_status()
            for chunk in resp.iter_content(1 << 20):
                f.write(chunk)
        rows = 0
        dumps, write = orjson.dumps, out.write
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, [])
            for row in reader:
                record = {"type": "RECORD", "stream": "program_members"}
                record["record"] = dict(zip(header, row, strict=False))
                write(dumps(record))
                write(b"\n")
                rows += 1
        path.unlink()
        return rows

    def run(self, bodies: list[dict[str, Any]]) -> dict[str, float]:
        """All jobs, at most MAX_QUEUED waiting at once; files parsed in creation order."""
        t0 = time.perf_counter()
        pending = deque(bodies)
        started: deque[str] = deque()
        rows = 0
        with open(os.devnull, "wb") as out:
            while pending or started:
                while pending and len(started) < MAX_QUEUED:
                    started.append(self._start(pending.popleft()))
                export_id = started.popleft()
                self._wait(export_id)
                rows += self._rows(export_id, out)
        self.session.close()
        return {"rows": rows, "seconds": time.perf_counter() - t0, "jobs": len(bodies)}
