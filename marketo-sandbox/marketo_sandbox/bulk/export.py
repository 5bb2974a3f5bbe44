"""Bulk Program Member Extract: `/bulk/v1/program/members/export/...`.

Jobs go Created → Queued → Processing → Completed / Failed, or Cancelled. The status a caller sees
is a snapshot of the job taken every 60 s of sandbox time, as Marketo "only updates the status
once every 60 seconds"; when the refreshes fall and how late a start shows are assumptions
(`export_status_phase`, `export_status_start_lag_refreshes`). The file can be fetched as soon as
the job has really completed.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import operator
import random
import uuid
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from starlette.responses import Response, StreamingResponse

from marketo_sandbox.bulk import export_history, files
from marketo_sandbox.bulk.common import (
    DAY,
    caller,
    files_dir,
    iso,
    job_duration,
    json_body,
    option,
)
from marketo_sandbox.bulk.export_spec import validate_spec
from marketo_sandbox.clock import parse_datetime
from marketo_sandbox.envelope import MarketoHTTPError, ok
from marketo_sandbox.jobs import Pool, every, fetch_all, fetch_one, next_seq
from marketo_sandbox.state import state_of

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.requests import Request

    from marketo_sandbox.jobs import Scheduler

log = logging.getLogger("marketo_sandbox.bulk")

TABLE = "bulk_export_jobs"
SCHEMA = """
CREATE TABLE IF NOT EXISTS bulk_export_jobs (
    id TEXT PRIMARY KEY,
    seq INTEGER,
    api_user TEXT NOT NULL,
    format TEXT NOT NULL,
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    queued_at REAL,
    started_at REAL,
    finished_at REAL,
    work_done INTEGER NOT NULL DEFAULT 0,
    due_at REAL,
    fail_message TEXT,
    number_of_records INTEGER,
    file_size INTEGER,
    file_checksum TEXT,
    file_path TEXT,
    bad_checksum INTEGER NOT NULL DEFAULT 0,
    expired INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS bulk_export_jobs_status ON bulk_export_jobs (status, seq);
"""
STATUS_RHYTHM_SECONDS = 60.0
POOL = "export"

PATH = "/bulk/v1/program/members/export"


def setup(app: Any, sched: Scheduler) -> None:
    """Register the export pool (shared by every export type the sandbox serves)."""
    out_dir = files_dir(app) / "exports"

    def work(job: dict, should_stop: Callable[[], bool]) -> tuple[dict, int]:
        return _write_file(state_of(app).store, out_dir, job, should_stop)

    def on_cancel(job: dict) -> None:
        _remove_file(job)

    sched.add_pool(
        Pool(
            name=POOL,
            table=TABLE,
            queued="Queued",
            running="Processing",
            done="Completed",
            max_running=lambda: int(option(app, "export_max_processing")),
            work=work,
            duration=job_duration(app, "export_rows_per_second"),
            on_cancel=on_cancel,
            jitter=lambda job: _jitter(option(app, "export_duration_jitter"), job["id"]),
        )
    )
    sched.hooks.append(_expiry_hook(app, sched))


def _jitter(spread: Any, job_id: str) -> float:
    """A job's duration factor in [1 - spread, 1 + spread], the same for the job every time."""
    spread = min(max(float(spread or 0.0), 0.0), 0.9)
    if not spread:
        return 1.0
    rng = random.Random(zlib.crc32(job_id.encode()))  # noqa: S311 - simulated load, not secrets
    return 1.0 + rng.uniform(-spread, spread)


def _write_file(
    store: Any, out_dir: Path, job: dict, should_stop: Callable[[], bool]
) -> tuple[dict, int]:
    """Stream the members from storage straight into the file: never a whole export in memory."""
    spec = orjson.loads(job["spec"])
    fields: list[str] = spec.get("columns") or spec["fields"]
    headers = spec.get("header_row") or [spec["headers"].get(f, f) for f in fields]
    flt = spec["filter"]
    program_ids = flt.get("programIds") or [flt["programId"]]
    updated = flt.get("updatedAt")
    updated_from = updated_to = None
    if updated:
        updated_from = parse_datetime(updated["startAt"])
        updated_to = parse_datetime(updated["endAt"])
    members = store.members.iter(
        program_ids,
        list(dict.fromkeys(fields)),
        updated_from=updated_from,
        updated_to=updated_to,
        status_names=flt.get("statusNames") or (),
        is_exhausted=flt.get("isExhausted"),
        nurture_cadence=flt.get("nurtureCadence"),
    )
    pick = operator.itemgetter(*fields)
    rows = (pick(m) for m in members) if len(fields) > 1 else ((pick(m),) for m in members)
    path = out_dir / f"{job['id']}.{job['format'].lower()}"
    written = files.write_delimited(path, job["format"], headers, rows, should_stop=should_stop)
    if should_stop():
        path.unlink(missing_ok=True)
        return {}, 0
    log.info("export %s wrote %d rows, %d bytes", job["id"], written.rows, written.size)
    return {
        "number_of_records": written.rows,
        "file_size": written.size,
        "file_checksum": written.checksum,
        "file_path": str(path),
    }, written.rows


def _remove_file(job: dict) -> None:
    if job.get("file_path"):
        Path(job["file_path"]).unlink(missing_ok=True)


def _expiry_hook(app: Any, sched: Scheduler) -> Callable[[float], None]:
    """Delete files older than the retention (7 days of sandbox time), checked now and then."""

    def hook(now: float) -> None:
        keep = float(option(app, "export_file_retention_days")) * DAY
        old = fetch_all(
            sched.store.db.conn(),
            "SELECT id, file_path FROM bulk_export_jobs WHERE status = 'Completed' "
            "AND expired = 0 AND finished_at < ?",
            (now - keep,),
        )
        if not old:
            return
        with sched.store.db.tx() as conn:
            for job in old:
                _remove_file(job)
                conn.execute("UPDATE bulk_export_jobs SET expired = 1 WHERE id = ?", (job["id"],))
                log.info("export %s file expired", job["id"])

    return every(60.0, hook)


# ---------------------------------------------------------------------------- views


def refresh_anchor(job: dict, phase: str) -> float:
    """A moment on the job's 60-s status refresh grid (option `export_status_phase`)."""
    queued = job["queued_at"]
    if phase == "clock":
        return 0.0  # whole minutes of the sandbox clock
    if phase == "job":
        return queued + zlib.crc32(job["id"].encode()) % int(STATUS_RHYTHM_SECONDS)
    return queued


def visible(job: dict, now: float, phase: str = "queued", start_lag: int = 0) -> dict:
    """The job as its creator sees it: state snapshots at most once per 60 s of sandbox time.

    The snapshot is the last refresh at or before `now` on the job's grid; a start shows only
    `start_lag` refreshes after the one that saw it (assumed), a finish at the first.
    """
    out: dict[str, Any] = {
        "exportId": job["id"],
        "format": job["format"],
        "status": job["status"],
        "createdAt": iso(job["created_at"]),
    }
    status = job["status"]
    queued = job["queued_at"]
    if status == "Created" or queued is None:
        return out
    if status == "Cancelled":
        out["queuedAt"] = iso(queued)
        return out
    anchor = refresh_anchor(job, phase)
    snap = anchor + STATUS_RHYTHM_SECONDS * math.floor((now - anchor) / STATUS_RHYTHM_SECONDS)
    out["queuedAt"] = iso(queued)
    started, finished = job["started_at"], job["finished_at"]
    if status in ("Completed", "Failed") and finished is not None and finished <= snap:
        out["status"] = status
        out["startedAt"] = iso(started)
        out["finishedAt"] = iso(finished)
        if status == "Completed":
            out["numberOfRecords"] = job["number_of_records"]
            out["fileSize"] = job["file_size"]
            out["fileChecksum"] = job["file_checksum"]
        else:
            out["errorMsg"] = job["fail_message"]
    elif started is not None and started <= snap - start_lag * STATUS_RHYTHM_SECONDS:
        out["status"] = "Processing"
        out["startedAt"] = iso(started)
    else:
        out["status"] = "Queued"
    return out


def shown(request: Request, job: dict, now: float) -> dict:
    """`visible` with the run's assumed refresh phase and start lag."""
    return visible(
        job,
        now,
        str(option(request, "export_status_phase")),
        int(option(request, "export_status_start_lag_refreshes")),
    )


def _load(request: Request, export_id: str, user: str) -> dict:
    """The job, only for the API user who created it (others get "not found", as if absent)."""
    with state_of(request).store.db.tx() as conn:
        job = fetch_one(conn, "SELECT * FROM bulk_export_jobs WHERE id = ?", (export_id,))
    if job is None or job["api_user"] != user:
        raise MarketoHTTPError(1003, f"Export job not found: {export_id}")
    return job


def _pool(request: Request) -> tuple[Scheduler, Pool]:
    sched = state_of(request).scheduler
    return sched, sched.pools[POOL]


def exported_today(sched: Scheduler, now: float) -> int:
    """Bytes of export files completed in the current quota day (US Central, like Marketo)."""
    clock = sched.clock
    today = clock.quota_day(dt.datetime.fromtimestamp(now, dt.timezone.utc))
    with sched.store.db.tx() as conn:
        rows = fetch_all(
            conn,
            "SELECT finished_at, file_size FROM bulk_export_jobs "
            "WHERE status = 'Completed' AND finished_at >= ?",
            (now - 2 * DAY,),
        )
    rows += export_history.completed_since(sched, now - 2 * DAY)  # other types, other runs
    return sum(
        r["file_size"] or 0
        for r in rows
        if clock.quota_day(dt.datetime.fromtimestamp(r["finished_at"], dt.timezone.utc)) == today
    )


# ---------------------------------------------------------------------------- endpoints


async def create(request: Request) -> Response:
    """`POST /bulk/v1/program/members/export/create.json`."""
    user = caller(request)
    body = await json_body(request)
    fmt, spec = validate_spec(request, body)
    sched, _ = _pool(request)
    job_id = str(uuid.uuid4())
    now = sched.now()
    with sched.store.db.tx() as conn:
        conn.execute(
            "INSERT INTO bulk_export_jobs (id, api_user, format, spec, status, created_at) "
            "VALUES (?, ?, ?, ?, 'Created', ?)",
            (job_id, user, fmt, orjson.dumps(spec).decode(), now),
        )
    return ok([{"exportId": job_id, "format": fmt, "status": "Created", "createdAt": iso(now)}])


def enqueue(request: Request) -> Response:
    """`POST .../{exportId}/enqueue.json`: 1029 when the queue is full or the quota spent."""
    user = caller(request)
    job = _load(request, request.path_params["exportId"], user)
    if job["status"] in ("Queued", "Processing"):
        raise MarketoHTTPError(1029, "Job already queued")
    if job["status"] != "Created":
        raise MarketoHTTPError(1003, f"Job is {job['status']}, only a Created job can be enqueued")
    sched, pool = _pool(request)
    faults = state_of(request).faults
    path = request.url.path
    if faults.take_kind("too_many_jobs", path, "POST"):
        raise MarketoHTTPError(1029, "Too many jobs in queue")
    if faults.take_kind("export_quota", path, "POST"):
        raise MarketoHTTPError(1029, "Export daily quota exceeded")
    now = sched.now()
    quota = float(option(request, "export_daily_quota_mb")) * 1024 * 1024
    if exported_today(sched, now) >= quota:
        raise MarketoHTTPError(1029, "Export daily quota exceeded")
    fail = "Job failed: export error" if faults.take_kind("job_failed", path, "POST") else None
    with sched.lock:
        queued, running = sched.counts(pool)
        # bulk-extract.md: at most 10 queued, including the jobs that are exporting.
        if queued + running >= int(option(request, "export_max_queued")):
            raise MarketoHTTPError(1029, "Too many jobs in queue")
        with sched.store.db.tx() as conn:
            seq = next_seq(conn, TABLE)
            conn.execute(
                "UPDATE bulk_export_jobs SET status = 'Queued', queued_at = ?, seq = ?, "
                "fail_message = ? WHERE id = ?",
                (now, seq, fail, job["id"]),
            )
    sched.wake()
    out = {
        "exportId": job["id"],
        "format": job["format"],
        "status": "Queued",
        "createdAt": iso(job["created_at"]),
        "queuedAt": iso(now),
    }
    return ok([out])


def status(request: Request) -> Response:
    """`GET .../{exportId}/status.json`: the 60-s snapshot; `bad_checksum` lies once."""
    user = caller(request)
    job = _load(request, request.path_params["exportId"], user)
    sched, _ = _pool(request)
    view = shown(request, job, sched.now())
    if view.get("fileChecksum") and state_of(request).faults.take_kind(
        "bad_checksum", request.url.path, "GET"
    ):
        view["fileChecksum"] = "sha256:" + "0" * 64
    return ok([view])


def cancel(request: Request) -> Response:
    """`POST .../{exportId}/cancel.json`."""
    user = caller(request)
    job = _load(request, request.path_params["exportId"], user)
    if job["status"] not in ("Created", "Queued", "Processing"):
        raise MarketoHTTPError(1003, f"Job is {job['status']} and cannot be cancelled")
    sched, pool = _pool(request)
    sched.cancel(pool, job)
    return ok(
        [
            {
                "exportId": job["id"],
                "format": job["format"],
                "status": "Cancelled",
                "createdAt": iso(job["created_at"]),
            }
        ]
    )


def file(request: Request) -> Response:
    """`GET .../{exportId}/file.json`: the file from disk, honouring `Range: bytes=a-b`."""
    user = caller(request)
    job = _load(request, request.path_params["exportId"], user)
    sched, _ = _pool(request)
    if job["status"] != "Completed":
        raise MarketoHTTPError(1003, f"Export job is {job['status']}: no file to download")
    now = sched.now()
    keep = float(option(request, "export_file_retention_days")) * DAY
    path = Path(job["file_path"] or "")
    if job["expired"] or now - job["finished_at"] > keep or not path.is_file():
        _remove_file(job)
        if option(request, "export_expired_file_answer") == "404":
            # The answer the file endpoint gives an invalid job (bulk-extract.md, "Retrieving
            # Your Data"): 404 with a plaintext message.
            return Response("Export file has expired", status_code=404, media_type="text/plain")
        raise MarketoHTTPError(1003, "Export file has expired (files are kept 7 days)")
    size = path.stat().st_size
    headers = {"Accept-Ranges": "bytes"}
    try:
        rng = files.parse_range(request.headers.get("range"), size)
    except files.RangeNotSatisfiableError:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    start, end, status_code = (0, size - 1, 200) if rng is None else (*rng, 206)
    length = max(0, end - start + 1)
    if rng is not None:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(length)
    send = length
    if state_of(request).faults.take_kind("truncate", request.url.path, "GET"):
        send = length // 2  # the body stops mid-way while Content-Length promised it all
    media = files.MEDIA_TYPES[job["format"]]
    return StreamingResponse(
        files.iter_file(path, start, send),
        status_code=status_code,
        headers=headers,
        media_type=media,
    )


def list_jobs(request: Request) -> Response:
    """`GET /bulk/v1/program/members/export.json`: jobs of the last 7 days, `status` filter.

    Only the calling API user's jobs ("The response includes only jobs that the API user making
    the call owns"), newest first, each with the status its creator sees; injected program
    member jobs (`export_history`) among them.
    """
    user = caller(request)
    sched, _ = _pool(request)
    now = sched.now()
    since = now - export_history.LIST_DAYS * DAY
    with sched.store.db.tx() as conn:
        jobs = fetch_all(
            conn,
            "SELECT * FROM bulk_export_jobs WHERE created_at >= ? AND api_user = ? "
            "ORDER BY created_at DESC",
            (since, user),
        )
    views = [shown(request, j, now) for j in jobs]
    views += [
        export_history.view(j)
        for j in export_history.injected(sched, "program_members", user, since)
    ]
    views.sort(key=operator.itemgetter("createdAt"), reverse=True)
    return export_history.page(request, views)


def dump(store: Any) -> list[dict]:
    """Admin dump `export_jobs`: the real state of every job."""
    with store.db.tx() as conn:
        jobs = fetch_all(conn, "SELECT * FROM bulk_export_jobs ORDER BY created_at")
    out = []
    for job in jobs:
        row = {
            "exportId": job["id"],
            "apiUser": job["api_user"],
            "format": job["format"],
            "status": job["status"],
            "createdAt": iso(job["created_at"]),
            "queuedAt": iso(job["queued_at"]),
            "startedAt": iso(job["started_at"]),
            "finishedAt": iso(job["finished_at"]),
            "numberOfRecords": job["number_of_records"],
            "fileSize": job["file_size"],
            "fileChecksum": job["file_checksum"],
            "expired": bool(job["expired"]),
            "errorMsg": job["fail_message"],
            **orjson.loads(job["spec"]),
        }
        out.append(row)
    return out
