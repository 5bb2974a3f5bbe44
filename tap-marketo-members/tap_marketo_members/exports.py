"""Marketo's Bulk Program Member Extract jobs: create, enqueue, status, list, cancel.

`ProgramMemberExports` is the one class that calls `/bulk/v1/program/members/export/...` job
endpoints; `downloader.ExportDownloader` fetches the files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from marketo_common import MarketoClient

EXPORT_PATH = "/bulk/v1/program/members/export"
PENDING_STATUSES = ("Created", "Queued", "Processing")
# Marketo spells it both ways in its docs ("Canceled" in the status list, "Cancelled" in replies).
FINAL_STATUSES = ("Completed", "Failed", "Cancelled", "Canceled")


class ExportError(Exception):
    """An export that cannot finish: the message says which job and why."""


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
        return _first(self.client.post(f"{EXPORT_PATH}/create.json", json=body))

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
