"""A mirrored program's current membership: REST while it is small, a keys-only export above.

REST (`GET /rest/v1/programs/{id}/members.json`) costs one call per 300 members; Marketo refuses
it (1003) for programs over 100,000 members. Past `REST_PAGE_LIMIT` pages, or on that refusal,
the program is read through a Bulk Program Member Extract of `leadId` and `statusName` only
(bulk-program-member-extract.md): 4 calls plus a status poll a minute of job time, whatever
the size, and ~10-20 bytes per member of the 500 MB daily export quota (18.4 measured). Up to
10 such programs share one job (`programIds`); jobs run one at a time, leaving the other slot
of Marketo's 2 to others.
The file is streamed row by row (`csv`, `newline=""`), never loaded whole.
"""

from __future__ import annotations

import time
import typing as t

from marketo_common import (
    ExportQuotaExceededError,
    MarketoAPIError,
    MarketoError,
    TooManyJobsError,
)
from marketo_common.export_files import ExportDownloader
from marketo_common.program_member_export import (
    FINAL_STATUSES,
    ExportError,
    ProgramMemberExports,
    keys_file_rows,
)

from target_marketo_ingest.errors import TargetError
from target_marketo_ingest.programs import NOT_IN_PROGRAM

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Iterator, Sequence

    from target_marketo_ingest.programs import ProgramCatalog

PAGE = 300
# REST costs one call per 300 members against 100 calls / 20 s shared with the writes; an export
# costs ~5 calls plus minutes of job time. At 30 pages (9,000 members) the export is cheaper in
# calls and the minutes matter less than the rate limit the rest of the run needs.
REST_PAGE_LIMIT = 30
KEY_FIELDS = ("leadId", "statusName")
PROGRAMS_PER_JOB = 10  # Marketo's limit for the programIds filter
TOO_LARGE = "1003"  # non-leadId filters on programs over 100,000 members
# Marketo refreshes an export's status once a minute: the poll starts at poll_interval_seconds
# and doubles up to this many times it (5 s -> 60 s by default).
POLL_GROWTH = 12
# How long a full export queue (1029, 10 jobs of every tool and API user) is waited out.
MAX_QUEUE_WAIT_SECONDS = 1800.0
# How long a queued job may take before the run gives up and cancels it (the tap's default
# job_timeout_minutes): keys-only jobs take minutes, so hours mean Marketo is stuck.
MAX_JOB_SECONDS = 3 * 3600.0


class MembershipTooLargeError(Exception):
    """The REST read of a program stopped: read it through a keys-only export instead."""


class Membership:
    """Current (leadId, status) of mirrored programs, by REST or by a keys-only export."""

    sleep = staticmethod(time.sleep)  # a seam for tests that stop the run mid-wait

    def __init__(
        self,
        client: t.Any,
        catalog: ProgramCatalog,
        on_call: t.Callable,
        *,
        logger: logging.Logger | None = None,
        poll_seconds: float = 5.0,
        label: str = "mirror",
    ) -> None:
        self.client = client
        self.catalog = catalog
        self.on_call = on_call
        self.logger = logger
        self.poll_seconds = poll_seconds
        self.label = label

    def read(self, program_id: int) -> t.Iterator[tuple[int, str]]:
        """(leadId, status) of every member through REST; MembershipTooLargeError past the limit."""
        params = self._rest_params(program_id)
        path = f"/rest/v1/programs/{program_id}/members.json"
        pages = 0
        while True:
            if pages >= REST_PAGE_LIMIT:
                raise MembershipTooLargeError(f"more than {REST_PAGE_LIMIT * PAGE:,} members")
            self.on_call()
            try:
                envelope = self.client.get(path, params)
            except MarketoAPIError as exc:
                if exc.code == TOO_LARGE:
                    raise MembershipTooLargeError(f"REST refused it: {exc}") from None
                raise TargetError(
                    f"mirror: could not list the members of program {program_id} ({exc})"
                ) from None
            pages += 1
            rows = envelope.get("result") or []
            for row in rows:
                yield int(row["leadId"]), str(row.get("statusName") or "")
            token = envelope.get("nextPageToken")
            if not rows or not token or not envelope.get("moreResult", True):
                return
            params["nextPageToken"] = token

    def _rest_params(self, program_id: int) -> dict:
        statuses = [
            name
            for name in (self.catalog.statuses(program_id) or {}).values()
            if name.lower() != NOT_IN_PROGRAM
        ]
        if not statuses:
            raise TargetError(
                f"mirror: the statuses of program {program_id} could not be read "
                "(Asset API permission needed), so its membership cannot be listed"
            )
        params: dict = {
            "filterType": "statusName",
            "filterValues": ",".join(statuses),
            "fields": ",".join(KEY_FIELDS),
            "batchSize": PAGE,
        }
        if any("," in name for name in statuses):
            # filterValues splits on commas (no escape is documented), so a status named
            # "Registered, Waitlist" cannot be listed by name; every member has reachedSuccess
            # true or false, a searchable member field (program-members.md).
            params.update(filterType="reachedSuccess", filterValues="true,false")
        return params

    def export(self, program_ids: Sequence[int]) -> Iterator[tuple[int, int, str]]:
        """(programId, leadId, status) of every member, through keys-only export jobs."""
        ids = list(program_ids)
        for start in range(0, len(ids), PROGRAMS_PER_JOB):
            yield from KeysExport(self, ids[start : start + PROGRAMS_PER_JOB]).rows()

    def log(self, message: str, *args: t.Any) -> None:
        """One progress line, prefixed with the stream."""
        if self.logger is not None:
            self.logger.info("Stream '%s': " + message, self.label, *args)  # noqa: G003


class KeysExport:
    """One keys-only program member export job: create, enqueue, poll, download, parse.

    A job still pending when the run fails or is interrupted is cancelled, so it does not hold
    one of the subscription's 10 queue slots for nothing.
    """

    def __init__(self, membership: Membership, program_ids: list[int]) -> None:
        self.membership = membership
        self.exports = ProgramMemberExports(membership.client)
        self.program_ids = program_ids
        self.export_id: str | None = None
        self.status = ""
        self.started = time.monotonic()

    def rows(self) -> Iterator[tuple[int, int, str]]:
        """Run the job to its file, then stream the file's rows."""
        m = self.membership
        with ExportDownloader(
            self.exports, logger=m.logger, prefix="target-marketo-mirror-"
        ) as downloader:
            try:
                info = self._run()
                m.on_call()
                try:
                    exported = downloader.file(self.export_id, info, self._elapsed())
                except (ExportError, MarketoError) as exc:
                    raise self._error(f"file could not be read ({exc})") from None
            except BaseException:
                self._cancel_if_pending()
                raise
            yield from self._parse(exported.path, has_nul=exported.has_nul)

    def _run(self) -> dict:
        m = self.membership
        m.on_call()
        try:
            created = self.exports.create(KEY_FIELDS, self.program_ids)
        except MarketoError as exc:
            raise self._error(f"could not be created ({exc})") from None
        self.export_id = str(created["exportId"])
        self._set_status(str(created.get("status") or "Created"))
        info = self._enqueue()
        wait = m.poll_seconds
        while self.status not in FINAL_STATUSES:
            if self._elapsed() >= MAX_JOB_SECONDS:
                raise self._error(
                    f"was still {self.status} after {self._elapsed():.0f} s; cancelled, run again"
                )
            m.sleep(wait)
            wait = min(wait * 2, m.poll_seconds * POLL_GROWTH)
            m.on_call()
            try:
                info = self.exports.status(self.export_id)
            except MarketoError as exc:
                raise self._error(f"status could not be read ({exc})") from None
            self._set_status(str(info.get("status") or ""))
        if self.status != "Completed":
            reason = info.get("errorMsg") or info.get("message") or "no reason given"
            raise self._error(f"ended {self.status} ({reason})")
        return info

    def _enqueue(self) -> dict:
        """Queue the job; a full queue (1029) is waited out with a bounded backoff."""
        m = self.membership
        wait, waited = m.poll_seconds, 0.0
        while True:
            m.on_call()
            try:
                queued = self.exports.enqueue(self.export_id)
            except ExportQuotaExceededError as exc:
                raise self._error(f"could not be queued: {exc}") from None
            except TooManyJobsError as exc:
                if "already queued" in exc.message.lower():
                    # An earlier try of this enqueue reached Marketo; the polls read the rest.
                    queued = {"status": "Queued"}
                elif waited >= MAX_QUEUE_WAIT_SECONDS:
                    raise self._error(
                        f"could not be queued: Marketo's export queue stayed full (1029) for "
                        f"{waited:.0f} s; other jobs hold all 10 slots"
                    ) from None
                else:
                    m.log(
                        "export %s: Marketo's export queue is full (1029); waiting %.1f s",
                        self.export_id,
                        wait,
                    )
                    m.sleep(wait)
                    waited += wait
                    wait = min(wait * 2, m.poll_seconds * POLL_GROWTH)
                    continue
            except MarketoError as exc:
                raise self._error(f"could not be queued ({exc})") from None
            self._set_status(str(queued.get("status") or "Queued"))
            return queued

    def _parse(self, path: t.Any, *, has_nul: bool) -> Iterator[tuple[int, int, str]]:
        """Rows of the file (the reader shared with the tap's removal check)."""
        read = 0
        rows = keys_file_rows(
            path,
            self.program_ids,
            KEY_FIELDS,
            label=f"keys-only export {self.export_id}",
            has_nul=has_nul,
        )
        try:
            for program, lead, status in rows:
                read += 1
                yield program, lead, status
        except ExportError as exc:
            raise self._error(f"file could not be read ({exc})") from None
        self.membership.log(
            "export %s: %d members read of programs %s",
            self.export_id,
            read,
            ", ".join(map(str, self.program_ids)),
        )

    def _set_status(self, status: str) -> None:
        if status and status != self.status:
            self.status = status
            self.membership.log(
                "keys-only export %s of programs %s: %s after %.1f s",
                self.export_id,
                ", ".join(map(str, self.program_ids)),
                status,
                self._elapsed(),
            )

    def _cancel_if_pending(self) -> None:
        if self.export_id is None or self.status in FINAL_STATUSES:
            return
        try:
            self.membership.on_call()
            self.exports.cancel(self.export_id)
        except MarketoError as exc:
            self.membership.log("export %s: could not cancel it: %s", self.export_id, exc)
            return
        self.status = "Cancelled"
        self.membership.log("export %s cancelled: the run stopped", self.export_id)

    def _elapsed(self) -> float:
        return time.monotonic() - self.started

    def _error(self, why: str) -> TargetError:
        ids = ", ".join(map(str, self.program_ids))
        job = f" {self.export_id}" if self.export_id else ""
        return TargetError(f"mirror: the keys-only export{job} of programs {ids} {why}")
