"""One sink per stream: validates each record and hands it to its write method.

The SDK's per-record pipeline (jsonschema validation, timestamp parsing, draining every
10,000 rows) is bypassed on purpose: validation is precompiled per field, and records leave
through the write method's own files and requests, whose outcomes drive STATE.
"""

from __future__ import annotations

import typing as t
from itertools import repeat
from operator import ge

from singer_sdk.sinks import Sink

from target_marketo_ingest.errors import InputError
from target_marketo_ingest.methods import MEMBER_FIELDS, MEMBER_ROWS, REGISTRY
from target_marketo_ingest.mirror import MirrorWriter
from target_marketo_ingest.validation import RecordRejected, build_validator

if t.TYPE_CHECKING:
    from target_marketo_ingest.context import WriteContext
    from target_marketo_ingest.methods import Writer
    from target_marketo_ingest.target import TargetMarketoIngest
    from target_marketo_ingest.typed_records import RecordType
    from target_marketo_ingest.validation import FieldSpec

# Program member fields that say which program and status, or identify the member: never
# columns of an import file or member data update.
MEMBER_CONTROL_FIELDS = frozenset({"programId", "statusName", "status", "leadId", "program"})


class MarketoSink(Sink):
    """Routes one stream's records to its write method."""

    def __init__(
        self,
        target: TargetMarketoIngest,
        stream_name: str,
        schema: dict,
        key_properties: t.Sequence[str] | None,
    ) -> None:
        self._target = target
        super().__init__(target, stream_name, schema, key_properties)
        self.ctx: WriteContext = target.new_context(stream_name)
        self.route = self.ctx.route
        self.writer = self._build_writer()
        self._add = self.writer.add
        self._add_many = getattr(self.writer, "add_many", None)
        self.summary = self.ctx.summary
        self._key_set = frozenset(self.key_properties)
        typed = getattr(self.writer, "typed_records", None)
        self.typed: RecordType | None = typed(self.key_properties) if typed else None

    def get_validator(self) -> None:
        """Records are checked per field by our own validator (see validation.py)."""
        return

    def accept(self, record: dict, seq: int, line_no: int) -> None:
        """One record in: buffered for its write method, or rejected with its reason."""
        self.summary.received += 1
        try:
            if self._key_set and not self._key_set <= record.keys():
                missing = min(self._key_set - record.keys())
                raise RecordRejected(  # noqa: TRY301 (one handler for every reject)
                    "missing_key_property",
                    f"the record lacks key property '{missing}' named in the SCHEMA message",
                    missing,
                )
            self._add(record, seq, line_no)
        except RecordRejected as exc:
            self.refuse(record, line_no, exc)

    def accept_many(self, records: list[dict], seq: int, first_line: int) -> None:
        """Consecutive records (numbered `seq`..., on lines `first_line`...), in order.

        A writer with `add_many` takes the list in one call when every record carries the
        stream's key properties (checked in C: dict keys >= the key set); otherwise, and for
        writers without it, each record goes through `accept`.
        """
        key_set = self._key_set
        if self._add_many is not None and (
            not key_set or all(map(ge, map(dict.keys, records), repeat(key_set)))
        ):
            self.summary.received += len(records)
            self._add_many(records, seq, first_line, self.refuse)
            return
        accept = self.accept
        for offset, record in enumerate(records):
            accept(record, seq + offset, first_line + offset)

    def accept_typed(
        self, records: list[t.Any], lines: list[bytes], seq: int, first_line: int
    ) -> None:
        """Consecutive records decoded by `self.typed` (their lines, for the exact path)."""
        self.summary.received += len(records)
        self.writer.add_typed(records, lines, seq, first_line, self.refuse)  # type: ignore[attr-defined]

    def refuse(self, record: dict, line_no: int, exc: RecordRejected) -> None:
        """A record a writer rejected: to the rejects file with its reason."""
        self.ctx.reject(
            line=line_no, reason=exc.reason, message=exc.message, record=record, field=exc.field
        )

    def process_record(self, record: dict, context: dict) -> None:
        """SDK entry point; the target calls `accept` directly with the line number."""
        _ = context
        self.accept(record, self._target.next_seq(), self._target.current_line)

    def process_batch(self, context: dict) -> None:
        """Nothing to drain: write methods send as files and batches fill."""
        _ = context

    # -------------------------------------------------------------- building

    def _build_writer(self) -> Writer:
        """The stream's writer, as its method's registry entry describes it."""
        route = self.route
        method = REGISTRY.get(route.method)
        if method is None:
            msg = f"no write method {route.method!r}"  # routing validated it already
            raise InputError(msg, stream=self.stream_name)
        if method.needs_field:
            self._require_field(method.needs_field)
        keys = list(method.key_fields(route))
        if method.validator == MEMBER_ROWS:
            validator = self._make_validator(
                self._member_describe(), required=keys, csv=True, member=True
            )
        elif method.validator == MEMBER_FIELDS:
            validator = self._member_fields_validator(ingestion=method.endpoint is not None)
        else:
            describe = self._target.describes.describe(t.cast("str", method.describe(route)))
            validator = self._make_validator(describe, required=keys, csv=method.csv)
        catalog = self._target.program_catalog
        writer = method.writer(self.ctx, validator, catalog, method)
        if route.mirror and method.mirrors:
            # The mirror buffers the stream, plans, then writes through the method's writer.
            return MirrorWriter(self.ctx, writer, catalog)
        return writer

    def _member_fields_validator(self, *, ingestion: bool) -> t.Any:
        """Member data besides program, status and lead: updateable member fields are sent.

        Lead fields are known but not sent. Data Ingestion members take custom fields only,
        named in any case (data-ingestion.md, "Program Members (Sync)"), so a column spelled
        `RegistrationCODE` is checked and sent as the describe spells it.
        """
        pm_fields = self._target.describes.describe("program_members")
        field_map = self.route.field_map
        send_only: set[str] | None = None
        if pm_fields is not None:
            send_only = {
                name
                for name, spec in pm_fields.items()
                if spec.updateable and name not in MEMBER_CONTROL_FIELDS
            }
            if ingestion:
                custom = self._target.describes.custom_member_fields()
                if custom is not None:
                    send_only &= custom
                field_map = self._any_case(send_only)
        elif ingestion:
            self.logger.warning(
                "Stream '%s': the program member describe could not be read; members are "
                "sent without custom fields",
                self.stream_name,
            )
            send_only = set()
        return self._make_validator(
            self._member_describe(),
            required=[],
            csv=False,
            member=True,
            send_only=send_only,
            field_map=field_map,
        )

    def _any_case(self, names: set[str]) -> dict[str, str]:
        """The stream's field_map plus schema fields that name one of `names` in another case."""
        by_lower = {name.lower(): name for name in names}
        mapped = dict(self.route.field_map)
        for prop in self.schema.get("properties", {}):
            target = mapped.get(prop, prop)
            canonical = by_lower.get(target.lower())
            if canonical is not None and canonical != target:
                mapped[prop] = canonical
        return mapped

    def _member_describe(self) -> dict[str, FieldSpec] | None:
        leads = self._target.describes.describe("leads")
        members = self._target.describes.describe("program_members")
        if leads is None or members is None:
            return None
        merged = dict(members)
        merged.update(leads)
        return merged

    def _require_field(self, name: str) -> None:
        sources = {self.route.field_map.get(k, k) for k in self.schema.get("properties", {})}
        if name not in sources:
            raise InputError(
                f"the schema has no field '{name}', which {self.route.method} needs",
                stream=self.stream_name,
                field=name,
            )

    def _make_validator(
        self,
        describe: dict[str, FieldSpec] | None,
        *,
        required: list[str],
        csv: bool,
        member: bool = False,
        send_only: set[str] | None = None,
        field_map: dict[str, str] | None = None,
    ) -> t.Any:
        route = self.route
        control = {route.program_id_field, route.status_field} if member else set()
        if member:
            control |= MEMBER_CONTROL_FIELDS - set(required) - (send_only or set())
        return build_validator(
            stream=self.stream_name,
            schema=self.schema,
            describe=describe,
            field_map=route.field_map if field_map is None else field_map,
            control=control,
            required=required,
            unknown_fields=self.ctx.options.unknown_fields,
            csv=csv,
            send_only=send_only,
            logger=self.logger,
        )
