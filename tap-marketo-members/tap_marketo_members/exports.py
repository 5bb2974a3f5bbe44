"""Marketo's Bulk Program Member Extract jobs: create, enqueue, status, list, cancel, file download.

`ProgramMemberExports` is the one class that calls `/bulk/v1/program/members/export/...`.
"""

from __future__ import annotations

import hashlib
import logging
import time
from contextlib import closing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests
from marketo_common import MarketoClient, MarketoError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path

EXPORT_PATH = "/bulk/v1/program/members/export"
PENDING_STATUSES = ("Created", "Queued", "Processing")
# Marketo spells it both ways in its docs ("Canceled" in the status list, "Cancelled" in replies).
FINAL_STATUSES = ("Completed", "Failed", "Cancelled", "Canceled")
CHUNK_BYTES = 1 << 20
MAX_RESUMES = 5
PROGRESS_EVERY_BYTES = 64 << 20
HTTP_PARTIAL_CONTENT = 206

LOGGER = logging.getLogger("tap_marketo_members.exports")


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

    def __init__(
        self,
        client: MarketoClient,
        *,
        logger: logging.Logger | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.logger = logger or LOGGER
        self._sleep = sleep

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

    def download(
        self,
        export_id: str,
        dest: Path,
        *,
        file_size: int | None,
        checksum: str | None,
    ) -> ExportFile:
        """Stream the file to `dest`, verify size and sha256; one clean re-download on mismatch."""
        for attempt in (1, 2):
            size, digest, has_nul = self._fetch(export_id, dest, file_size)
            problems = []
            if file_size is not None and size != file_size:
                problems.append(f"size {size} bytes, status said {file_size}")
            expected = _checksum_hex(checksum)
            if expected and digest != expected:
                problems.append("sha256 does not match fileChecksum")
            if not problems:
                self.logger.info("Export %s: downloaded %d bytes, checksum ok", export_id, size)
                return ExportFile(path=dest, size=size, has_nul=has_nul)
            if attempt == 1:
                self.logger.warning(
                    "Export %s: file check failed (%s); downloading it again",
                    export_id,
                    "; ".join(problems),
                )
                # Re-read the status too: a stale size or checksum is as likely as a bad file.
                status = self.status(export_id)
                file_size = status.get("fileSize", file_size)
                checksum = status.get("fileChecksum", checksum)
                continue
            msg = (
                f"Export {export_id}: file failed verification twice ({'; '.join(problems)}); "
                "rerun the tap, and if it persists report the exportId to Marketo support"
            )
            raise ExportError(msg)
        raise AssertionError  # pragma: no cover

    def _fetch(self, export_id: str, dest: Path, file_size: int | None) -> tuple[int, str, bool]:
        """Download with `Range: bytes=N-` resume after a broken connection or short body."""
        path = f"{EXPORT_PATH}/{export_id}/file.json"
        hasher = hashlib.sha256()
        written = 0
        has_nul = False
        resumes = 0
        next_progress = PROGRESS_EVERY_BYTES
        with dest.open("wb") as out:
            while True:
                try:
                    response = (
                        self.client.download(path, start=written)
                        if written
                        else (self.client.download(path))
                    )
                    with closing(response):
                        if written and response.status_code != HTTP_PARTIAL_CONTENT:
                            # The server ignored Range: start over rather than duplicate bytes.
                            self.logger.warning("Export %s: Range ignored; restarting", export_id)
                            out.seek(0)
                            out.truncate()
                            hasher, written, has_nul = hashlib.sha256(), 0, False
                        for chunk in response.iter_content(CHUNK_BYTES):
                            out.write(chunk)
                            hasher.update(chunk)
                            has_nul = has_nul or b"\x00" in chunk
                            written += len(chunk)
                            if written >= next_progress:
                                self.logger.info(
                                    "Export %s: %d bytes downloaded", export_id, written
                                )
                                next_progress += PROGRESS_EVERY_BYTES
                    if file_size is None or written >= file_size:
                        return written, hasher.hexdigest(), has_nul
                    reason = f"body ended at {written} of {file_size} bytes"
                except (requests.RequestException, MarketoError) as exc:
                    if isinstance(exc, MarketoError) and not exc.retryable:
                        raise
                    reason = f"connection broke at {written} bytes ({type(exc).__name__})"
                resumes += 1
                if resumes > MAX_RESUMES:
                    msg = f"Export {export_id}: download kept failing ({reason}); rerun the tap"
                    raise ExportError(msg)
                self.logger.info(
                    "Export %s: %s; resuming with Range: bytes=%d-", export_id, reason, written
                )
                out.flush()
                self._sleep(min(2.0**resumes, 30.0) / 4)


def _first(envelope: Mapping[str, Any]) -> dict[str, Any]:
    result = envelope.get("result") or [{}]
    return dict(result[0])


def _checksum_hex(checksum: str | None) -> str | None:
    if not checksum:
        return None
    algo, _, value = checksum.partition(":")
    if not value:
        return algo.lower()
    if algo.lower() != "sha256":
        LOGGER.warning("Unknown fileChecksum algorithm %r: not verified", algo)
        return None
    return value.lower()
