"""Bulk Lead Import: `POST /bulk/v1/leads.json` and `/bulk/v1/leads/batch/{batchId}...`.

createOrUpdate on `lookupField` (default email). Rows are applied in file order in chunks, so a
lead appearing twice in one file ends with the values of its last row (Marketo: last wins).

`lookupField` is limited to the fields Marketo dedupes on: a standard field outside
`LOOKUP_FIELDS` (firstName, lastName, ...) answers 1011 "Field not supported" (error-codes.md),
custom string, email and integer fields are allowed, an unknown name is 1006. `listId` must name
a static list of option `static_lists` (1013 "Object not found", error-codes.md: a list by id);
`partitionName` a lead partition of option `lead_partitions` (default only "Default"; the page
gives no code: 1003 assumed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from marketo_sandbox.bulk.imports import (
    LEADS,
    RowHandler,
    create_job,
    import_format,
    path_batch,
    rows_file,
    status_reply,
)
from marketo_sandbox.envelope import MarketoHTTPError
from marketo_sandbox.state import state_of
from marketo_sandbox.storage import LEAD

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

#: Standard fields Marketo accepts as lookupField for lead imports (plus custom string, email and
#: integer fields).
LOOKUP_FIELDS = (
    "id",
    "cookie",
    "email",
    "twitterId",
    "facebookId",
    "linkedInId",
    "sfdcAccountId",
    "sfdcContactId",
    "sfdcLeadId",
    "sfdcLeadOwnerId",
    "sfdcOpptyId",
)
LOOKUP_CUSTOM_TYPES = ("string", "email", "integer")
#: Lead fields a file may not set.
READ_ONLY = frozenset({"createdAt", "updatedAt"})


class LeadRows(RowHandler):
    """Validates typed values against the lead describe, then createOrUpdate through the store."""

    def __init__(self, store: Any, params: dict) -> None:
        self.store = store
        self.key = params.get("lookupField") or "email"
        self.fields = {
            f["name"]: f
            for f in store.fields.describe(LEAD)
            if f["name"] not in READ_ONLY and (f["name"] != "id" or self.key == "id")
        }

    def missing_key(self) -> str:
        """Marketo's reason for a row without the lookup value."""
        return f"Value for lookup field '{self.key}' not found"

    def apply(self, records: list[dict]) -> list[tuple]:
        """CreateOrUpdate on the lookup field."""
        return self.store.leads.upsert(records, self.key)


def row_handler(store: Any, params: dict) -> RowHandler:
    """The row handler of a lead import job."""
    return LeadRows(store, params)


def _params(request: Request, params: dict) -> tuple[str, dict]:
    """(format, kept parameters) or 1003 for a bad one."""
    fmt = import_format(params)
    options = state_of(request).options
    lookup = params.get("lookupField") or "email"
    field = state_of(request).store.fields.map(LEAD).get(lookup)
    if field is None:
        raise MarketoHTTPError(1006, f"Field '{lookup}' not found")
    custom_ok = field["isCustom"] and field["dataType"] in LOOKUP_CUSTOM_TYPES
    if lookup not in LOOKUP_FIELDS and not custom_ok:
        raise MarketoHTTPError(1011, f"Field '{lookup}' not supported")
    list_id = params.get("listId") or None
    if list_id is not None and not str(list_id).isdigit():
        raise MarketoHTTPError(1003, f"Invalid listId '{list_id}'")
    lists = {int(x) for x in options.get("static_lists") or []}
    if list_id is not None and int(list_id) not in lists:
        raise MarketoHTTPError(1013, f"Static list '{list_id}' not found")
    partition = params.get("partitionName") or None
    if partition is not None and partition not in (options.get("lead_partitions") or ["Default"]):
        raise MarketoHTTPError(1003, f"Invalid partitionName '{partition}'")
    kept = {
        "lookupField": lookup,
        "listId": int(list_id) if list_id else None,
        "partitionName": partition,
    }
    return fmt, kept


async def create(request: Request) -> Response:
    """`POST /bulk/v1/leads.json` (multipart: file, format, lookupField, listId, partitionName)."""
    return await create_job(request, LEADS, _params)


def status(request: Request) -> Response:
    """`GET /bulk/v1/leads/batch/{batchId}.json`."""
    return status_reply(path_batch(request, LEADS))


def failures(request: Request) -> Response:
    """`GET /bulk/v1/leads/batch/{batchId}/failures.json`: failed rows + "Import Failure Reason"."""
    return rows_file(path_batch(request, LEADS), "failures")


def warnings(request: Request) -> Response:
    """`GET /bulk/v1/leads/batch/{batchId}/warnings.json`: rows + "Import Warning Reason"."""
    return rows_file(path_batch(request, LEADS), "warnings")
