"""The export engine: plan -> jobs -> files -> rows -> commit events, knowing nothing of the SDK.

`ExportEngine.events` yields, in order, `Rows` (one window's rows: consume them before asking
for the next event) and `Commit` (every row before it is out; the ledger has moved the
bookmarks; write STATE now). The stream (`streams.ProgramMembersStream`) turns them into
RECORD/BATCH and STATE messages.

A step per program group plugs in at `_bulk`: a group is finished when
`scheduler.outstanding_seqs(unit.group)` is empty after its last unit's commit. The removal
check (issue 20, `removals.py`) runs once after every updatedAt export, in `_removals`: its
keys-only jobs go through the same quota count and Marketo's same two slots, its records out as
`Rows`, and its snapshots into state through the ledger before a `Commit`.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from marketo_common import MarketoAPIError, MarketoError
from marketo_common.export_files import ExportDownloader
from marketo_common.program_member_export import ExportError, ExportFileError, ProgramMemberExports

from tap_marketo_members import export_metrics
from tap_marketo_members.parsing import CHUNK_ROWS, MemberFileParser
from tap_marketo_members.plan import PlanInputs, render
from tap_marketo_members.quota import ExportJobLists, quota_day, quota_reset
from tap_marketo_members.removals import (
    KEYS_ONLY_FIELDS,
    STATE_KEY,
    RemovalCheck,
    due_programs,
    start_check,
)
from tap_marketo_members.rest_members import MembershipLimitError, ProgramMemberQuery
from tap_marketo_members.scheduler import (
    MB,
    ExportScheduler,
    ExportUnit,
    QuotaReachedError,
    quota_stop_reason,
)
from tap_marketo_members.settings import MAX_PROGRAM_IDS_PER_JOB
from tap_marketo_members.windows import iso, parse_iso, plan_windows

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Iterable, Iterator, Mapping

    from marketo_common import MarketoClient
    from marketo_common.program_member_export import ExportFile

    from tap_marketo_members.ledger import Ledger
    from tap_marketo_members.scheduler import ExportJob
    from tap_marketo_members.settings import TapSettings

BULK_UNAVAILABLE_CODES = frozenset({"603", "610"})  # access denied / not found on /bulk


@dataclass(frozen=True)
class Rows:
    """One window's (or file's) rows, in non-empty lists; the next event comes once consumed.

    Lists, not single rows: the fast writer serialises a list in one C-level call (measured
    2026-12-01 on 1,000,000 members: 4.7 -> 4.1 s of parsing and writing).
    """

    chunks: Iterable[list[dict]]

    @classmethod
    def of(cls, records: Iterable[dict], size: int = CHUNK_ROWS) -> Rows:
        """Rows from single records (REST pages, removal diffs), cut into lists of `size`."""
        it = iter(records)
        return cls(iter(lambda: list(itertools.islice(it, size)), []))


@dataclass(frozen=True)
class Commit:
    """Every row before this is out; `bookmark` is where the programs' bookmarks moved (if)."""

    program_ids: tuple[int, ...]
    bookmark: str | None = None


Event = Rows | Commit


class ExportEngine:
    """Exports the members of many programs, up to 10 per job, window by window."""

    def __init__(
        self,
        client: MarketoClient,
        settings: TapSettings,
        ledger: Ledger,
        *,
        properties: Mapping[str, Any],
        fields: list[str],
        member_field_names: Iterable[str],
        created_at: Mapping[int, str],
        logger: logging.Logger,
        checkpoint: Callable[[], None] = lambda: None,
        row_structs: bool = False,
    ) -> None:
        self.client = client
        self.row_structs = row_structs  # export rows as Structs for the RECORD-line writer
        self.settings = settings
        self.ledger = ledger
        self.properties = properties
        self.fields = fields
        self.member_field_names = set(member_field_names)
        self.created_at = dict(created_at)
        self.logger = logger
        self._checkpoint = checkpoint  # write STATE now (jobs in flight changed)
        self.jobs_created = 0
        self._removal_jobs = 0

    @property
    def incremental(self) -> bool:
        """Bookmarks are kept (INCREMENTAL replication)."""
        return self.ledger.incremental

    # ----------------------------------------------------------------- planning

    def plan(self, program_ids: list[int], upper: str | None) -> list[ExportUnit]:
        """Group programs sharing a bookmark, 10 per job; one unit per window (or one full).

        A first sync (no bookmark) groups programs by age; where start_date predates every
        program of a group, no member can have changed before it, so the group is one full
        export kept from start_date locally instead of a window per month since start_date.
        """
        ledger = self.ledger
        by_start: dict[tuple[str | None, bool], list[int]] = {}
        for pid in program_ids:
            saved = ledger.saved_bookmark(pid) if self.incremental else None
            start = saved or (ledger.bookmark(pid) if self.incremental else None)
            by_start.setdefault((start, saved is None), []).append(pid)
        created = self.created_at
        units: list[ExportUnit] = []
        group = 0
        for (start, first), pids in by_start.items():
            if first:
                pids.sort(key=lambda p: (p not in created, created.get(p, "")))
            for i in range(0, len(pids), MAX_PROGRAM_IDS_PER_JOB):
                chunk = tuple(pids[i : i + MAX_PROGRAM_IDS_PER_JOB])
                if (
                    upper is None
                    or start is None
                    or self.settings.updated_at_filter == "off"
                    or (first and self._predates_programs(start, chunk))
                ):
                    if start is not None and upper is not None and start >= upper:
                        continue
                    units.append(ExportUnit(group, 0, chunk, upper=upper, lower=start))
                else:
                    windows = plan_windows(
                        parse_iso(start), parse_iso(upper), self.settings.window_days
                    )
                    units.extend(
                        ExportUnit(
                            group,
                            seq,
                            chunk,
                            upper=w.end_iso,
                            lower=w.start_iso,
                            server_filter=w.filter_bounds(),
                        )
                        for seq, w in enumerate(windows)
                    )
                group += 1
        return units

    def _predates_programs(self, start: str, program_ids: tuple[int, ...]) -> bool:
        """start_date is no later than every program's createdAt (all of them known)."""
        created = [self.created_at.get(pid) for pid in program_ids]
        return all(created) and start <= min(iso(parse_iso(c)) for c in created)  # type: ignore[arg-type]

    def rest_start(self, program_id: int) -> str | None:
        """A first REST sync starts no earlier than the program's createdAt."""
        start = self.ledger.bookmark(program_id)
        created = self.created_at.get(program_id)
        if start and created and not self.ledger.saved_bookmark(program_id):
            return max(start, iso(parse_iso(created)))
        return start

    def rest_programs(self, program_ids: list[int], *, force: bool = False) -> list[int]:
        """Programs read through the REST query (`rest_fallback` and `_max_members`)."""
        mode = "always" if force else self.settings.rest_fallback
        if mode == "never" or not self.incremental:
            return []
        chosen = []
        for pid in program_ids:
            if self.ledger.bookmark(pid) is None:
                continue  # the REST query needs an updatedAt window to start from
            if mode == "always":
                chosen.append(pid)
                continue
            known = self.ledger.member_count(pid)
            limit = self.settings.rest_fallback_max_members
            if limit and known is not None and known <= limit:
                chosen.append(pid)
        if chosen:
            self.logger.info("Reading programs %s through the REST query", chosen)
        return chosen

    def plan_lines(self, program_ids: list[int]) -> list[str]:
        """The next run's plan (`plan_only`), computed without creating any export job.

        The local clock stands in for Marketo's (the clock probe is an export job).
        """
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        upper = iso(now) if self.incremental else None
        rest_ids = self.rest_programs(program_ids)
        units = self.plan([pid for pid in program_ids if pid not in rest_ids], upper)
        members, per_member, counted_with = self.ledger.sizes(program_ids)
        removal_due = (
            due_programs(
                self.ledger.removal_snapshots(),
                program_ids,
                iso(now),
                interval_hours=self.settings.removal_check_interval_hours,
                filters=self.settings.member_filter.fingerprint,
            )
            if self.settings.detect_removals
            else []
        )
        inputs = PlanInputs(
            members=members,
            bytes_per_member=per_member,
            counted_with=counted_with,
            quota_bytes=self.settings.daily_export_quota_mb * MB,
            # The job lists are reads, not jobs: plan_only reads them.
            used_today_bytes=self._used_today(
                ExportJobLists(self.client, self.logger), quota_day()
            ),
            concurrency=self.settings.max_concurrent_exports,
            now=iso(now),
            resets_at=iso(quota_reset(now)),
            removal_due=tuple(removal_due),
            keys_bytes_per_member=self.ledger.keys_bytes_per_member(),
        )
        return render(units, rest_ids, inputs)

    def _log_plan(self, units: list[ExportUnit]) -> None:
        """The export plan, before its first job: groups of programs and their windows."""
        groups: dict[int, list[ExportUnit]] = {}
        for unit in units:
            groups.setdefault(unit.group, []).append(unit)
        self.logger.info(
            "program_members plan: %d export jobs in %d groups", len(units), len(groups)
        )
        for group, members in groups.items():
            ids = ",".join(str(pid) for pid in members[0].program_ids)
            first = members[0]
            if first.server_filter is None:
                kept = f", kept from {first.lower}" if first.lower else ""
                self.logger.info("  group %d: programs %s, full export%s", group, ids, kept)
                continue
            self.logger.info(
                "  group %d: programs %s, %d updatedAt windows %s..%s",
                group,
                ids,
                len(members),
                first.lower,
                members[-1].upper,
            )

    # ----------------------------------------------------------------- the run

    def events(self, program_ids: list[int]) -> Iterator[Event]:
        """Export every program: rows window by window, a commit after each window."""
        exports = ProgramMemberExports(self.client)
        today = quota_day()
        lists = ExportJobLists(self.client, self.logger)
        used = self._used_today(lists, today)
        quota = self.settings.daily_export_quota_mb * MB
        if used >= quota:
            # Before any job, even the clock probe: Marketo refuses creating jobs then, too.
            self._stop_for_quota(quota_stop_reason(quota, used))
            return
        upper, bulk_available = self._upper_bound(exports, program_ids[0])
        now = upper or iso(dt.datetime.now(dt.timezone.utc))
        rest_ids = self.rest_programs(program_ids, force=not bulk_available)
        bulk_ids = [pid for pid in program_ids if pid not in rest_ids]
        too_large: list[int] = []  # REST refused them (1003 total membership): bulk instead
        with (
            self._scheduler(exports, used, lists) as scheduler,
            ExportDownloader(
                exports,
                logger=self.logger,
                on_downloaded=export_metrics.downloaded,
                prefix="tap-marketo-members-",
            ) as downloader,
        ):
            scheduler.cancel_left_over(self.ledger.jobs_left_over())
            removals = (
                self._start_removal_check(downloader, program_ids, now, bulk_available)
                if self.settings.detect_removals
                else None
            )
            try:
                if rest_ids:
                    yield from self._rest(rest_ids, upper, too_large, bulk_available=bulk_available)
                units = self.plan([*bulk_ids, *too_large], upper)
                self._log_plan(units)
                yield from self._bulk(units, scheduler, downloader, today)
                if removals:  # after every member this run exported is out (removals.py)
                    yield from self._removals(
                        removals,
                        downloader,
                        exports=exports,
                        lists=lists,
                        counted=(today, scheduler.used_bytes),
                        now=now,
                    )
            except QuotaReachedError as exc:
                self._stop_for_quota(str(exc))
            finally:
                self.jobs_created = scheduler.jobs_created + self._removal_jobs
                if removals:
                    removals[0].close()

    def _bulk(
        self,
        units: list[ExportUnit],
        scheduler: ExportScheduler,
        downloader: ExportDownloader,
        today: str,
    ) -> Iterator[Event]:
        # Headers are API names already (columnHeaderNames asks for them): no header map.
        parser = MemberFileParser(self.properties, {}, structs=self.row_structs)
        for unit, job, info in scheduler.run(units):
            if job is not None:
                exported = _file(scheduler, downloader, unit, job, info)
                if exported is None:
                    continue
                try:
                    yield Rows(
                        parser.chunks(
                            exported.path,
                            label=f"export of {unit.describe()}",
                            has_nul=exported.has_nul,
                            lower=unit.lower,
                            upper=unit.upper,
                            program_id=unit.program_ids[0] if len(unit.program_ids) == 1 else None,
                        )
                    )
                finally:
                    exported.path.unlink(missing_ok=True)
            self.ledger.set_bytes_today(today, scheduler.used_bytes)
            self.ledger.record_file(unit, info)
            bookmark = self.ledger.window_done(unit, scheduler.outstanding_seqs(unit.group))
            yield Commit(unit.program_ids, bookmark)

    # ----------------------------------------------------------------- removals (issue 20)

    def _start_removal_check(
        self, downloader: ExportDownloader, program_ids: list[int], now: str, bulk: bool
    ) -> tuple[RemovalCheck, list[int]] | None:
        """This run's removal check and its due programs (None: none due, or no bulk)."""
        return start_check(
            downloader,
            {STATE_KEY: self.ledger.removal_snapshots()},
            program_ids,
            now,
            interval_hours=self.settings.removal_check_interval_hours,
            filters=self.settings.member_filter.fingerprint,
            bulk_available=bulk,
            logger=self.logger,
        )

    def _removals(
        self,
        removals: tuple[RemovalCheck, list[int]],
        downloader: ExportDownloader,
        *,
        exports: ProgramMemberExports,
        lists: ExportJobLists,
        counted: tuple[str, int],
        now: str,
    ) -> Iterator[Event]:
        """Keys-only snapshots of the due programs; removed members out, then the snapshots.

        The keys-only jobs start from today's bytes as counted so far (`counted`) and stop at the
        same quota (QuotaReachedError, raised here, before any removal row); they run after the
        updatedAt jobs left Marketo's slots. The new snapshots go into state only after the
        removal rows are written (the `Commit` after the `Rows`).
        """
        check, due = removals
        today, used = counted
        sizes = [0, 0]  # bytes and members of the keys-only files, for plan_only
        with self._scheduler(exports, used, lists, fields=list(KEYS_ONLY_FIELDS)) as keys:
            try:
                check.load(self._key_files(keys, check.units(due), downloader, sizes), now)
            finally:
                self._removal_jobs += keys.jobs_created
                self.ledger.set_bytes_today(today, keys.used_bytes)
        self.ledger.record_keys_files(*sizes)
        yield Rows.of(check.diff(now))
        self.ledger.set_removal_snapshots(check.committed())
        yield Commit(tuple(due))

    @staticmethod
    def _key_files(
        keys: ExportScheduler,
        units: list[ExportUnit],
        downloader: ExportDownloader,
        sizes: list[int],
    ) -> Iterator[tuple[ExportUnit, ExportFile | None, dict[str, Any]]]:
        """Each finished keys-only job's file (None: nothing to export), deleted once read."""
        for unit, job, info in keys.run(units):
            if job is None:
                yield unit, None, info
                continue
            exported = _file(keys, downloader, unit, job, info)
            if exported is None:
                continue
            sizes[0] += exported.size
            sizes[1] += int(info.get("numberOfRecords") or 0)
            try:
                yield unit, exported, info
            finally:
                exported.path.unlink(missing_ok=True)

    def _rest(
        self,
        program_ids: list[int],
        upper: str | None,
        too_large: list[int],
        *,
        bulk_available: bool,
    ) -> Iterator[Event]:
        """Each program window by window; one the query refuses whole goes to `too_large`."""
        query = ProgramMemberQuery(
            self.client,
            member_fields=[f for f in self.fields if f in self.member_field_names],
            lead_fields=[f for f in self.fields if f not in self.member_field_names],
            member_filter=self.settings.member_filter,
            logger=self.logger,
        )
        end = parse_iso(upper) if upper else dt.datetime.now(dt.timezone.utc)
        for pid in program_ids:
            start = self.rest_start(pid)
            if start is None:
                self.logger.warning("Program %s: no bookmark or start_date; skipped by REST", pid)
                continue
            try:
                for window in query.windows(parse_iso(start), end, self.settings.window_days):
                    rows = iter(query.members(pid, window))
                    # The first page is read here: a query refused whole (1003) is this
                    # method's to handle, before any row of the program goes out.
                    first = next(rows, None)
                    if first is not None:
                        yield Rows.of(itertools.chain((first,), rows))
                    self.ledger.advance(pid, window.end_iso)
                    yield Commit((pid,), window.end_iso)
            except MembershipLimitError as exc:
                if not bulk_available:
                    msg = (
                        f"Program {pid}: {exc}, and bulk export is not available on this "
                        "subscription (603/610): ask Marketo to enable Bulk Extract for this "
                        "API user, or leave this program out of program_ids"
                    )
                    raise ExportError(msg) from exc
                self.logger.warning("Program %s: %s; exporting it through bulk instead", pid, exc)
                too_large.append(pid)

    def _upper_bound(
        self, exports: ProgramMemberExports, program_id: int
    ) -> tuple[str | None, bool]:
        """The run's upper edge on Marketo's clock (None for FULL_TABLE); and is bulk usable."""
        if not self.incremental:
            return None, True
        try:
            return self._marketo_now(exports, program_id), True
        except MarketoAPIError as exc:
            if exc.code not in BULK_UNAVAILABLE_CODES or self.settings.rest_fallback == "never":
                raise
            self.logger.warning(
                "Bulk export unavailable (%s); reading programs through the REST query", exc
            )
            return iso(dt.datetime.now(dt.timezone.utc)), False

    def _marketo_now(self, exports: ProgramMemberExports, program_id: int) -> str:
        """Marketo's clock, read from a throwaway job's createdAt (then cancelled).

        Window edges must be on the server's clock: a local clock that runs behind would skip
        rows, one that runs ahead would commit a bookmark past rows not yet exported.
        """
        created = exports.create(["leadId"], [program_id])
        try:
            exports.cancel(str(created["exportId"]))
        except MarketoError as exc:
            self.logger.debug("Could not cancel clock probe job: %s", exc)
        stamp = created.get("createdAt")
        if not stamp:
            return iso(dt.datetime.now(dt.timezone.utc))
        return iso(parse_iso(str(stamp)))

    def _used_today(self, lists: ExportJobLists, today: str) -> int:
        """Today's export bytes: the job lists, or this tap's own count if that is higher."""
        counted = self.ledger.bytes_today(today)
        listed = lists.used_today()
        self.logger.info(
            "Export quota today: %.1f MB in this API user's job lists, %.1f MB counted by this "
            "tap; daily_export_quota_mb %g",
            listed / MB,
            counted / MB,
            self.settings.daily_export_quota_mb,
        )
        return max(listed, counted)

    def _stop_for_quota(self, reason: str) -> None:
        self.logger.warning(
            "Stopping program_members cleanly: %s. State is saved up to the last finished "
            "window; the quota resets at midnight US Central time (%s); rerun after that.",
            reason,
            iso(quota_reset()),
        )

    def _scheduler(
        self,
        exports: ProgramMemberExports,
        used: int,
        lists: ExportJobLists,
        fields: list[str] | None = None,
    ) -> ExportScheduler:
        settings = self.settings
        fields = fields or self.fields

        def jobs_changed(ids: list[str]) -> None:
            # Saved at once, so a run killed outright has its jobs cancelled by the next one.
            self.ledger.jobs_in_flight(ids)
            self._checkpoint()

        return ExportScheduler(
            exports,
            fields=fields,
            column_header_names={name: name for name in fields},
            max_concurrent_exports=settings.max_concurrent_exports,
            poll_interval=settings.poll_interval_seconds,
            job_timeout=settings.job_timeout_minutes * 60,
            quota_bytes=settings.daily_export_quota_mb * MB,
            used_bytes=used,
            updated_at_filter=settings.updated_at_filter,
            member_filter=settings.member_filter.export_filter(),
            logger=self.logger,
            on_jobs_changed=jobs_changed,
            quota_used=lists.used_today,
        )


def _file(
    scheduler: ExportScheduler,
    downloader: ExportDownloader,
    unit: ExportUnit,
    job: ExportJob,
    info: dict[str, Any],
) -> ExportFile | None:
    """The job's verified file; None when it failed twice and the unit is created again."""
    try:
        return downloader.file(job.export_id, info, job.seconds)
    except ExportFileError as exc:
        if scheduler.create_again(unit, exc):
            return None
        raise
