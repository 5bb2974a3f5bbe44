"""Streams: programs (parent), program_members (bulk export), and the two field-schema tables."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, ClassVar

from marketo_common import MarketoAPIError, MarketoError
from singer_sdk import typing as th
from singer_sdk.exceptions import AbortedSyncFailedException, AbortedSyncPausedException
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.singerlib.catalog import REPLICATION_INCREMENTAL

from tap_marketo_members.client import MarketoStream, PagedFieldsStream
from tap_marketo_members.exports import ExportError, ExportFile, ProgramMemberExports
from tap_marketo_members.output import BatchFiles, RecordLines, SdkRecords
from tap_marketo_members.parsing import MemberFileParser
from tap_marketo_members.plan import PlanInputs, render
from tap_marketo_members.quota import ExportJobLists, quota_day, quota_reset
from tap_marketo_members.removals import DELETED_AT, KEYS_ONLY_FIELDS, start_check
from tap_marketo_members.rest_members import MembershipLimitError, ProgramMemberQuery
from tap_marketo_members.scheduler import (
    MB,
    ExportScheduler,
    ExportUnit,
    QuotaReachedError,
    quota_stop_reason,
)
from tap_marketo_members.schema import MEMBER_KEY_FIELDS, MEMBER_REPLICATION_KEY
from tap_marketo_members.settings import MAX_PROGRAM_IDS_PER_JOB
from tap_marketo_members.windows import iso, parse_iso, plan_windows

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from singer_sdk.helpers import types

    from tap_marketo_members.sdk import BatchConfig

    Output = RecordLines | SdkRecords | BatchFiles
    WindowWriter = Callable[[Iterable[dict]], Iterator[list[str]]]

PROGRAMS_PATH = "/rest/asset/v1/programs.json"
PROGRAMS_PAGE = 200  # Asset API maxReturn limit
BULK_UNAVAILABLE_CODES = frozenset({"603", "610"})  # access denied / not found on /bulk


class ProgramsStream(MarketoStream):
    """Programs from the Asset API; parent of `program_members` (one partition per program)."""

    name = "programs"
    primary_keys: ClassVar[list[str]] = ["id"]
    schema = th.PropertiesList(
        th.Property("id", th.IntegerType, required=True),
        th.Property("name", th.StringType),
        th.Property("description", th.StringType),
        th.Property("type", th.StringType),
        th.Property("channel", th.StringType),
        th.Property("status", th.StringType),
        th.Property(
            "progressionStatuses",
            th.ArrayType(
                th.ObjectType(
                    th.Property("name", th.StringType),
                    th.Property("step", th.IntegerType),
                    th.Property("success", th.BooleanType),
                    additional_properties=True,
                )
            ),
            description="The channel's progression statuses (the values of statusName)",
        ),
        th.Property(
            "tags",
            th.ArrayType(
                th.ObjectType(
                    th.Property("tagType", th.StringType),
                    th.Property("tagValue", th.StringType),
                    additional_properties=True,
                )
            ),
        ),
        th.Property(
            "costs",
            th.ArrayType(
                th.ObjectType(
                    th.Property("startDate", th.StringType),
                    th.Property("cost", th.NumberType),
                    th.Property("note", th.StringType),
                    additional_properties=True,
                )
            ),
        ),
        th.Property("sfdcId", th.StringType),
        th.Property("sfdcName", th.StringType),
        th.Property("munchkinId", th.StringType),
        th.Property("workspace", th.StringType),
        th.Property("url", th.StringType),
        th.Property(
            "folder",
            th.ObjectType(
                th.Property("type", th.StringType),
                th.Property("value", th.IntegerType),
                th.Property("folderName", th.StringType),
            ),
        ),
        th.Property("createdAt", th.DateTimeType),
        th.Property("updatedAt", th.DateTimeType),
    ).to_dict()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._member_contexts: list[dict] = []
        self._created_at: dict[int, str] = {}

    def get_records(self, context: types.Context | None) -> Iterator[dict[str, Any]]:  # noqa: ARG002
        """All programs (offset paging), or only `program_ids` when set."""
        wanted = set(self.settings.program_ids or ())
        seen: set[int] = set()
        offset = 0
        while True:
            envelope = self.marketo.get(
                PROGRAMS_PATH, {"maxReturn": PROGRAMS_PAGE, "offset": offset}
            )
            page = envelope.get("result") or []
            for program in page:
                if wanted and program.get("id") not in wanted:
                    continue
                seen.add(program["id"])
                yield program
            if len(page) < PROGRAMS_PAGE:
                break
            offset += len(page)
        missing = sorted(wanted - seen)
        if missing:
            self.logger.warning("program_ids not found in Marketo: %s", missing)

    def post_process(
        self,
        row: types.Record,
        context: types.Context | None = None,  # noqa: ARG002
    ) -> types.Record | None:
        """Asset API dates look like `2024-01-02T03:04:05Z+0000`; make them ISO-8601."""
        for key in ("createdAt", "updatedAt"):
            value = row.get(key)
            if isinstance(value, str):
                row[key] = iso(parse_iso(value))
        return row

    def get_child_context(
        self,
        record: types.Record,
        context: types.Context | None,  # noqa: ARG002
    ) -> types.Context | None:
        """Each program is one `program_members` partition; its createdAt bounds its windows."""
        if record.get("createdAt"):
            self._created_at[int(record["id"])] = str(record["createdAt"])
        return {"programId": record["id"]}

    def _sync_children(self, child_context: types.Context | None) -> None:
        """Collect partitions: members are exported for many programs per job, after the loop."""
        if child_context is not None:
            self._member_contexts.append(dict(child_context))

    def _sync_records(
        self, context: types.Context | None = None, *, write_messages: bool = True
    ) -> Iterator[dict]:
        self._member_contexts = []
        try:
            yield from super()._sync_records(context, write_messages=write_messages)
        except (AbortedSyncFailedException, AbortedSyncPausedException):
            self._sync_member_partitions()  # dry runs stop the parent early; children still run
            raise
        self._sync_member_partitions()

    def _sync_member_partitions(self) -> None:
        contexts, self._member_contexts = self._member_contexts, []
        for child in self.child_streams:
            if isinstance(child, ProgramMembersStream) and child.selected and contexts:
                try:
                    child.sync_programs(contexts, created_at=self._created_at)
                except (AbortedSyncFailedException, AbortedSyncPausedException):
                    continue


class ProgramMemberFieldsStream(PagedFieldsStream):
    """Program member field metadata, standard and custom."""

    name = "program_member_fields"
    path = "/rest/v1/programs/members/schema/fields.json"
    schema = th.PropertiesList(
        th.Property("name", th.StringType, required=True),
        th.Property("displayName", th.StringType),
        th.Property("description", th.StringType),
        th.Property("dataType", th.StringType),
        th.Property("length", th.IntegerType),
        th.Property("isHidden", th.BooleanType),
        th.Property("isHtmlEncodingInEmail", th.BooleanType),
        th.Property("isSensitive", th.BooleanType),
        th.Property("isCustom", th.BooleanType),
        th.Property("isApiCreated", th.BooleanType),
        th.Property("updateable", th.BooleanType),
        th.Property("crmManaged", th.BooleanType),
        additional_properties=True,
    ).to_dict()


class LeadFieldsStream(PagedFieldsStream):
    """Lead field metadata, standard and custom."""

    name = "lead_fields"
    path = "/rest/v1/leads/schema/fields.json"
    schema = ProgramMemberFieldsStream.schema


class ProgramMembersStream(MarketoStream):
    """Program members through Bulk Program Member Extract, schema from describe."""

    name = "program_members"
    parent_stream_type = ProgramsStream
    primary_keys: ClassVar[list[str]] = list(MEMBER_KEY_FIELDS)
    replication_key = MEMBER_REPLICATION_KEY
    # memberFilters only when status_names/is_exhausted/nurture_cadence are set: each filter set
    # keeps its own bookmarks, and state without filters keeps its earlier shape.
    state_partitioning_keys: ClassVar[list[str]] = ["programId", "memberFilters"]
    # Values are typed once per column by precompiled converters; no second pass.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(
        self, *args: Any, member_field_names: Iterable[str] = MEMBER_KEY_FIELDS, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.member_field_names = list(member_field_names)
        self._program_contexts: list[dict] = []
        self._created_at: dict[int, str] = {}
        self.records_written = 0
        self.used_fast_path: bool | None = None

    # ----------------------------------------------------------------- SDK hooks

    def sync_programs(self, contexts: list[dict], created_at: dict[int, str] | None = None) -> None:
        """Sync every program partition at once, so jobs can hold up to 10 programs each.

        `created_at` (program id -> Asset API createdAt) bounds a first sync: no member changed
        before its program existed.
        """
        self._program_contexts = contexts
        self._created_at = dict(created_at or {})
        try:
            self.sync()
        finally:
            self._program_contexts = []

    def get_replication_key_signpost(self, context: types.Context | None = None) -> None:  # noqa: ARG002
        """Bookmarks are window edges chosen against Marketo's clock, not a local signpost."""
        return

    def get_records(self, context: types.Context | None) -> Iterable[dict[str, Any]]:
        """Not used: `_sync_records` drives the export jobs for all partitions together."""
        raise NotImplementedError(context)

    def _sync_records(
        self, context: types.Context | None = None, *, write_messages: bool = True
    ) -> Iterator[dict]:
        output = self._record_output() if write_messages else SdkRecords(lambda _: None)
        for _ in self._export(context, output):
            pass  # record outputs finish no batch files
        yield from ()

    def get_batches(
        self, batch_config: BatchConfig, context: types.Context | None = None
    ) -> Iterator[tuple[Any, list[str]]]:
        """Rows go from each export file straight into batch files, one BATCH message each.

        The SDK writes each BATCH message (and a STATE that carries no newer bookmark) as this
        yields; a window's bookmark is committed only after its last file was yielded, so a
        STATE never covers a row whose file was not announced.
        """
        if not self.fast_path_possible() or self.ABORT_AT_RECORD_COUNT is not None:
            self.logger.info(
                "program_members: %s, so members go out as RECORD lines, not BATCH files",
                "a record limit applies (dry run)"
                if self.ABORT_AT_RECORD_COUNT is not None
                else "stream maps or flattening apply",
            )
            yield from (
                (batch_config.encoding, m) for m in self._export(context, self._record_output())
            )
            return
        files = BatchFiles(
            batch_config,
            tap_name=self.tap_name,
            stream_name=self.name,
            properties=self.effective_schema["properties"],
        )
        self.used_fast_path = True
        for manifest in self._export(context, files):
            yield batch_config.encoding, manifest
        self.logger.info(
            "program_members: %d BATCH files (%s%s), %d bytes of rows",
            files.files,
            files.format,
            ", gzip" if files.gzip else "",
            files.bytes_written,
        )

    def _export(self, context: types.Context | None, output: Output) -> Iterator[list[str]]:
        contexts = [dict(context)] if context else (self._program_contexts or self.partitions or [])
        if not contexts:
            self.logger.info("No programs to export")
            return
        with self.get_sync_timer():
            yield from self._sync_members(contexts, output)
        self._write_state_message()

    # ----------------------------------------------------------------- planning

    @property
    def incremental(self) -> bool:
        """INCREMENTAL unless the catalog forces FULL_TABLE."""
        return self.replication_method == REPLICATION_INCREMENTAL

    def export_fields(self) -> list[str]:
        """Selected properties (keys and updatedAt always); deselected ones are not exported.

        A field in the catalog that Marketo's describe no longer has (deleted or renamed since
        discovery) is left out with a warning, instead of failing the export with 1003.
        """
        current = self.schema["properties"]
        fields = [
            name
            for name in self.effective_schema["properties"]
            if name != DELETED_AT  # set by removal checks (issue 20), not a Marketo field
            and (
                name in (*MEMBER_KEY_FIELDS, MEMBER_REPLICATION_KEY)
                or self.mask.get(("properties", name), True)
            )
        ]
        gone = [name for name in fields if name not in current]
        if gone:
            self.logger.warning(
                "Fields in the catalog but no longer in Marketo's describe, not exported: %s",
                ", ".join(gone),
            )
        return [name for name in fields if name in current]

    def _partition_state(self, program_id: int) -> dict:
        """The program's state partition for this run's member filters (see `MemberFilter`)."""
        context: dict[str, Any] = {"programId": program_id}
        fingerprint = self.settings.member_filter.fingerprint
        if fingerprint:
            context["memberFilters"] = fingerprint
        return self.get_context_state(context)

    def _saved_bookmark(self, program_id: int) -> str | None:
        value = self._partition_state(program_id).get("replication_key_value")
        return iso(parse_iso(str(value))) if value else None

    def _bookmark(self, program_id: int) -> str | None:
        """Where this program's sync starts: its bookmark, else start_date (None: in full)."""
        saved = self._saved_bookmark(program_id)
        if saved:
            return saved
        if self.settings.start_date:
            return iso(self.settings.start_date)
        return None

    def _rest_start(self, program_id: int) -> str | None:
        """A first REST sync starts no earlier than the program's createdAt."""
        start = self._bookmark(program_id)
        created = self._created_at.get(program_id)
        if start and created and not self._saved_bookmark(program_id):
            return max(start, iso(parse_iso(created)))
        return start

    def _predates_programs(self, start: str, program_ids: tuple[int, ...]) -> bool:
        """start_date is no later than every program's createdAt (all of them known)."""
        created = [self._created_at.get(pid) for pid in program_ids]
        return all(created) and start <= min(iso(parse_iso(c)) for c in created)  # type: ignore[arg-type]

    def _plan(self, program_ids: list[int], upper: str | None) -> list[ExportUnit]:
        """Group programs sharing a bookmark, 10 per job; one unit per window (or one full).

        A first sync (no bookmark) groups programs by age; where start_date predates every
        program of a group, no member can have changed before it, so the group is one full
        export kept from start_date locally instead of a window per month since start_date.
        """
        by_start: dict[tuple[str | None, bool], list[int]] = {}
        for pid in program_ids:
            saved = self._saved_bookmark(pid) if self.incremental else None
            start = saved or (self._bookmark(pid) if self.incremental else None)
            by_start.setdefault((start, saved is None), []).append(pid)
        units: list[ExportUnit] = []
        group = 0
        for (start, first), pids in by_start.items():
            if first:
                pids.sort(key=lambda p: (p not in self._created_at, self._created_at.get(p, "")))
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

    # ----------------------------------------------------------------- sync

    def _sync_members(self, contexts: list[dict], output: Output) -> Iterator[list[str]]:
        """Export every program; yields the manifest of each batch file as it is closed."""
        program_ids = [int(ctx["programId"]) for ctx in contexts]
        fields = self.export_fields()
        parser = MemberFileParser(self.effective_schema["properties"], {f: f for f in fields})
        exports = ProgramMemberExports(self.marketo, logger=self.logger)
        counter = self.get_record_counter()
        emit = self._window_writer(counter, output)
        stream_state = self.stream_state
        today = quota_day()
        lists = ExportJobLists(self.marketo, self.logger)
        used = self._used_today(lists, today)
        if used >= self.settings.daily_export_quota_mb * MB:
            # Before any job, even the clock probe: Marketo refuses creating jobs then, too.
            self._stop_for_quota(quota_stop_reason(self.settings.daily_export_quota_mb * MB, used))
            return
        upper, bulk_available = self._upper_bound(exports, program_ids[0])
        # issue 20 (removals.py): a removal check when detect_removals is on and one is due.
        now = upper or iso(dt.datetime.now(dt.timezone.utc))
        removals = (
            start_check(
                exports,
                stream_state,
                program_ids,
                now,
                interval_hours=self.settings.removal_check_interval_hours,
                filters=self.settings.member_filter.fingerprint,
                bulk_available=bulk_available,
                logger=self.logger,
            )
            if self.settings.detect_removals
            else None
        )
        rest_ids = self._rest_programs(program_ids, force=not bulk_available)
        bulk_ids = [pid for pid in program_ids if pid not in rest_ids]
        too_large: list[int] = []  # REST refused them (1003 total membership): bulk instead

        with self._scheduler(exports, fields, used, lists) as scheduler, counter:
            scheduler.cancel_left_over(stream_state.get("exports_in_progress") or [])
            stream_state["exports_in_progress"] = []
            committed: dict[int, dict[int, str | None]] = {}
            try:
                if rest_ids:
                    yield from self._sync_rest(
                        rest_ids, fields, upper, emit, too_large, bulk_available=bulk_available
                    )
                units = self._plan([*bulk_ids, *too_large], upper)
                self._log_plan(units)
                for unit, exported, info in scheduler.run(units):
                    yield from emit(self._file_records(parser, unit, exported))
                    stream_state["export_bytes_today"] = {
                        "day": today,
                        "bytes": scheduler.used_bytes,
                    }
                    self._commit(unit, info, scheduler, committed)
                if removals:  # issue 20: after every member this run exported is out
                    check, due = removals
                    keys_only = list(KEYS_ONLY_FIELDS)
                    used_now = scheduler.used_bytes
                    with self._scheduler(exports, keys_only, used_now, lists) as keys:
                        yield from emit(check.removed(keys.run(check.units(due)), now))
                    stream_state["export_bytes_today"] = {"day": today, "bytes": keys.used_bytes}
                    check.commit()
                    self._flush_state()
            except QuotaReachedError as exc:
                self._stop_for_quota(str(exc))
            finally:
                output.flush()
                if removals:
                    removals[0].close()
        self.logger.info(
            "program_members: %d records from %d export jobs (%s path)",
            self.records_written,
            scheduler.jobs_created,
            "fast" if self.used_fast_path else "SDK",
        )

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

    def _used_today(self, lists: ExportJobLists, today: str) -> int:
        """Today's export bytes: the job lists, or this tap's own count if that is higher."""
        own = self.stream_state.get("export_bytes_today") or {}
        counted = int(own.get("bytes", 0)) if own.get("day") == today else 0
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
        fields: list[str],
        used: int,
        lists: ExportJobLists,
    ) -> ExportScheduler:
        stream_state = self.stream_state
        settings = self.settings

        def jobs_changed(ids: list[str]) -> None:
            # Saved at once, so a run killed outright has its jobs cancelled by the next one.
            stream_state["exports_in_progress"] = ids
            self._flush_state()

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

    @staticmethod
    def _file_records(
        parser: MemberFileParser, unit: ExportUnit, exported: ExportFile
    ) -> Iterator[dict]:
        return parser.records(
            exported.path,
            label=f"export of {unit.describe()}",
            has_nul=exported.has_nul,
            lower=unit.lower,
            upper=unit.upper,
            program_id=unit.program_ids[0] if len(unit.program_ids) == 1 else None,
        )

    def _commit(
        self,
        unit: ExportUnit,
        info: dict[str, Any],
        scheduler: ExportScheduler,
        committed: dict[int, dict[int, str | None]],
    ) -> None:
        """Advance bookmarks only past windows whose earlier windows are all emitted."""
        if unit.server_filter is None and info.get("numberOfRecords") is not None:
            for pid in unit.program_ids:
                state = self._partition_state(pid)
                state["member_count_max"] = int(info["numberOfRecords"])
                # A job of several programs counts them together: the plan counts it once.
                if len(unit.program_ids) > 1:
                    state["member_count_programs"] = list(unit.program_ids)
                else:
                    state.pop("member_count_programs", None)
        records = _int(info.get("numberOfRecords"))
        size = _int(info.get("fileSize"))
        if records and size is not None:
            # What the next plan_only multiplies by member counts to expect export bytes. An
            # integer: SDK targets read STATE numbers as Decimal and cannot write a fraction back
            # out (target-postgres failed at end of pipe on 290.4).
            for pid in unit.program_ids:
                self._partition_state(pid)["bytes_per_member"] = max(1, round(size / records))
        if not self.incremental or unit.upper is None:
            self._flush_state()
            return
        done = committed.setdefault(unit.group, {})
        done[unit.seq] = unit.upper
        outstanding = scheduler.outstanding_seqs(unit.group)
        ready = [seq for seq in done if not outstanding or seq < min(outstanding)]
        if ready:
            value = max(done[seq] for seq in ready)  # type: ignore[type-var]
            for seq in ready:
                done.pop(seq)
            for pid in unit.program_ids:
                state = self._partition_state(pid)
                state["replication_key"] = self.replication_key
                state["replication_key_value"] = value
        self._flush_state()

    def _flush_state(self) -> None:
        self.state_manager.is_flushed = False
        self._write_state_message()

    # ----------------------------------------------------------------- REST fallback

    def _rest_programs(self, program_ids: list[int], *, force: bool = False) -> list[int]:
        """Programs read through the REST query (`rest_fallback` and `_max_members`)."""
        mode = "always" if force else self.settings.rest_fallback
        if mode == "never" or not self.incremental:
            return []
        chosen = []
        for pid in program_ids:
            if self._bookmark(pid) is None:
                continue  # the REST query needs an updatedAt window to start from
            if mode == "always":
                chosen.append(pid)
                continue
            known = self._partition_state(pid).get("member_count_max")
            limit = self.settings.rest_fallback_max_members
            if limit and known is not None and int(known) <= limit:
                chosen.append(pid)
        if chosen:
            self.logger.info("Reading programs %s through the REST query", chosen)
        return chosen

    def _sync_rest(
        self,
        program_ids: list[int],
        fields: list[str],
        upper: str | None,
        emit: WindowWriter,
        too_large: list[int],
        *,
        bulk_available: bool,
    ) -> Iterator[list[str]]:
        """Each program window by window; one the query refuses whole goes to `too_large`."""
        member_names = set(self.member_field_names)
        query = ProgramMemberQuery(
            self.marketo,
            member_fields=[f for f in fields if f in member_names],
            lead_fields=[f for f in fields if f not in member_names],
            member_filter=self.settings.member_filter,
            logger=self.logger,
        )
        end = parse_iso(upper) if upper else dt.datetime.now(dt.timezone.utc)
        for pid in program_ids:
            start = self._rest_start(pid)
            if start is None:
                self.logger.warning("Program %s: no bookmark or start_date; skipped by REST", pid)
                continue
            try:
                for window in query.windows(parse_iso(start), end, self.settings.window_days):
                    yield from emit(query.members(pid, window))
                    state = self._partition_state(pid)
                    state["replication_key"] = self.replication_key
                    state["replication_key_value"] = window.end_iso
                    self._flush_state()
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

    def plan_lines(self, contexts: list[dict], created_at: dict[int, str]) -> list[str]:
        """The next run's plan (`plan_only`), computed without creating any export job.

        The local clock stands in for Marketo's (the clock probe is an export job).
        """
        self._created_at = dict(created_at)
        program_ids = [int(ctx["programId"]) for ctx in contexts]
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        upper = iso(now) if self.incremental else None
        rest_ids = self._rest_programs(program_ids)
        units = self._plan([pid for pid in program_ids if pid not in rest_ids], upper)
        members: dict[int, int] = {}
        per_member: dict[int, float] = {}
        counted_with: dict[int, tuple[int, ...]] = {}
        for pid in program_ids:
            state = self._partition_state(pid)
            if state.get("member_count_max") is not None:
                members[pid] = int(state["member_count_max"])
            if state.get("bytes_per_member") is not None:
                per_member[pid] = float(state["bytes_per_member"])
            counted_with[pid] = tuple(state.get("member_count_programs") or (pid,))
        inputs = PlanInputs(
            members=members,
            bytes_per_member=per_member,
            counted_with=counted_with,
            quota_bytes=self.settings.daily_export_quota_mb * MB,
            # The job lists are reads, not jobs: plan_only reads them.
            used_today_bytes=self._used_today(
                ExportJobLists(self.marketo, self.logger), quota_day()
            ),
            concurrency=self.settings.max_concurrent_exports,
            now=iso(now),
            resets_at=iso(quota_reset(now)),
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

    # ----------------------------------------------------------------- record output

    def fast_path_possible(self) -> bool:
        """The fast path only when no stream map or flattening changes records."""
        maps = self.stream_maps
        return (
            len(maps) == 1
            and type(maps[0]) is SameRecordTransform
            and maps[0].stream_alias == self.name
            and not maps[0].flattening_enabled
        )

    def _record_output(self) -> Output:
        """RECORD lines: the fast writer, or the SDK's when stream maps change records."""
        if self.fast_path_possible():
            self.used_fast_path = True
            return RecordLines(self.name, self._stream_version)
        self.used_fast_path = False
        self.logger.info("program_members: stream maps in use, records go through the SDK")
        return SdkRecords(self._write_record_message)

    def _window_writer(self, counter: Any, output: Output) -> WindowWriter:
        """Writes one window's rows to `output` and counts them.

        It yields the manifest of each batch file it closes; once exhausted, every row is out.
        """
        limit = self.ABORT_AT_RECORD_COUNT

        def write(records: Iterable[dict]) -> Iterator[list[str]]:
            if limit is not None:
                records = self._limited(records, limit, output)
            written = yield from output.write(records)
            self.records_written += written
            counter.increment(written)
            self.state_manager.is_flushed = False

        return write

    def _limited(self, records: Iterable[dict], limit: int, output: Output) -> Iterator[dict]:
        seen = 0
        for record in records:
            if self.records_written + seen >= limit:
                output.flush()
                self._check_max_record_limit(limit)
            seen += 1  # noqa: SIM113
            yield record


def _int(value: Any) -> int | None:
    try:
        return None if value is None or isinstance(value, bool) else int(value)
    except (TypeError, ValueError):
        return None
