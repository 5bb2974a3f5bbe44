"""target-marketo-ingest: Singer records into Marketo, with an outcome for every record."""

from __future__ import annotations

import contextlib
import copy
import decimal
import json
import logging
import sys
import threading
import time
import typing as t

from singer_sdk import typing as th
from singer_sdk.helpers.capabilities import PluginCapabilities
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.plugin_base import PluginBase
from singer_sdk.target_base import Target

from target_marketo_ingest import batch_files
from target_marketo_ingest.checkpoint import Checkpoints
from target_marketo_ingest.context import FatalError, TargetOptions, WriteContext
from target_marketo_ingest.errors import (
    InputError,
    OutcomeMissingError,
    RecordBeforeSchemaError,
    RejectThresholdError,
    SettingError,
    TargetError,
)
from target_marketo_ingest.mirror import mirror_line  # r17
from target_marketo_ingest.programs import ProgramCatalog
from target_marketo_ingest.reader import SingerLineReader
from target_marketo_ingest.rejects import RejectsFile
from target_marketo_ingest.routing import METHODS, resolve_route, validate_streams_setting
from target_marketo_ingest.sinks import MarketoSink
from target_marketo_ingest.summary import StreamSummary
from target_marketo_ingest.validation import parse_describe

if t.TYPE_CHECKING:
    from pathlib import PurePath

    from target_marketo_ingest.validation import FieldSpec


STREAM_OPTIONS = th.ObjectType(
    th.Property("method", th.StringType(allowed_values=list(METHODS))),
    th.Property("lookup_field", th.StringType, description="Bulk leads: dedupe field (email)."),
    th.Property("list_id", th.IntegerType, description="Bulk leads: static list to add to."),
    th.Property("partition_name", th.StringType, description="Leads/persons partition."),
    th.Property("program_id", th.IntegerType, description="Program members: fixed program."),
    th.Property("status", th.StringType, description="Program members: fixed status."),
    th.Property("program_id_field", th.StringType, description="Record field with programId."),
    th.Property("status_field", th.StringType, description="Record field with the status."),
    th.Property("dedupe_fields", th.ArrayType(th.StringType)),
    th.Property(
        "dedupe_by",
        th.StringType(allowed_values=["dedupeFields", "idField", "marketoGUID"]),
        description="Companies: dedupeFields or idField (idField only with action "
        "updateOnly); custom objects: dedupeFields or marketoGUID.",
    ),
    th.Property(
        "action", th.StringType(allowed_values=["createOnly", "updateOnly", "createOrUpdate"])
    ),
    th.Property("priority", th.StringType(allowed_values=["normal", "high"])),
    th.Property("custom_object_name", th.StringType),
    th.Property("field_map", th.ObjectType(additional_properties=th.StringType)),
    th.Property(  # r17: verify and mirror
        "verify",
        th.BooleanType,
        description="Data Ingestion: read each accepted record back until applied (default on).",
    ),
    th.Property(
        "mirror",
        th.BooleanType,
        description="Program members: the input is each named program's whole membership.",
    ),
    th.Property(
        "max_removals",
        th.NumberType,
        description="Mirror: stop before any change when removals pass this count or fraction.",
    ),
    additional_properties=False,
)

DESCRIBE_PATHS = {
    "leads": "/rest/v1/leads/describe2.json",
    "program_members": "/rest/v1/programs/members/describe.json",
    "companies": "/rest/v1/companies/describe.json",
}
MEMBER_FIELDS_PATH = "/rest/v1/programs/members/schema/fields.json"
AUTH_CODES = frozenset({"601", "602", "603"})
CHECK_EVERY = 4096


class TargetMarketoIngest(Target):
    """Writes streams into Marketo by Bulk Import, Data Ingestion or REST, per stream."""

    name = "target-marketo-ingest"
    default_sink_class = MarketoSink
    message_reader_class = SingerLineReader
    # validate_records, batch_size_rows and load_method do not apply: records are checked per
    # field against Marketo's describe, files roll by bytes, and every write is an upsert.
    capabilities: t.ClassVar[list] = [
        PluginCapabilities.ABOUT,
        PluginCapabilities.BATCH,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.FLATTENING,
        PluginCapabilities.STRUCTURED_LOGGING,
    ]

    config_jsonschema = th.PropertiesList(
        th.Property("client_id", th.StringType, required=True, description="API client id."),
        th.Property(
            "client_secret", th.StringType, required=True, secret=True, description="API secret."
        ),
        th.Property(
            "base_url",
            th.StringType,
            required=True,
            description="REST base URL, e.g. https://123-ABC-456.mktorest.com",
        ),
        th.Property("munchkin_id", th.StringType, description="Munchkin id for Data Ingestion."),
        th.Property(
            "ingestion_base_url",
            th.StringType,
            description="Data Ingestion base URL (default https://mkto-ingestion-api.adobe.io).",
        ),
        th.Property("request_timeout_seconds", th.NumberType, description="HTTP read timeout."),
        th.Property("max_retries", th.IntegerType, description="Retries of retryable failures."),
        th.Property(
            "streams",
            th.ObjectType(additional_properties=STREAM_OPTIONS),
            description=(
                "Stream name or glob -> write method and options. Methods: "
                + ", ".join(METHODS)
                + ". Without an entry, leads/persons -> bulk_leads, program_members -> "
                "bulk_program_members, companies -> ingest_companies."
            ),
        ),
        th.Property(
            "rejects_path",
            th.StringType,
            description="JSONL file for rejected records and warnings (marketo-rejects.jsonl).",
        ),
        th.Property(
            "dry_run",
            th.BooleanType,
            default=False,
            description="Validate and build files and requests; send nothing, emit no STATE.",
        ),
        th.Property(
            "max_import_file_mb",
            th.NumberType(exclusive_minimum=0, maximum=10),
            default=10,
            description="Import files roll just under this size (at most 10).",
        ),
        th.Property(
            "max_concurrent_imports",
            th.IntegerType(minimum=1, maximum=2),
            default=2,
            description="Bulk import jobs in flight (Marketo processes 2 at a time).",
        ),
        th.Property(
            "fail_on_rejects",
            th.CustomType({"type": ["number", "string"]}),
            description=(
                "Exit non-zero when rejects pass this: a count (>= 1) or a fraction of "
                "received records (< 1); 0 fails on any reject. Unset: never."
            ),
        ),
        th.Property(
            "unknown_fields",
            th.StringType(allowed_values=["error", "drop"]),
            default="error",
            description="Fields Marketo does not know: error (reject/stop) or drop with a warning.",
        ),
        th.Property(
            "warnings_as_rejects",
            th.BooleanType,
            default=False,
            description="Count rows Marketo imported with a warning as rejects.",
        ),
        th.Property(  # r17
            "verify_timeout_seconds",
            th.NumberType(exclusive_minimum=0),
            default=600,
            description="Data Ingestion read-back: give up on a record after this (not_applied).",
        ),
        th.Property(
            "poll_interval_seconds",
            th.NumberType(exclusive_minimum=0),
            default=5,
            description="First import status poll; grows to 6x (5-30 s by default).",
        ),
    ).to_dict()

    def __init__(
        self,
        *,
        config: dict | PurePath | str | list[PurePath | str] | None = None,
        parse_env_config: bool = False,
        validate_config: bool = True,
        setup_mapper: bool = True,
        message_reader: t.Any = None,
        client: t.Any = None,
    ) -> None:
        super().__init__(
            config=config,
            parse_env_config=parse_env_config,
            validate_config=validate_config,
            setup_mapper=setup_mapper,
            message_reader=message_reader,
        )
        self.options = self._options()
        self._threshold = _threshold(self.config.get("fail_on_rejects"))
        validate_streams_setting(self.config.get("streams"))
        self._client = client
        self._client_lock = threading.Lock()
        self._describes: dict[str, dict[str, FieldSpec] | None] = {}
        self._custom_member_fields: frozenset[str] | bool | None = False  # False: not read yet
        self._program_catalog: ProgramCatalog | None = None
        self.rejects = RejectsFile(self.config.get("rejects_path"))
        self.fatal = FatalError()
        self._stdout_lock = threading.Lock()
        self.checkpoints = Checkpoints(self._emit_state, enabled=not self.options.dry_run)
        self.summaries: list[StreamSummary] = []
        self._received = 0
        self._fast: dict[str, MarketoSink] = {}
        self._retired: list[MarketoSink] = []
        self._started = time.monotonic()
        self._finished = False
        _ = self.client  # connection settings fail here, before any input is read

    # -------------------------------------------------------------- settings

    def _options(self) -> TargetOptions:
        config = self.config

        def number(name: str, default: float, low: float, high: float | None = None) -> float:
            value = config.get(name, default)
            if value is None:
                return default
            # Config files are read with JSON floats as Decimal.
            if isinstance(value, bool) or not isinstance(value, (int, float, decimal.Decimal)):
                raise SettingError(f"{name}: expected a number, got {value!r}")
            value = float(value)
            if value <= low or (high is not None and value > high):
                bounds = f"above {low}" + (f" and at most {high}" if high is not None else "")
                raise SettingError(f"{name}: expected a number {bounds}, got {value!r}")
            return value

        mb = number("max_import_file_mb", 10, 0, 10)
        imports = int(number("max_concurrent_imports", 2, 0, 2))
        poll = number("poll_interval_seconds", 5, 0)
        unknown = config.get("unknown_fields") or "error"
        if unknown not in {"error", "drop"}:
            raise SettingError(f"unknown_fields: expected error or drop, got {unknown!r}")
        return TargetOptions(
            dry_run=bool(config.get("dry_run", False)),
            max_import_bytes=int(mb * 1_000_000),
            max_concurrent_imports=imports,
            poll_interval_seconds=float(poll),
            poll_max_seconds=float(poll) * 6,
            warnings_as_rejects=bool(config.get("warnings_as_rejects", False)),
            unknown_fields=unknown,
            verify_timeout_seconds=number("verify_timeout_seconds", 600, 0),  # r17
        )

    # -------------------------------------------------------------- shared handles

    @property
    def client(self) -> t.Any:
        """The one MarketoClient of the run, made on first use."""
        with self._client_lock:
            if self._client is None:
                from marketo_common import ConfigError, MarketoClient, MarketoSettings  # noqa: PLC0415

                from target_marketo_ingest import __version__  # noqa: PLC0415

                try:
                    settings = MarketoSettings.from_config(dict(self.config))
                except ConfigError as exc:
                    raise SettingError(str(exc)) from None
                self._client = MarketoClient(
                    settings, user_agent=f"target-marketo-ingest/{__version__}"
                )
            return self._client

    @property
    def program_catalog(self) -> ProgramCatalog:
        """Program statuses, shared by every program member stream."""
        if self._program_catalog is None:
            self._program_catalog = ProgramCatalog(self.client)
        return self._program_catalog

    def describe(self, kind: str) -> dict[str, FieldSpec] | None:
        """Marketo's field list for an object, read once; None when it cannot be read."""
        if kind in self._describes:
            return self._describes[kind]
        from marketo_common import MarketoError  # noqa: PLC0415

        path = DESCRIBE_PATHS.get(kind) or f"/rest/v1/{kind}/describe.json"
        try:
            envelope = self.client.get(path)
            specs: dict[str, FieldSpec] | None = parse_describe(envelope.get("result") or [])
            if not specs and kind == "leads":
                specs = parse_describe(
                    self.client.get("/rest/v1/leads/describe.json").get("result") or []
                )
        except MarketoError as exc:
            if exc.code in AUTH_CODES or exc.http_status in {401, 403}:
                raise TargetError(f"Marketo refused the credentials: {exc}") from None
            if exc.retryable:
                raise TargetError(f"could not read {path}: {exc}") from None
            self.logger.warning(
                "Could not read %s (%s); records are checked against the stream schema only",
                path,
                exc,
            )
            specs = None
        self._describes[kind] = specs or None
        return self._describes[kind]

    def custom_member_fields(self) -> frozenset[str] | None:
        """Names of custom program member fields (Field API `isCustom`); None if unreadable.

        Data Ingestion members carry custom fields only, and describe does not say which
        updateable fields are custom (registrationCode and webinarUrl are standard).
        """
        if self._custom_member_fields is not False:
            return t.cast("frozenset[str] | None", self._custom_member_fields)
        from marketo_common import MarketoError  # noqa: PLC0415

        try:
            names: frozenset[str] | None = frozenset(
                str(item["name"])
                for item in self.client.iter_pages(MEMBER_FIELDS_PATH, batch_size=300)
                if isinstance(item, dict) and item.get("isCustom") and item.get("name")
            )
        except MarketoError as exc:
            if exc.retryable:  # 603 (no schema permission) falls back below
                raise TargetError(f"could not read {MEMBER_FIELDS_PATH}: {exc}") from None
            self.logger.warning(
                "Could not read %s (%s); program member fields the describe marks updateable "
                "are sent as custom fields",
                MEMBER_FIELDS_PATH,
                exc,
            )
            names = None
        self._custom_member_fields = names
        return names

    def new_context(self, stream: str) -> WriteContext:
        """Routing, counters and handles for a new sink."""
        route = resolve_route(stream, self.config.get("streams"))
        if route is None:
            raise InputError(
                "no write method for this stream: add it to the 'streams' setting "
                '(e.g. {"' + stream + '": {"method": "bulk_leads"}}) or name the stream '
                "leads, program_members or companies",
                line=self.current_line,
                stream=stream,
            )
        summary = StreamSummary(stream=stream, method=route.method)
        self.summaries.append(summary)
        return WriteContext(
            stream=stream,
            route=route,
            client=self.client,
            rejects=self.rejects,
            checkpoints=self.checkpoints,
            summary=summary,
            options=self.options,
            fatal=self.fatal,
            logger=self.logger,
        )

    @property
    def current_line(self) -> int:
        """The input line being processed (1-based)."""
        return getattr(self.message_reader, "line_number", 0)

    def next_seq(self) -> int:
        """Number the next record (records are numbered in arrival order)."""
        seq = self._received
        self._received = seq + 1
        return seq

    # -------------------------------------------------------------- messages

    def _process_schema_message(self, message_dict: dict) -> None:
        stream = message_dict.get("stream")
        schema = message_dict.get("schema")
        if not isinstance(stream, str) or not isinstance(schema, dict):
            raise InputError("SCHEMA needs 'stream' and an object 'schema'", line=self.current_line)
        if not isinstance(schema.get("properties"), dict):
            raise InputError(
                "SCHEMA has no 'properties' object", line=self.current_line, stream=stream
            )
        try:
            super()._process_schema_message(message_dict)
        except Exception as exc:
            # The SDK has already taken the stream's old sink out of `_sinks_active`; keep it
            # where finish() sees it, so the records read before this SCHEMA still go out.
            self._retire_replaced_sinks(flush=False)
            if isinstance(exc, TargetError):
                raise
            raise InputError(
                f"invalid SCHEMA ({exc})", line=self.current_line, stream=stream
            ) from None
        self._retire_replaced_sinks(flush=True)
        self._fast = {}
        for name, maps in self.mapper.stream_maps.items():
            if (
                len(maps) == 1
                and type(maps[0]) is SameRecordTransform
                and maps[0].stream_alias == name
                and name in self._sinks_active
            ):
                self._fast[name] = t.cast("MarketoSink", self._sinks_active[name])

    def _retire_replaced_sinks(self, *, flush: bool) -> None:
        """Sinks a new SCHEMA replaced: their records go out now (or at finish)."""
        for sink in self._sinks_to_clear:
            if sink not in self._retired:
                if flush:
                    sink.writer.flush()
                self._retired.append(t.cast("MarketoSink", sink))
        self._sinks_to_clear = []

    def _process_record_message(self, message_dict: dict) -> None:
        stream = message_dict.get("stream")
        record = message_dict.get("record")
        sink = self._fast.get(stream)  # type: ignore[arg-type]
        if sink is not None and type(record) is dict:
            seq = self._received
            self._received = seq + 1
            sink.accept(record, seq, self.message_reader.line_number)
            if not self._received & (CHECK_EVERY - 1):
                self._periodic_checks()
            return
        self._process_record_slow(stream, record)

    def _process_record_slow(self, stream: t.Any, record: t.Any) -> None:
        line = self.current_line
        if not isinstance(stream, str):
            raise InputError("RECORD without a 'stream' name", line=line)
        if type(record) is not dict:
            raise InputError("RECORD without an object 'record'", line=line, stream=stream)
        if stream not in self.mapper.stream_maps:
            msg = "RECORD before its SCHEMA (every stream needs a SCHEMA message first)"
            raise RecordBeforeSchemaError(msg, line=line, stream=stream)
        self._route_record(stream, record, line)
        self._periodic_checks()

    def _route_record(self, stream: str, record: dict, line: int) -> None:
        """Stream maps, then the sink's validation and write method (RECORD and BATCH rows)."""
        for stream_map in self.mapper.stream_maps[stream]:
            transformed = stream_map.transform(copy.copy(record))
            if transformed is None:
                continue  # filtered out by a stream map: not this target's record
            sink = self._sinks_active.get(stream_map.stream_alias)
            if sink is None:
                msg = "RECORD before its SCHEMA"
                raise RecordBeforeSchemaError(msg, line=line, stream=stream_map.stream_alias)
            t.cast("MarketoSink", sink).accept(transformed, self.next_seq(), line)

    def _process_state_message(self, message_dict: dict) -> None:
        if "value" not in message_dict:
            raise InputError("STATE without 'value'", line=self.current_line)
        self.checkpoints.add_state(message_dict["value"], self._received)
        self._periodic_checks()

    def _process_activate_version_message(self, message_dict: dict) -> None:
        self.logger.info(
            "ACTIVATE_VERSION for '%s' ignored: Marketo writes are upserts",
            message_dict.get("stream"),
        )

    def _process_batch_message(self, message_dict: dict) -> None:
        """Rows of each manifest file, streamed, through the same path as RECORD lines.

        Each row gets a record number like a RECORD, so a STATE after this message waits for
        every row's outcome; positions name the file and row (``file:///x.json.gz#17``).
        """
        line = self.current_line
        stream = message_dict.get("stream")
        if not isinstance(stream, str):
            raise InputError("BATCH without a 'stream' name", line=line)
        if stream not in self.mapper.stream_maps:
            msg = "BATCH before its SCHEMA (every stream needs a SCHEMA message first)"
            raise RecordBeforeSchemaError(msg, line=line, stream=stream)
        where = {"line": line, "stream": stream}
        encoding = batch_files.parse_encoding(message_dict.get("encoding"), **where)
        manifest = batch_files.parse_manifest(message_dict.get("manifest"), **where)
        for url in manifest:
            for position, row in batch_files.iter_rows(url, encoding, **where):
                if type(row) is dict:
                    sink = self._fast.get(stream)
                    if sink is not None:
                        sink.accept(row, self.next_seq(), position)
                    else:
                        self._route_record(stream, row, position)
                else:
                    self._reject_bad_row(stream, t.cast("batch_files.BadRow", row), position)
                if not self._received & (CHECK_EVERY - 1):
                    self._periodic_checks()
        self._periodic_checks()

    def _reject_bad_row(self, stream: str, row: batch_files.BadRow, position: int) -> None:
        """A row that is no record: received and rejected on the stream's first sink."""
        for stream_map in self.mapper.stream_maps[stream]:
            sink = self._sinks_active.get(stream_map.stream_alias)
            if sink is not None:
                marketo_sink = t.cast("MarketoSink", sink)
                self.next_seq()
                marketo_sink.summary.received += 1
                marketo_sink.ctx.reject(
                    line=position, reason=row.reason, message=row.message, record=row.raw
                )
                return
        raise InputError(row.message, line=position, stream=stream)

    def _periodic_checks(self) -> None:
        error = self.fatal.error
        if error is not None:
            raise error if isinstance(error, TargetError) else TargetError(str(error))
        self._check_threshold(final=False)
        if self.checkpoints.pending_states:
            max_age = self._MAX_RECORD_AGE_IN_MINUTES * 60
            for sink in self._all_sinks():
                if sink.writer.oldest_open_age() > max_age:
                    sink.writer.flush()

    def _all_sinks(self) -> list[MarketoSink]:
        sinks = list(self._retired) + list(self._sinks_active.values())
        return t.cast("list[MarketoSink]", sinks)

    # -------------------------------------------------------------- end of input

    def _emit_state(self, state: dict) -> None:
        with self._stdout_lock:
            sys.stdout.write(json.dumps(state, default=_state_number) + "\n")
            sys.stdout.flush()

    def process_endofpipe(self) -> None:
        """Send what is buffered, wait for every outcome, then summarise and check."""
        self.finish()

    def finish(self) -> None:
        """Close every write method; safe to call after an input error (keeps earlier work)."""
        if self._finished:
            return
        self._finished = True
        try:
            sinks = self._all_sinks()
            for sink in sinks:
                sink.writer.flush()
            for sink in sinks:
                sink.writer.close()
            error = self.fatal.error
            if error is not None:
                raise error if isinstance(error, TargetError) else TargetError(str(error))
        finally:
            self.rejects.close()
            self._log_summary()
        for summary in self.summaries:
            missing = summary.received - summary.with_outcome
            if missing:
                msg = f"stream '{summary.stream}': {missing} records have no outcome"
                raise OutcomeMissingError(msg)
        self._check_threshold(final=True)

    def _log_summary(self) -> None:
        calls = self._client.calls_made if self._client is not None else 0
        for summary in self.summaries:
            data = summary.as_dict()
            self.logger.info(
                "Summary for stream '%s' (%s): received %d, imported %d, accepted %d, applied %d, "
                "skipped %d, rejected %d %s, warnings %d, superseded %d, dry run %d, files %d, "
                "requests %d, API calls %d%s",
                summary.stream,
                summary.method,
                data["received"],
                data["imported"],
                data["accepted"],
                data["applied"],
                data["skipped"],
                data["rejected"],
                data["rejected_by_reason"] or "",
                data["warnings"],
                data["superseded"],
                data["dry_run"],
                data["files"],
                data["requests"],
                data["api_calls"],
                mirror_line(data.get("mirror")),  # r17
            )
            metric = {
                "type": "summary",
                "metric": "target_marketo_ingest.stream",
                "value": data,
                "tags": {"stream": summary.stream, "method": summary.method},
            }
            logging.getLogger("singer_sdk.metrics").info("METRIC: %s", json.dumps(metric))
        if self.rejects.written:
            self.logger.info("Rejects and warnings written to %s", self.rejects.path)
        self.logger.info(
            "Run finished in %.1fs with %d Marketo API calls",
            time.monotonic() - self._started,
            calls,
        )

    def _check_threshold(self, *, final: bool) -> None:
        threshold = self._threshold
        if threshold is None:
            return
        rejected = sum(s.rejected for s in self.summaries)
        received = sum(s.received for s in self.summaries)
        if threshold >= 1 or threshold == 0:
            limit = float(threshold)
            over = rejected > limit
        else:
            if not final:
                return
            limit = threshold * received
            over = rejected > limit
        if over:
            msg = (
                f"{rejected} of {received} records rejected, over fail_on_rejects={threshold}; "
                f"see {self.rejects.path}"
            )
            raise RejectThresholdError(msg)

    def _handle_termination(self, signum: int, frame: t.Any) -> None:  # pragma: no cover
        """On SIGTERM/SIGINT stop at once: in-flight records have no outcome, so no STATE."""
        _ = frame
        pending = sum(s.received - s.with_outcome for s in self.summaries)
        self.logger.error(
            "Terminated by signal %d with %d records still in flight; STATE was not advanced "
            "past them, so a rerun from the last STATE sends them again",
            signum,
            pending,
        )
        with contextlib.suppress(Exception):
            self._log_summary()
        sys.exit(128 + signum)

    # -------------------------------------------------------------- CLI

    @classmethod
    def append_builtin_config(cls, config_jsonschema: dict) -> None:
        """Only the SDK settings that mean something here (stream maps, flattening).

        `_sdc_deleted_at` is read from records as the tap sends them, so the SDK's
        `add_record_metadata` (which adds metadata on the target side) is not offered.
        """
        PluginBase.append_builtin_config.__func__(cls, config_jsonschema)

    @classmethod
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: t.Any = None,
        file_input: t.IO[str] | None = None,
    ) -> None:
        """Run the target; every failure ends as one clear line and exit code 1."""
        from singer_sdk.exceptions import ConfigValidationError  # noqa: PLC0415
        from singer_sdk.plugin_base import _ConfigInput  # noqa: PLC0415

        if about:
            cls.print_about(about_format)
            sys.exit(0)
        cls.print_version(print_fn=cls.logger.info)
        config = config or _ConfigInput()
        target = None
        try:
            target = cls(
                config=config.config, validate_config=True, parse_env_config=config.parse_env
            )
            target.listen(file_input)
        except TargetError as exc:
            if target is not None and not isinstance(
                exc, (RejectThresholdError, OutcomeMissingError)
            ):
                try:
                    target.finish()
                except TargetError as later:
                    cls.logger.error("%s", later)  # noqa: TRY400
            cls.logger.error("%s", exc)  # noqa: TRY400
            sys.exit(1)
        except ConfigValidationError:
            raise  # the SDK's command prints each failed setting on one line
        except Exception as exc:
            from marketo_common import ConfigError, MarketoError  # noqa: PLC0415

            if isinstance(exc, (ConfigError, MarketoError)):
                cls.logger.error("%s", exc)  # noqa: TRY400
            else:
                cls.logger.debug("Unexpected error", exc_info=True)
                cls.logger.error("Unexpected error: %s: %s", type(exc).__name__, exc)  # noqa: TRY400
            sys.exit(1)


def _threshold(value: t.Any) -> float | None:
    """`fail_on_rejects` as a number (Meltano may pass it as a string)."""
    if value is None or value == "":
        return None
    try:
        number = float(value) if not isinstance(value, bool) else -1.0
    except (TypeError, ValueError):
        number = -1.0
    if number < 0:
        raise SettingError(f"fail_on_rejects: expected a count or a fraction >= 0, got {value!r}")
    return number


def _state_number(value: t.Any) -> t.Any:
    """A STATE number the SDK's reader parsed as Decimal goes back out as JSON's number."""
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


if __name__ == "__main__":
    TargetMarketoIngest.cli()
