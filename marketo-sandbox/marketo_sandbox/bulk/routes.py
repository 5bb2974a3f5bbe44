"""The bulk family: routes mirroring Marketo's `/bulk/v1/...` URL tree, job pools, tables."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import Route

from marketo_sandbox.bulk import export, export_history, imports, lead_import, member_import
from marketo_sandbox.family import Family
from marketo_sandbox.state import state_of

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from marketo_sandbox.jobs import Scheduler

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
    # Get Export Lead / Activity Jobs (the jobs are injected: the sandbox runs no such export)
    Route("/bulk/v1/leads/export.json", export_history.lister("leads"), methods=["GET"]),
    Route("/bulk/v1/activities/export.json", export_history.lister("activities"), methods=["GET"]),
    # Admin: jobs of other export types and earlier runs, for the job lists and the quota
    Route("/_sandbox/bulk/export_jobs", export_history.inject, methods=["POST"]),
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


def jobs(app: Starlette, sched: Scheduler) -> None:
    """The export pool and the import pool (each import kind with its row handler)."""
    export.setup(app, sched)
    handlers = {
        imports.LEADS: lead_import.row_handler,
        imports.PROGRAM_MEMBERS: member_import.row_handler,
    }
    imports.setup(app, sched, handlers)


def on_reset(app: Starlette) -> None:
    """`/_sandbox/reset` emptied the db: stop workers of the old jobs and delete their files."""
    state = state_of(app)
    state.scheduler.forget_all()
    for sub in ("exports", "imports"):
        for path in (state.files_dir / sub).iterdir():
            path.unlink(missing_ok=True)


BULK = Family(
    "bulk",
    routes=ROUTES,
    schema=export.SCHEMA + export_history.SCHEMA + imports.SCHEMA,
    dumps={
        "export_jobs": export.dump,
        "injected_export_jobs": export_history.dump,
        "import_jobs": imports.dump,
    },
    jobs=jobs,
    on_reset=on_reset,
)
