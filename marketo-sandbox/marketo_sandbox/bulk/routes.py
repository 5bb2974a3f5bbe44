"""Bulk API routes, mirroring Marketo's `/bulk/v1/...` URL tree (mounted by `app.create_app`)."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from marketo_sandbox.admin import register_dump
from marketo_sandbox.bulk import export, imports, lead_import, member_import
from marketo_sandbox.bulk.common import files_dir, scheduler

EXPORT = "/bulk/v1/program/members/export"
PM_IMPORT = "/bulk/v1/program/members/import"

ROUTES = [
    # Bulk Program Member Extract
    Route(f"{EXPORT}.json", export.list_jobs, methods=["GET"]),
    Route(f"{EXPORT}/create.json", export.create, methods=["POST"]),
    Route(f"{EXPORT}/{{exportId}}/enqueue.json", export.enqueue, methods=["POST"]),
    Route(f"{EXPORT}/{{exportId}}/status.json", export.status, methods=["GET"]),
    Route(f"{EXPORT}/{{exportId}}/cancel.json", export.cancel, methods=["POST"]),
    Route(f"{EXPORT}/{{exportId}}/file.json", export.file, methods=["GET"]),
    # Bulk Lead Import
    Route("/bulk/v1/leads.json", lead_import.create, methods=["POST"]),
    Route("/bulk/v1/leads/batch/{batchId}.json", lead_import.status, methods=["GET"]),
    Route("/bulk/v1/leads/batch/{batchId}/failures.json", lead_import.failures, methods=["GET"]),
    Route("/bulk/v1/leads/batch/{batchId}/warnings.json", lead_import.warnings, methods=["GET"]),
    # Bulk Program Member Import
    Route(
        "/bulk/v1/program/{programId}/members/import.json", member_import.create, methods=["POST"]
    ),
    Route(f"{PM_IMPORT}/{{batchId}}/status.json", member_import.status, methods=["GET"]),
    Route(f"{PM_IMPORT}/{{batchId}}/failures.json", member_import.failures, methods=["GET"]),
    Route(f"{PM_IMPORT}/{{batchId}}/warnings.json", member_import.warnings, methods=["GET"]),
]

register_dump("export_jobs", export.dump)
register_dump("import_jobs", imports.dump)


def on_startup(app: Any) -> None:
    """Start the job scheduler at once, so jobs running when the server died resume now."""
    scheduler(app)


def on_reset(app: Any) -> None:
    """`/_sandbox/reset` emptied the db: stop workers of the old jobs and delete their files."""
    scheduler(app).forget_all()
    base = files_dir(app)
    for sub in ("exports", "imports"):
        for path in (base / sub).iterdir():
            path.unlink(missing_ok=True)


def on_shutdown(app: Any) -> None:
    """Stop the scheduler's driver thread (workers are daemons; their jobs resume on restart)."""
    scheduler(app).stop()
