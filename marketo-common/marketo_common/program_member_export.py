"""Marketo's Bulk Program Member Extract jobs: create, enqueue, status, list, cancel.

`ProgramMemberExports` is the one class that calls `/bulk/v1/program/members/export/...` job
endpoints; `export_files.ExportDownloader` fetches the files. The tap exports members with it,
the target reads a mirrored program's current membership with it (keys-only export).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from marketo_common.errors import MarketoError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence
    from pathlib import Path

    from marketo_common.client import MarketoClient

EXPORT_PATH = "/bulk/v1/program/members/export"
PENDING_STATUSES = ("Created", "Queued", "Processing")
# Marketo spells it both ways in its docs ("Canceled" in the status list, "Cancelled" in replies).
FINAL_STATUSES = ("Completed", "Failed", "Cancelled", "Canceled")

LOGGER = logging.getLogger("marketo_common.program_member_export")


class ExportError(Exception):
    """An export that cannot finish: the message says which job and why."""


class ExportFileError(ExportError):
    """A job's file failed its size or checksum check twice: the job is created again once."""


@dataclass(frozen=True)
class ExportFile:
    """A downloaded, verified export file on local disk."""

    path: Path
    size: int
    has_nul: bool


class ProgramMemberExports:
    """Calls the program member export endpoints for one Marketo instance."""

    def __init__(self, client: MarketoClient) -> None:
        self.client = client

    def create(
        self,
        fields: Sequence[str],
        program_ids: Sequence[int],
        *,
        updated_at: tuple[str, str] | None = None,
        column_header_names: Mapping[str, str] | None = None,
        member_filter: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Define a job; `programIds` groups up to 10 programs so fewer jobs are needed.

        `member_filter` holds the extract's optional filters (statusNames, isExhausted,
        nurtureCadence), ANDed by Marketo with the programs and the updatedAt range.
        """
        filt: dict[str, Any] = {"programIds": list(program_ids), **(member_filter or {})}
        if updated_at:
            filt["updatedAt"] = {"startAt": updated_at[0], "endAt": updated_at[1]}
        body: dict[str, Any] = {"format": "CSV", "fields": list(fields), "filter": filt}
        if column_header_names:
            body["columnHeaderNames"] = dict(column_header_names)
        created = _first(self.client.post(f"{EXPORT_PATH}/create.json", json=body))
        if self.maybe_ran_twice():
            self.cancel_lost_creates(created)
        return created

    def cancel_lost_creates(self, created: Mapping[str, Any]) -> list[str]:
        """Cancel the jobs a create whose answer was lost made before its retry made `created`.

        The chaos soak found them: a create whose connection broke after Marketo ran it left a
        job in Created that nobody enqueues or cancels. They are this API user's Created jobs
        no newer than `created` (the list shows only the caller's jobs). Assumption (the pages
        are silent): another client of the same API user enqueues its job right after creating
        it, so a Created job older than ours at this moment is an orphan.
        """
        ours = str(created.get("exportId"))
        ours_at = str(created.get("createdAt") or "")
        try:
            jobs = self.list_jobs(("Created",))
        except MarketoError as exc:
            LOGGER.warning("Could not list Created jobs after a lost create answer: %s", exc)
            return []
        cancelled = []
        for job in jobs:
            export_id = str(job.get("exportId"))
            job_at = str(job.get("createdAt") or "")
            if (
                export_id == ours
                or job.get("status") != "Created"
                or (ours_at and job_at > ours_at)
            ):
                continue
            try:
                self.cancel(export_id)
            except MarketoError as exc:
                LOGGER.warning("Could not cancel export %s: %s", export_id, exc)
                continue
            cancelled.append(export_id)
            LOGGER.warning(
                "Cancelled export %s: made by a create request whose answer was lost "
                "(the retry made %s)",
                export_id,
                ours,
            )
        return cancelled

    def maybe_ran_twice(self) -> bool:
        """Whether this thread's last call was retried after an attempt Marketo may have run."""
        return self.client.maybe_ran_twice()

    def enqueue(self, export_id: str) -> dict[str, Any]:
        """Put a created job in Marketo's queue (1029 when the queue is full or quota used)."""
        return _first(self.client.post(f"{EXPORT_PATH}/{export_id}/enqueue.json"))

    def status(self, export_id: str) -> dict[str, Any]:
        """One status poll; Marketo refreshes it at most once a minute."""
        return _first(self.client.get(f"{EXPORT_PATH}/{export_id}/status.json"))

    def cancel(self, export_id: str) -> dict[str, Any]:
        """Cancel a job so it frees its slot in the shared 2-running/10-queued budget."""
        return _first(self.client.post(f"{EXPORT_PATH}/{export_id}/cancel.json"))

    def list_jobs(self, statuses: Sequence[str] = PENDING_STATUSES) -> list[dict[str, Any]]:
        """Jobs of this API user in the given statuses (Marketo shows only the caller's jobs)."""
        envelope = self.client.get(f"{EXPORT_PATH}.json", params={"status": ",".join(statuses)})
        return list(envelope.get("result") or [])


def _first(envelope: Mapping[str, Any]) -> dict[str, Any]:
    result = envelope.get("result") or [{}]
    return dict(result[0])


def keys_file_rows(
    path: Path,
    program_ids: Sequence[int],
    columns: Sequence[str] = ("leadId",),
    *,
    label: str,
    has_nul: bool = False,
) -> Iterator[tuple[Any, ...]]:
    """(programId, leadId, *other columns as text) of each row of a keys-only export file.

    The tap's removal check and the target's mirror both read these files. Marketo adds a
    `programId` column first to a `programIds` job (bulk-program-member-extract.md); a file
    without it is read as its one program's, and refused when the job covered several (its
    rows could not be told apart). Rows of other programs are skipped: the tap's removal
    check may compare only part of an earlier job's programs. A BOM and NUL characters are
    handled here once; a bad row names the file's line.
    """
    asked = {int(pid) for pid in program_ids}
    with path.open(encoding="utf-8-sig", newline="") as handle:
        lines: Iterable[str] = (line.replace("\x00", "") for line in handle) if has_nul else handle
        reader = csv.reader(lines, strict=True)
        try:
            header = next(reader, None) or []
            missing = [name for name in columns if name not in header]
            if missing:
                msg = f"{label}: no {', '.join(missing)} column in the file ({header})"
                raise ExportError(msg)
            at = [header.index(name) for name in columns]
            pid_at = header.index("programId") if "programId" in header else None
            if pid_at is None and len(asked) != 1:
                msg = f"{label}: no programId column in a file covering several programs"
                raise ExportError(msg)
            only = next(iter(asked))
            for row in reader:
                if not row:
                    continue
                try:
                    pid = int(row[pid_at]) if pid_at is not None else only
                    values = [row[i] for i in at]
                    values[0] = int(values[0])
                except (IndexError, ValueError) as exc:
                    msg = f"{label}: line {reader.line_num}: unreadable row ({exc})"
                    raise ExportError(msg) from None
                if pid in asked:
                    yield (pid, *values)
        except (csv.Error, UnicodeDecodeError) as exc:
            msg = f"{label}: line {reader.line_num}: {exc}"
            raise ExportError(msg) from None
