"""Typed decoding of a stream's RECORD lines: msgspec checks the common row while it parses.

For a bulk stream, a `msgspec.Struct` per stream describes the record as the validator's
fast path accepts it: every key known, each column of its plain type (text within its length,
integer, number, boolean) or null, the key properties present. msgspec checks all of that in C
while decoding, so such a row needs no per-field check afterwards, and it is never built as a
dict. A line the Struct refuses, and any record the writer would reject or treat apart (a
delete, an empty key field, an unknown program or status), goes through the exact dict path
instead, so reject reasons and messages are those of `RecordValidator` and nothing else
changes.

The reader leaves such lines undecoded only when they start exactly as taps write them
(`{"type":"RECORD","stream":"<name>",`); other spellings take the dict path. A stream whose
lines mostly miss the typed shape (every record has a field to drop, say) goes back to the
dict path for good, so no stream pays two decodes a line.

Measured 2026-11-30 (2 shared cores, the wallclock benchmark's member lines: 23 keys, 6 CSV
columns): decode 1.51 -> 0.92 us a line; the writer's step (program and status, checks,
cells) 2.5 -> 1.0 us a record. With the runs of reader.py, `benchmarks/run --only wallclock`
at 1M members (target dry_run vs msgspec + csv.writer over the same lines, wall): 0.535
(11.5 s vs 6.2 s) -> 0.84-0.98 (7.1-7.8 s vs 6.6-7.1 s, 3 runs, machine shared); peak RSS
107 MB (was 106); `--only throughput` (CPU, 205k lines) 0.90, was 0.51-0.61.
`tests/target/test_record_runs.py` runs both paths over the same records and requires the
same files, rejects and counts.
"""

from __future__ import annotations

import decimal
import typing as t
from operator import attrgetter

import msgspec
from singer_sdk.contrib.msgspec import decoder

from target_marketo_ingest.bulk_import import NO_GROUP

if t.TYPE_CHECKING:
    from target_marketo_ingest.validation import RecordValidator

#: What a line of a stream with a typed decoder starts with, up to the stream name.
RECORD_HEAD = b'{"type":"RECORD","stream":"'

_TEXT_CELL = {None: ""}
_BOOL_CELL = {None: "", True: "true", False: "false"}


def _column_type(fast_types: frozenset[type], render: str, max_len: int | None) -> t.Any:
    """The Struct field type of a column's plain values, or None if it has none."""
    if render == "text" and fast_types == {str}:
        if max_len is not None:
            return t.Annotated[str, msgspec.Meta(max_length=max_len)] | None
        return str | None
    if render == "bool" and fast_types == {bool}:
        return bool | None
    if render == "str" and fast_types == {int}:
        return int | None
    if render == "str" and fast_types == {int, float, decimal.Decimal}:
        # Number columns: the SDK's decoder reads fractions as Decimal; so does this one
        # (str() of either is the same text for whole numbers).
        return decimal.Decimal | None
    return None


class RecordType:
    """A stream's typed decoder and how its records become CSV cells."""

    def __init__(
        self,
        stream: str,
        validator: RecordValidator,
        key_properties: t.Sequence[str],
        control: t.Sequence[str],
    ) -> None:
        """Raises `TypeError` when the stream cannot be typed (it stays on the dict path).

        That is a column without a plain type, or a column or key property that is not a
        known key (the dict path decides such records, e.g. a missing key property).
        """
        names = sorted(validator.known_keys)
        outside = {*key_properties, *(c.source for c in validator.columns)} - set(names)
        if outside:
            raise TypeError(f"not known keys: {sorted(outside)}")
        attr = {name: f"f{i}" for i, name in enumerate(names)}
        column_types = {}
        for column in validator.columns:
            kind = _column_type(column.fast_types, column.render, column.max_len)
            if kind is None:
                raise TypeError(f"column {column.source!r} has no plain type")
            column_types[column.source] = kind
        required = set(key_properties)
        fields: list[t.Any] = []
        for name in names:
            kind = column_types.get(name, t.Any)
            fields.append((attr[name], kind) if name in required else (attr[name], kind, None))
        record = msgspec.defstruct(
            "TypedRecord",
            fields,
            rename={attr[name]: name for name in names},
            forbid_unknown_fields=True,
            kw_only=True,
        )
        envelope = msgspec.defstruct(
            "TypedRecordLine",
            [("type", t.Literal["RECORD"]), ("stream", t.Literal[stream]), ("record", record)],
        )
        #: The stream name as it sits between RECORD_HEAD and its closing quote.
        self.name_bytes = msgspec.json.encode(stream)[1:-1]
        self._decode = msgspec.json.Decoder(envelope, float_hook=decimal.Decimal).decode
        sources = [c.source for c in validator.columns]
        self._values = _getter([attr[s] for s in sources])
        self._cells = tuple(
            _BOOL_CELL if c.render == "bool" else _TEXT_CELL for c in validator.columns
        )
        self._str_cells = tuple(i for i, c in enumerate(validator.columns) if c.render == "str")
        self._required = tuple(index for _, index in validator.required_columns)
        self._checks = tuple(
            (i, c.check) for i, c in enumerate(validator.columns) if c.check is not None
        )
        self._control = _getter([attr.get(name, "") for name in control])
        deleted = attr.get("_sdc_deleted_at")
        self.deleted: t.Callable[[t.Any], t.Any] = (
            attrgetter(deleted) if deleted else (lambda _record: None)
        )

    def decode(self, lines: list[bytes]) -> list[t.Any]:
        """Each line's record as the Struct, or None where the exact dict path must decide.

        Each line is decoded on its own (as the reader would: a line is one JSON value), in
        one comprehension; when some line fails, again line by line to find which.
        """
        decode = self._decode
        try:
            return [decode(raw).record for raw in lines]
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
            pass
        out: list[t.Any] = []
        for raw in lines:
            try:
                out.append(decode(raw).record)
            except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):  # noqa: PERF203
                out.append(None)
        return out

    def row(self, record: t.Any) -> list[str] | None:
        """The CSV cells of a typed record; None when the dict path must decide.

        That is a required column left empty, or a text column's own check refusing a cell
        (an email without `@`): the dict path rejects those, with their messages.
        """
        values = self._values(record)
        cells = list(map(dict.get, self._cells, values, values))
        for i in self._str_cells:
            if cells[i] != "":
                cells[i] = str(cells[i])
        for i in self._required:
            if cells[i] == "":
                return None
        for i, check in self._checks:
            if cells[i]:
                try:
                    check(cells[i])
                except ValueError:
                    return None
        return cells

    def control(self, record: t.Any) -> tuple[t.Any, ...]:
        """The record's values of the control fields named at construction (None if absent)."""
        return self._control(record)


def typed_decoder(
    stream: str,
    validator: RecordValidator,
    key_properties: t.Sequence[str],
    control: t.Sequence[str] = (),
) -> RecordType | None:
    """A bulk writer's typed decoder, or None when the stream stays on the dict path."""
    try:
        return RecordType(stream, validator, key_properties, control)
    except TypeError:
        return None


def add_typed(
    typed: RecordType,
    records: list[t.Any],
    raws: list[bytes],
    seq: int,
    first_line: int,
    *,
    group_of: t.Callable[[t.Any], t.Any],
    add_rows: t.Callable[[list, list, list, list], None],
    add_exact: t.Callable[[dict, int, int], None],
) -> None:
    """Typed records into a bulk writer, shared by the lead and program member writers.

    Runs of ready rows go to `add_rows` (rows, seqs, lines, groups); a record with no row or
    no group (`group_of` gives None), or a delete, goes to `add_exact` from its own line, in
    its place, so order and outcomes are the dict path's.
    """
    row_of, deleted = typed.row, typed.deleted
    rows: list[list[str]] = []
    seqs: list[int] = []
    lines: list[int] = []
    groups: list[t.Any] = []
    for offset, record in enumerate(records):
        group = group_of(record)
        row = row_of(record) if group is not None else None
        if row is None or deleted(record):
            add_rows(rows, seqs, lines, groups)
            rows, seqs, lines, groups = [], [], [], []
            add_exact(exact_record(raws[offset]), seq + offset, first_line + offset)
            continue
        rows.append(row)
        seqs.append(seq + offset)
        lines.append(first_line + offset)
        groups.append(group)
    add_rows(rows, seqs, lines, groups)


def exact_record(raw: bytes) -> dict:
    """A line the typed path handed back, decoded as the reader would: its record dict."""
    return decoder.decode(raw)["record"]  # type: ignore[no-any-return]


def _getter(attrs: list[str]) -> t.Callable[[t.Any], tuple[t.Any, ...]]:
    """`attrgetter` returning a tuple for any number of names ("" reads as None)."""
    if attrs and all(attrs) and len(attrs) > 1:
        return attrgetter(*attrs)
    return lambda obj: tuple(getattr(obj, a) if a else None for a in attrs)


class TypedBulkRows:
    """`typed_records` and `add_typed` of the bulk writers (leads, program members).

    The writer has `ctx`, `validator`, `_add_rows` (its `BulkImportWriter.add_many`) and
    `add_many`; one whose records pick their import file names the fields that decide it
    (`_control_fields`) and overrides `_typed_group_of`.
    """

    ctx: t.Any
    validator: RecordValidator
    _add_rows: t.Callable[[list, list, list, list], None]
    add_many: t.Callable[..., None]  # the writer's dict path
    _typed: RecordType | None = None
    _control_fields: tuple[str, ...] = ()

    def typed_records(self, key_properties: t.Sequence[str]) -> RecordType | None:
        """The stream's typed decoder (None when some column has no plain type)."""
        self._typed = typed_decoder(
            self.ctx.stream, self.validator, key_properties, self._control_fields
        )
        return self._typed

    def add_typed(
        self,
        records: list[t.Any],
        raws: list[bytes],
        seq: int,
        first_line: int,
        refuse: t.Callable[[dict, int, t.Any], None],
    ) -> None:
        """Typed records: their cells need no check.

        A record with no group (`_typed_group_of` gives None), a delete, or one with an empty
        key field goes through `add_many` from its line, in its place.
        """
        add_typed(
            t.cast("RecordType", self._typed),
            records,
            raws,
            seq,
            first_line,
            group_of=self._typed_group_of,
            add_rows=self._add_rows,
            add_exact=lambda record, at, line_no: self.add_many([record], at, line_no, refuse),
        )

    def _typed_group_of(self, record: t.Any) -> t.Any:  # noqa: ARG002 - one file for all
        """The import file group of a typed record; None sends it to `add_many`."""
        return NO_GROUP
