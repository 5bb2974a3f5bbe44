"""Export files from Marketo to local disk: streamed, resumed with `Range`, checked.

A file is streamed to a temporary folder; a broken or short body resumes with `Range: bytes=N-`
(a server that ignores Range restarts it); the result is checked against the status's
`fileSize` and sha256 `fileChecksum`, and a mismatch means one clean re-download after
re-reading the status, then a clear error. Progress is logged every 64 MB.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from marketo_common.errors import MarketoError
from marketo_common.program_member_export import (
    EXPORT_PATH,
    ExportError,
    ExportFile,
    ExportFileError,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from marketo_common.program_member_export import ProgramMemberExports

CHUNK_BYTES = 1 << 20
MAX_RESUMES = 5
PROGRESS_EVERY_BYTES = 64 << 20
HTTP_PARTIAL_CONTENT = 206

LOGGER = logging.getLogger("marketo_common.export_files")


class ExportDownloader:
    """Downloads finished export files into its own temporary folder (removed on exit)."""

    def __init__(
        self,
        exports: ProgramMemberExports,
        *,
        logger: logging.Logger | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_downloaded: Callable[[str, int], None] | None = None,
        prefix: str = "marketo-export-",
    ) -> None:
        self.exports = exports
        # Called with (exportId, bytes) after each verified file: the tap logs a METRIC line.
        self.on_downloaded = on_downloaded
        self.prefix = prefix
        self.logger = logger or LOGGER
        self._sleep = sleep
        self._workdir: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> ExportDownloader:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def status(self, export_id: str) -> dict[str, Any]:
        """The job's status (a file is asked for again by its exportId: removal checks)."""
        return self.exports.status(export_id)

    def file(self, export_id: str, info: Mapping[str, Any], seconds: float) -> ExportFile:
        """The verified file of a Completed job (`info` is its last status reply)."""
        if self._workdir is None:
            self._workdir = tempfile.TemporaryDirectory(prefix=self.prefix)
        dest = Path(self._workdir.name) / f"{export_id}.csv"
        exported = self.download(
            export_id,
            dest,
            file_size=_int_or_none(info.get("fileSize")),
            checksum=info.get("fileChecksum"),
        )
        self.logger.info(
            "Export %s: %s records, %d bytes, %.1f s after it was created",
            export_id,
            info.get("numberOfRecords", "?"),
            exported.size,
            seconds,
        )
        if self.on_downloaded is not None:
            self.on_downloaded(export_id, exported.size)
        return exported

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
                status = self.exports.status(export_id)
                file_size = status.get("fileSize", file_size)
                checksum = status.get("fileChecksum", checksum)
                continue
            msg = (
                f"Export {export_id}: file failed verification twice ({'; '.join(problems)}); "
                "run again, and if it persists report the exportId to Marketo support"
            )
            raise ExportFileError(msg)
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
                        self.exports.client.download(path, start=written)
                        if written
                        else (self.exports.client.download(path))
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
                    msg = f"Export {export_id}: download kept failing ({reason}); run again"
                    raise ExportError(msg)
                self.logger.info(
                    "Export %s: %s; resuming with Range: bytes=%d-", export_id, reason, written
                )
                out.flush()
                self._sleep(min(2.0**resumes, 30.0) / 4)


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


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
