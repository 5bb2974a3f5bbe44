"""Export and import files stream through the sandbox: its memory does not grow with the file."""

from __future__ import annotations

import hashlib
import threading
import time

import psutil
import pytest
from marketo_sandbox.server import SandboxServer
from test_bulk_support import EXPORT, Api

pytestmark = pytest.mark.slow

MEMBERS = 1_000_000
MB = 1024 * 1024


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A sandbox holding a million program members from the core generator."""
    db = tmp_path_factory.mktemp("bulk-memory") / "sandbox.db"
    options = {"export_rows_per_second": 10**9, "import_rows_per_second": 10**9}
    server = SandboxServer(
        db_path=db,
        seed=None,
        members=MEMBERS,
        time_scale=3600.0,
        options=options,
        start_timeout=240,
    )
    with server as sb:
        yield sb


class PeakRss:
    """Samples the server process's resident memory while the block runs."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.base = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.01)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.base


def test_million_row_export_is_served_without_memory_growing(big):
    api = Api(big)
    fields = ["programId", "leadId", "email", "statusName", "membershipDate", "updatedAt"]
    rss = PeakRss(big.process.pid)
    rss.start()
    export_id = api.create_export(fields, {"programIds": [1001, 1002, 1003, 1004]})
    api.enqueue(export_id)
    job = api.wait_export(export_id, timeout=180)
    assert job["status"] == "Completed"
    digest, size, lines = hashlib.sha256(), 0, 0
    with api.get(f"{EXPORT}/{export_id}/file.json", stream=True) as reply:
        for chunk in reply.iter_content(MB):
            digest.update(chunk)
            size += len(chunk)
            lines += chunk.count(b"\n")
    rss.stop()
    assert job["numberOfRecords"] >= MEMBERS
    assert lines == job["numberOfRecords"] + 1
    assert size == job["fileSize"] > 50 * MB
    assert "sha256:" + digest.hexdigest() == job["fileChecksum"]
    assert rss.growth < job["fileSize"] / 4, (rss.growth, job["fileSize"])


#: bulk-import.md "Limits": 10 MB, taken as 10,000,000 bytes (the largest file accepted).
LIMIT = 10_000_000


def test_10_mb_import_is_accepted_without_memory_growing(big, tmp_path):
    api = Api(big)
    path = tmp_path / "leads.csv"
    filler = "x" * 150
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("email,firstName,lastName,company\n")
        n = 0
        while fh.tell() < LIMIT - 4096:
            fh.write(f"bulk{n}@import.example.com,First{n},{filler},Company {n}\n")
            n += 1
    size = path.stat().st_size
    assert LIMIT - 100_000 < size <= LIMIT
    rss = PeakRss(big.process.pid)
    rss.start()
    with open(path, "rb") as fh:
        reply = api.ok("post", "/bulk/v1/leads.json", params={"format": "csv"}, files={"file": fh})
    job = api.wait_import(f"/bulk/v1/leads/batch/{reply[0]['batchId']}.json", timeout=120)
    rss.stop()
    assert job["status"] == "Complete", job
    assert (job["numOfLeadsProcessed"], job["numOfRowsFailed"]) == (n, 0)
    assert rss.growth < size / 2, (rss.growth, size)
