"""Streams: programs (parent), program_members (bulk export), and the two field-schema tables."""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk import typing as th
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.singerlib.catalog import REPLICATION_INCREMENTAL

from tap_marketo_members.client import MarketoStream, PagedFieldsStream
from tap_marketo_members.engine import ExportEngine, Rows
from tap_marketo_members.ledger import Ledger
from tap_marketo_members.removals import DELETED_AT
from tap_marketo_members.schema import MEMBER_KEY_FIELDS, MEMBER_REPLICATION_KEY
from tap_marketo_members.sdk import GroupedChildrenParent, PartitionGroupStream
from tap_marketo_members.windows import iso, parse_iso
from tap_marketo_members.writers import BatchFiles, RecordLines, RecordWriter, SdkRecords

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from singer_sdk.helpers import types

    from tap_marketo_members.sdk import BatchConfig

PROGRAMS_PATH = "/rest/asset/v1/programs.json"
PROGRAMS_PAGE = 200  # Asset API maxReturn limit


@dataclass
class ProgramCatalog:
    """The programs read this run: `program_members`' partitions, and their createdAt."""

    program_ids: list[int] = field(default_factory=list)
    created_at: dict[int, str] = field(default_factory=dict)

    def add(self, program: types.Record) -> None:
        """One program the `programs` stream read (its createdAt bounds a first sync)."""
        if program.get("createdAt"):
            self.created_at[int(program["id"])] = str(program["createdAt"])

    def add_partition(self, context: types.Context) -> None:
        """One program to export members of (one not filtered out by a stream map)."""
        pid = int(context["programId"])
        if pid not in self.program_ids:
            self.program_ids.append(pid)


class ProgramsStream(GroupedChildrenParent, MarketoStream):
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

    def get_records(self, context: types.Context | None) -> Iterator[dict[str, Any]]:  # noqa: ARG002
        """All programs (offset paging), or only `program_ids` when set."""
        self.catalog.program_ids.clear()
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
        self.catalog.add(record)
        return {"programId": record["id"]}

    def add_child_partition(self, context: types.Context) -> None:
        """A `program_members` partition: its program is exported after this stream."""
        self.catalog.add_partition(context)

    @property
    def catalog(self) -> ProgramCatalog:
        """The programs read this run, shared with `program_members`."""
        return self.marketo_tap.program_catalog


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


class ProgramMembersStream(PartitionGroupStream, MarketoStream):
    """Program members through Bulk Program Member Extract, schema from describe.

    Its partitions are the programs `programs` emitted; they sync together (the export engine
    puts up to 10 programs in a job), after `programs` (see `sdk.GroupedChildrenParent`).
    """

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
        self.records_written = 0
        self.used_fast_path: bool | None = None

    # ----------------------------------------------------------------- SDK hooks

    @property
    def partitions(self) -> list[dict] | None:
        """One partition per program read this run (with this run's member filters)."""
        ledger = self.ledger()
        return [ledger.context(pid) for pid in self.catalog.program_ids] or None

    def get_replication_key_signpost(self, context: types.Context | None = None) -> None:  # noqa: ARG002
        """Bookmarks are window edges chosen against Marketo's clock, not a local signpost."""
        return

    def get_records(self, context: types.Context | None) -> Iterable[dict[str, Any]]:
        """Not used: `sync_partitions` runs the export jobs for all partitions together."""
        raise NotImplementedError(context)

    def sync_partitions(self, *, write_messages: bool = True) -> None:
        """RECORD output: every partition through the export engine."""
        writer = self._record_writer() if write_messages else SdkRecords(lambda _: None)
        for _ in self._export(writer):
            pass  # record writers close no batch files

    def get_batches(
        self,
        batch_config: BatchConfig,
        context: types.Context | None = None,  # noqa: ARG002
    ) -> Iterator[tuple[Any, list[str]]]:
        """Rows go from each export file straight into batch files, one BATCH message each.

        The SDK writes each BATCH message as this yields; a window's bookmark is committed
        only after its files were yielded, so a STATE never covers a row whose file was not
        announced.
        """
        if not self.fast_path_possible() or self.ABORT_AT_RECORD_COUNT is not None:
            self.logger.info(
                "program_members: %s, so members go out as RECORD lines, not BATCH files",
                "a record limit applies (dry run)"
                if self.ABORT_AT_RECORD_COUNT is not None
                else "stream maps or flattening apply",
            )
            yield from ((batch_config.encoding, m) for m in self._export(self._record_writer()))
            return
        files = BatchFiles(
            batch_config,
            tap_name=self.tap_name,
            stream_name=self.name,
            properties=self.effective_schema["properties"],
        )
        self.used_fast_path = True
        for manifest in self._export(files):
            yield batch_config.encoding, manifest
        self.logger.info(
            "program_members: %d BATCH files (%s%s), %d bytes of rows",
            files.files,
            files.format,
            ", gzip" if files.gzip else "",
            files.bytes_written,
        )

    # ----------------------------------------------------------------- the engine

    @property
    def catalog(self) -> ProgramCatalog:
        """The programs the `programs` stream read this run."""
        return self.marketo_tap.program_catalog

    @property
    def incremental(self) -> bool:
        """INCREMENTAL unless the catalog forces FULL_TABLE."""
        return self.replication_method == REPLICATION_INCREMENTAL

    def ledger(self) -> Ledger:
        """This stream's bookmarks, over the SDK's state partitions."""
        return Ledger(
            self.get_context_state,
            self.stream_state,
            replication_key=MEMBER_REPLICATION_KEY,
            incremental=self.incremental,
            start_date=self.settings.start_date,
            member_filters=self.settings.member_filter.fingerprint,
        )

    def engine(self, *, row_structs: bool = False) -> ExportEngine:
        """The export engine for this run's selection and state."""
        return ExportEngine(
            self.marketo,
            self.settings,
            self.ledger(),
            properties=self.effective_schema["properties"],
            fields=self.export_fields(),
            member_field_names=self.member_field_names,
            created_at=self.catalog.created_at,
            logger=self.logger,
            checkpoint=self.write_state,
            row_structs=row_structs,
        )

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

    def plan_lines(self) -> list[str]:
        """The next run's plan (`plan_only`), computed without creating any export job."""
        return self.engine().plan_lines(list(self.catalog.program_ids))

    def _export(self, writer: RecordWriter) -> Iterator[list[str]]:
        """Engine events to output: rows to `writer`, commits to STATE; yields closed files."""
        program_ids = list(self.catalog.program_ids)
        if not program_ids:
            self.logger.info("No programs to export")
            return
        engine = self.engine(row_structs=writer.TAKES_STRUCTS)
        limit = self.ABORT_AT_RECORD_COUNT
        counter = self.get_record_counter()
        # closing(): whatever stops this loop (a dry run's limit, a signal while rows are
        # written) closes the engine at once, which cancels its unfinished export jobs.
        with self.get_sync_timer(), counter, closing(engine.events(program_ids)) as events:
            try:
                for event in events:
                    if isinstance(event, Rows):
                        chunks = event.chunks
                        if limit is not None:
                            chunks = self._limited(chunks, limit, writer)
                        written = writer.write(chunks)
                        self.records_written += written
                        counter.increment(written)
                        self.state_changed()
                        if isinstance(writer, BatchFiles):
                            yield from writer.take_manifests()
                    else:
                        self.write_state()
            finally:
                writer.flush()
        self.logger.info(
            "program_members: %d records from %d export jobs (%s path)",
            self.records_written,
            engine.jobs_created,
            "fast" if self.used_fast_path else "SDK",
        )
        self.write_pending_state()

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

    def _record_writer(self) -> RecordWriter:
        """RECORD lines: the fast writer, or the SDK's when stream maps change records."""
        if self.fast_path_possible():
            self.used_fast_path = True
            return RecordLines(self.name, self.stream_version)
        self.used_fast_path = False
        self.logger.info("program_members: stream maps in use, records go through the SDK")
        return SdkRecords(self.write_record)

    def _limited(
        self, chunks: Iterable[list[dict]], limit: int, writer: RecordWriter
    ) -> Iterator[list[dict]]:
        """The rows up to the record limit (a dry run's), then the SDK's limit check."""
        seen = 0
        for chunk in chunks:
            room = limit - self.records_written - seen
            if room < len(chunk):
                if room > 0:
                    yield chunk[:room]
                writer.flush()
                self.check_record_limit(limit)  # raises: the SDK's abort
                return
            seen += len(chunk)
            yield chunk
