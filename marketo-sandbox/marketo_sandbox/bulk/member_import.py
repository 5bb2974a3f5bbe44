"""Bulk Program Member Import: `/bulk/v1/program/{programId}/members/import.json` and friends.

Status, failures and warnings live under `/bulk/v1/program/members/import/{batchId}/...`.

Insert-or-update members of one program with one status; every row needs email (the dedupe
field; a lead is created when none matches). Assumed where Marketo does not say: an unknown
program or status name refuses the job at once with 1003 (status "Not in Program" too); invalid
typed values fail the row; unknown or read-only columns are ignored with a warning on each row
that has a value in them; a member already in or past the status gets a warning. Documented
(the page's "Warnings" example): a malformed email is a warning "Invalid email address" and the
row is imported, its lead keeping that email.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from marketo_sandbox.bulk.imports import (
    PROGRAM_MEMBERS,
    RowHandler,
    create_job,
    import_format,
    path_batch,
    rows_file,
    status_reply,
)
from marketo_sandbox.envelope import MarketoHTTPError
from marketo_sandbox.repos.fields import LEAD, PROGRAM_MEMBER
from marketo_sandbox.state import state_of

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

LEAD_READ_ONLY = frozenset({"id", "createdAt", "updatedAt"})


class MemberRows(RowHandler):
    """Lead fields and updateable program member fields; the rest warns."""

    key = "email"
    keeps_invalid_email = True

    def __init__(self, store: Any, params: dict) -> None:
        self.store = store
        self.program_id = int(params["programId"])
        self.status = params["programMemberStatus"]
        self.fields = {}
        for f in store.fields.describe(LEAD):
            if f["name"] not in LEAD_READ_ONLY:
                self.fields[f["name"]] = f
        for f in store.fields.describe(PROGRAM_MEMBER):
            if f["updateable"]:
                self.fields[f["name"]] = f

    def apply(self, records: list[dict]) -> list[tuple]:
        """Insert or update members with the job's status."""
        return self.store.members.upsert(
            self.program_id, self.status, records, invalid_email_ok=True
        )


def row_handler(store: Any, params: dict) -> RowHandler:
    """The row handler of a program member import job."""
    return MemberRows(store, params)


def _params(request: Request, params: dict) -> tuple[str, dict]:
    """(format, kept parameters); unknown program 1013, bad status or format 1003."""
    fmt = import_format(params)
    raw_id = request.path_params["programId"]
    if not raw_id.isdigit():
        raise MarketoHTTPError(1003, f"Invalid programId '{raw_id}'")
    program = state_of(request).store.programs.get(int(raw_id))
    if program is None:
        raise MarketoHTTPError(1013, f"Program '{raw_id}' not found")
    status_name = (params.get("programMemberStatus") or "").strip()
    if not status_name:
        raise MarketoHTTPError(1003, "programMemberStatus is required")
    names = {s["name"].lower(): s["name"] for s in program["progressionStatuses"]}
    if status_name.lower() not in names:
        raise MarketoHTTPError(
            1003,
            f"Invalid programMemberStatus '{status_name}' for program {raw_id}; valid: "
            + ", ".join(names.values()),
        )
    return fmt, {"programId": int(raw_id), "programMemberStatus": names[status_name.lower()]}


async def create(request: Request) -> Response:
    """`POST /bulk/v1/program/{programId}/members/import.json` (file, format, status)."""
    return await create_job(request, PROGRAM_MEMBERS, _params)


def status(request: Request) -> Response:
    """`GET /bulk/v1/program/members/import/{batchId}/status.json`."""
    return status_reply(path_batch(request, PROGRAM_MEMBERS))


def failures(request: Request) -> Response:
    """`GET .../import/{batchId}/failures.json`: failed rows + "Import Failure Reason"."""
    return rows_file(path_batch(request, PROGRAM_MEMBERS), "failures")


def warnings(request: Request) -> Response:
    """`GET .../import/{batchId}/warnings.json`: rows + "Import Warning Reason"."""
    return rows_file(path_batch(request, PROGRAM_MEMBERS), "warnings")
