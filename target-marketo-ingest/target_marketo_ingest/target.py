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

from marketo_common.errors import ConfigError
from singer_sdk.helpers.capabilities import PluginCapabilities
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.plugin_base import PluginBase

from target_marketo_ingest import batch_files
from target_marketo_ingest.checkpoint import Checkpoints
from target_marketo_ingest.context import WriteContext
from target_marketo_ingest.describes import Describes
from target_marketo_ingest.errors import (
    InputError,
    OutcomeMissingError,
    RecordBeforeSchemaError,
    RejectThresholdError,
    TargetError,
)
from target_marketo_ingest.executor import FailureLatch
from target_marketo_ingest.mirror import mirror_line
from target_marketo_ingest.programs import ProgramCatalog
from target_marketo_ingest.reader import SingerLineReader
from target_marketo_ingest.rejects import RejectsFile
from target_marketo_ingest.routing import resolve_route
from target_marketo_ingest.sdk import SdkTarget, config_input
from target_marketo_ingest.settings import CONFIG_SCHEMA, target_options
from target_marketo_ingest.sinks import MarketoSink
from target_marketo_ingest.summary import StreamSummary

if t.TYPE_CHECKING:
    from pathlib import PurePath


CHECK_EVERY = 4096


class TargetMarketoIngest(SdkTarget):
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

    config_jsonschema = CONFIG_SCHEMA

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
        # Every target setting (streams included) is checked here, before any input is read.
        self.options = target_options(self.config)
        self._threshold = self.options.fail_on_rejects
        self._client = client
        self._client_lock = threading.Lock()
        self._describes: Describes | None = None
        self._program_catalog: ProgramCatalog | None = None
        self.rejects = RejectsFile(self.config.get("rejects_path"))
        self.fatal = FailureLatch()
        self._stdout_lock = threading.Lock()
        self.checkpoints = Checkpoints(
            self._emit_state, enabled=not self.options.dry_run, before_emit=self.rejects.commit
        )
        self.summaries: list[StreamSummary] = []
        self._received = 0
        self._fast: dict[str, MarketoSink] = {}
        self._retired: list[MarketoSink] = []
        self._started = time.monotonic()
        self._finished = False
        if isinstance(self.message_reader, SingerLineReader):
            self.message_reader.on_records = self.on_records
            self.message_reader.on_raw_records = self.on_raw_records
        _ = self.client  # connection settings fail here, before any input is read

    # -------------------------------------------------------------- shared handles

    @property
    def client(self) -> t.Any:
        """The one MarketoClient of the run, made on first use."""
        with self._client_lock:
            if self._client is None:
                from marketo_common import MarketoClient, MarketoSettings  # noqa: PLC0415

                from target_marketo_ingest import __version__  # noqa: PLC0415

                settings = MarketoSettings.from_config(dict(self.config))  # ConfigError
                self._client = MarketoClient(
                    settings, user_agent=f"target-marketo-ingest/{__version__}"
                )
            return self._client

    @property
    def describes(self) -> Describes:
        """Marketo's field lists, shared by every stream."""
        if self._describes is None:
            self._describes = Describes(self.client)
        return self._describes

    @property
    def program_catalog(self) -> ProgramCatalog:
        """Program statuses, shared by every program member stream."""
        if self._program_catalog is None:
            self._program_catalog = ProgramCatalog(self.client)
        return self._program_catalog

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

    def on_schema(self, message_dict: dict) -> None:
        """SCHEMA: checked, then the SDK builds the sink; replaced sinks send what they hold."""
        stream = message_dict.get("stream")
        schema = message_dict.get("schema")
        if not isinstance(stream, str) or not isinstance(schema, dict):
            raise InputError("SCHEMA needs 'stream' and an object 'schema'", line=self.current_line)
        if not isinstance(schema.get("properties"), dict):
            raise InputError(
                "SCHEMA has no 'properties' object", line=self.current_line, stream=stream
            )
        try:
            self.sdk_schema(message_dict)
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
                and name in self.active_sinks
            ):
                self._fast[name] = t.cast("MarketoSink", self.active_sinks[name])
        self._register_typed_streams()

    def _register_typed_streams(self) -> None:
        """Tell the reader which streams' RECORD lines it may leave undecoded (typed_records)."""
        reader = self.message_reader
        if isinstance(reader, SingerLineReader):
            reader.raw_streams.clear()  # the dict the reading loop holds: changed in place
            for name, sink in self._fast.items():
                if sink.typed is not None:
                    reader.raw_streams[sink.typed.name_bytes] = name

    def _retire_replaced_sinks(self, *, flush: bool) -> None:
        """Sinks a new SCHEMA replaced: their records go out now (or at finish)."""
        for sink in self.take_replaced_sinks():
            if sink not in self._retired:
                if flush:
                    t.cast("MarketoSink", sink).writer.flush()
                self._retired.append(t.cast("MarketoSink", sink))

    def on_record(self, message_dict: dict) -> None:
        """RECORD: straight to the sink when no stream map changes it (the fast path)."""
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

    def on_records(self, stream: t.Any, messages: list[dict], first_line: int) -> None:
        """Consecutive RECORD lines of one stream (the reader's runs): one call per run.

        The fast path hands the run's records to the sink as one list; a run with a stream
        map, an unknown stream or a record that is no object goes line by line as before.
        """
        sink = self._fast.get(stream)
        records = [message.get("record") for message in messages]
        if sink is None or not all(type(record) is dict for record in records):
            reader = self.message_reader
            for offset, message in enumerate(messages):
                reader.line_number = first_line + offset
                self.on_record(message)
            return
        seq = self._received
        self._received = seq + len(records)
        sink.accept_many(records, seq, first_line)
        if seq // CHECK_EVERY != self._received // CHECK_EVERY:
            self._periodic_checks()

    def on_raw_records(self, stream: str, lines: list[bytes], first_line: int) -> None:
        """Undecoded RECORD lines of a stream with a typed decoder, in input order.

        Lines the typed decoder takes go to the sink as typed records; any other line is
        decoded as the reader would and goes through `on_records` (errors name its line).
        """
        sink = self._fast.get(stream)
        typed = sink.typed.decode(lines) if sink is not None and sink.typed else [None] * len(lines)
        start, count = 0, len(lines)
        if sink is not None and typed.count(None) * 2 > count:
            # Most lines miss the typed shape (say every record has a field to drop): each
            # would be decoded twice, so the stream goes back to the dict path for good.
            sink.typed = None
            self._register_typed_streams()
        while start < count:
            end = start
            while end < count and typed[end] is not None:
                end += 1
            if end > start:
                seq = self._received
                self._received = seq + end - start
                t.cast("MarketoSink", sink).accept_typed(
                    typed[start:end], lines[start:end], seq, first_line + start
                )
                if seq // CHECK_EVERY != self._received // CHECK_EVERY:
                    self._periodic_checks()
            if end < count:
                message = self.message_reader.decode_line(lines[end], first_line + end)
                self.on_records(message.get("stream"), [message], first_line + end)
                end += 1
            start = end

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
            sink = self.active_sinks.get(stream_map.stream_alias)
            if sink is None:
                msg = "RECORD before its SCHEMA"
                raise RecordBeforeSchemaError(msg, line=line, stream=stream_map.stream_alias)
            t.cast("MarketoSink", sink).accept(transformed, self.next_seq(), line)

    def on_state(self, message_dict: dict) -> None:
        """STATE: held until every record before it has an outcome."""
        if "value" not in message_dict:
            raise InputError("STATE without 'value'", line=self.current_line)
        self.checkpoints.add_state(message_dict["value"], self._received, self.current_line)
        self._periodic_checks()

    def on_activate_version(self, message_dict: dict) -> None:
        """ACTIVATE_VERSION: nothing to do; Marketo writes are upserts."""
        self.logger.info(
            "ACTIVATE_VERSION for '%s' ignored: Marketo writes are upserts",
            message_dict.get("stream"),
        )

    def on_batch(self, message_dict: dict) -> None:
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
            sink = self.active_sinks.get(stream_map.stream_alias)
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
        self.fatal.check()
        self._check_threshold(final=False)
        if self.checkpoints.pending_states:
            max_age = self.max_record_age_seconds
            for sink in self._all_sinks():
                if sink.writer.oldest_open_age() > max_age:
                    sink.writer.flush()

    def _all_sinks(self) -> list[MarketoSink]:
        sinks = list(self._retired) + list(self.active_sinks.values())
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
            self.fatal.check()
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
                mirror_line(data.get("mirror")),
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

    def on_termination(self, signum: int, frame: t.Any) -> None:  # pragma: no cover
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

        if about:
            cls.print_about(about_format)
            sys.exit(0)
        cls.print_version(print_fn=cls.logger.info)
        config = config or config_input()
        target = None
        try:
            target = cls(
                config=config.config, validate_config=True, parse_env_config=config.parse_env
            )
            target.listen(file_input)
        except (TargetError, ConfigError) as exc:
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
            from marketo_common import MarketoError  # noqa: PLC0415

            if isinstance(exc, MarketoError):
                cls.logger.error("%s", exc)  # noqa: TRY400
            else:
                cls.logger.debug("Unexpected error", exc_info=True)
                cls.logger.error("Unexpected error: %s: %s", type(exc).__name__, exc)  # noqa: TRY400
            sys.exit(1)


def _state_number(value: t.Any) -> t.Any:
    """A STATE number the SDK's reader parsed as Decimal goes back out as JSON's number."""
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


if __name__ == "__main__":
    TargetMarketoIngest.cli()
