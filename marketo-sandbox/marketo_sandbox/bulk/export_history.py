"""The Get Export Lead / Activity / Program Member Jobs lists, and jobs injected into them.

Marketo's daily export quota is shared by every export type, and each type's job list shows the
calling API user's jobs of the last seven days, with the `fileSize` of each finished one
(`bulk-extract.md`). The sandbox runs program member exports only; the jobs of the other types,
and earlier runs' jobs, are injected through the admin API to stand for them:

`POST /_sandbox/bulk/export_jobs` {type: leads|activities|program_members, fileSize,
numberOfRecords?, finishedAt? (ISO, default now), status? (Completed|Failed|Cancelled),
apiUser? (the first API user), format? (CSV)}. Injected jobs show in their type's list and count
against the export quota like the program member jobs the sandbox ran.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse

from marketo_sandbox.bulk.common import DAY, caller, iso
from marketo_sandbox.clock import parse_datetime
from marketo_sandbox.envelope import MarketoHTTPError, ok
from marketo_sandbox.jobs import fetch_all
from marketo_sandbox.state import state_of

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from marketo_sandbox.jobs import Scheduler

TYPES = ("leads", "activities", "program_members")
FINAL = ("Completed", "Failed", "Cancelled")
LIST_DAYS = 7  # "These endpoints return all jobs from the past seven days."
SCHEMA = """
CREATE TABLE IF NOT EXISTS bulk_export_history (
    id TEXT PRIMARY KEY,
    export_type TEXT NOT NULL,
    api_user TEXT NOT NULL,
    format TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    finished_at REAL NOT NULL,
    number_of_records INTEGER,
    file_size INTEGER
);
"""


def view(job: dict) -> dict[str, Any]:
    """An injected job as its list shows it (finished jobs only, so no status rhythm)."""
    out: dict[str, Any] = {
        "exportId": job["id"],
        "format": job["format"],
        "status": job["status"],
        "createdAt": iso(job["created_at"]),
        "queuedAt": iso(job["created_at"]),
        "startedAt": iso(job["created_at"]),
        "finishedAt": iso(job["finished_at"]),
    }
    if job["status"] == "Completed":
        out["numberOfRecords"] = job["number_of_records"]
        out["fileSize"] = job["file_size"]
    return out


def injected(sched: Scheduler, export_type: str, user: str, since: float) -> list[dict]:
    """Injected jobs of one type and API user created since `since`, newest first."""
    with sched.store.db.tx() as conn:
        return fetch_all(
            conn,
            "SELECT * FROM bulk_export_history WHERE export_type = ? AND api_user = ? "
            "AND created_at >= ? ORDER BY created_at DESC",
            (export_type, user, since),
        )


def completed_since(sched: Scheduler, since: float) -> list[dict]:
    """Injected completed jobs of every type and API user (the quota is the subscription's)."""
    with sched.store.db.tx() as conn:
        return fetch_all(
            conn,
            "SELECT finished_at, file_size FROM bulk_export_history "
            "WHERE status = 'Completed' AND finished_at >= ?",
            (since,),
        )


def page(request: Request, views: list[dict]) -> Response:
    """A job list page: `status` filter, `batchSize` (≤ 300), `nextPageToken`."""
    wanted: set[str] = set()
    for value in request.query_params.getlist("status"):
        wanted.update(s.strip().lower() for s in value.split(",") if s.strip())
    try:
        batch = min(300, max(1, int(request.query_params.get("batchSize") or 300)))
        offset = int(request.query_params.get("nextPageToken") or 0)
    except ValueError:
        raise MarketoHTTPError(1003, "Invalid batchSize or nextPageToken") from None
    if wanted:
        views = [v for v in views if v["status"].lower() in wanted]
    extra: dict[str, Any] = {}
    if offset + batch < len(views):
        extra = {"moreResult": True, "nextPageToken": str(offset + batch)}
    return ok(views[offset : offset + batch], **extra)


def lister(export_type: str) -> Any:
    """`GET /bulk/v1/{leads|activities}/export.json`: the caller's jobs of that type."""

    def list_jobs(request: Request) -> Response:
        user = caller(request)
        sched = state_of(request).scheduler
        jobs = injected(sched, export_type, user, sched.now() - LIST_DAYS * DAY)
        return page(request, [view(j) for j in jobs])

    list_jobs.__doc__ = f"`GET` the {export_type} export job list (injected jobs)."
    return list_jobs


async def inject(request: Request) -> Response:
    """`POST /_sandbox/bulk/export_jobs`: add a finished job to a type's list (see module)."""
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return JSONResponse({"error": "a JSON object is expected"}, status_code=400)
    state = state_of(request)
    sched = state.scheduler
    try:
        job = _job(body, next(iter(state.identity.users)), sched.now())
    except (TypeError, ValueError) as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    with sched.store.db.tx() as conn:
        conn.execute(
            "INSERT INTO bulk_export_history (id, export_type, api_user, format, status, "
            "created_at, finished_at, number_of_records, file_size) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            tuple(job.values()),
        )
    return JSONResponse(view(job))


def _job(body: dict, default_user: str, now: float) -> dict[str, Any]:
    export_type = body.get("type")
    if export_type not in TYPES:
        raise ValueError(f"type must be one of {', '.join(TYPES)}")
    status = body.get("status", "Completed")
    if status not in FINAL:
        raise ValueError(f"status must be one of {', '.join(FINAL)}")
    size = body.get("fileSize", 0)
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError("fileSize must be a non-negative integer (bytes)")
    finished = body.get("finishedAt")
    finished_at = parse_datetime(finished).timestamp() if finished else now
    records = body.get("numberOfRecords")
    return {
        "id": str(uuid.uuid4()),
        "export_type": export_type,
        "api_user": str(body.get("apiUser") or default_user),
        "format": str(body.get("format") or "CSV"),
        "status": status,
        "created_at": finished_at - 60.0,
        "finished_at": finished_at,
        "number_of_records": int(records) if records is not None else None,
        "file_size": size,
    }


def dump(store: Any) -> list[dict]:
    """Admin dump `injected_export_jobs`: every injected job."""
    with store.db.tx() as conn:
        rows = fetch_all(conn, "SELECT * FROM bulk_export_history ORDER BY created_at")
    return [
        {**view(r), "type": r["export_type"], "apiUser": r["api_user"], "fileSize": r["file_size"]}
        for r in rows
    ]
