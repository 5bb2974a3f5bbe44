"""Export CSV -> typed record dicts, streaming, with converters built once per column.

Marketo writes the literal `null` for an empty field; booleans as `true`/`false`; datetimes as
ISO strings (kept as strings). Values may hold commas, quotes, CR/LF, U+2028 and NUL: the file is
opened with `newline=""` so only the csv module splits records, and NUL is handled in one place
(`_lines`): stripped, with a count in the log.

Rows are converted `CHUNK_ROWS` at a time, column by column (`ColumnBatch`), with the per-row
builder as the path for any chunk the column pass refuses. Measured 2026-11-30 (205,077 rows
x 29 columns of the benchmark's export, CPU, min of 3, noisy 2-core machine): the parser with
csv reading 7.2-7.7 -> 6.6-7.0 us a row (csv.reader alone 2.7); the conversion isolated on one
chunk 5.8 -> 3.3-4.3 us. Chunks of 1024 rows measured no better than row by row (cache).
Columns without `null` skip the null pass: 6.6-6.9 -> 6.25-6.35 us a row.
"""

from __future__ import annotations

import csv
import logging
from itertools import compress, islice, repeat
from typing import TYPE_CHECKING, Any

import msgspec
from marketo_common.fields import CANONICAL_TS_LEN, NULL_TEXT, type_of_schema

from tap_marketo_members.windows import iso, parse_iso

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
    from pathlib import Path

LOGGER = logging.getLogger("tap_marketo_members.parsing")
NULL = NULL_TEXT
# `dict.get(v, v)` through `map` turns Marketo's literal `null` into None without a Python call.
_NULL_TO_NONE = {NULL_TEXT: None}
CHUNK_ROWS = 256  # rows converted together, column by column


class ExportParseError(ValueError):
    """A value or header the schema cannot take; names the export, row and column."""


def to_timestamp(value: str) -> str:
    """Datetimes stay ISO strings; only non-canonical forms are normalised."""
    if len(value) == CANONICAL_TS_LEN and value[-1] == "Z":
        return value
    return iso(parse_iso(value))


def _replication_ts(value: str) -> str:
    """The hot loop's replication key: canonical `2024-01-02T03:04:05Z` passes without parsing."""
    return value if len(value) == CANONICAL_TS_LEN else to_timestamp(value)


class MemberFileParser:
    """Parses one export file into records, keeping rows inside the unit's updatedAt bounds."""

    def __init__(
        self,
        properties: Mapping[str, Mapping[str, Any]],
        header_to_name: Mapping[str, str],
        *,
        replication_key: str = "updatedAt",
        structs: bool = False,
    ) -> None:
        self.properties = properties
        self.header_to_name = header_to_name
        self.replication_key = replication_key
        self.structs = structs  # rows as `record_struct` instances (RECORD lines), not dicts
        self.nul_stripped = 0

    def columns(self, header: list[str], label: str) -> list[str]:
        """Header names mapped back to API names (we set `columnHeaderNames` ourselves)."""
        names = []
        for column in header:
            name = self.header_to_name.get(column, column)
            if name not in self.properties:
                msg = f"{label}: column {column!r} is not in the program_members schema"
                raise ExportParseError(msg)
            names.append(name)
        return names

    def chunks(
        self,
        path: Path,
        *,
        label: str,
        has_nul: bool = False,
        lower: str | None = None,
        upper: str | None = None,
        program_id: int | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Typed records with lower <= updatedAt < upper (string compare, canonical ISO), in lists.

        Lists of up to `CHUNK_ROWS`, never empty, so a writer serialises a list in one C call.
        """
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(_lines(handle, self, label) if has_nul else handle, strict=True)
            header = next(reader, None)
            if header is None:
                return
            names = self.columns(header, label)
            extra = {}
            if "programId" not in names:
                if program_id is None:
                    msg = f"{label}: no programId column in a file covering several programs"
                    raise ExportParseError(msg)
                extra["programId"] = program_id
            width = len(names)
            lines = _LineCounter(reader)

            def slow(raw: list[str]) -> dict[str, Any]:
                where = f"{label}: record ending on line {lines.row_end(raw)}"
                return self._slow_record(raw, names, extra, width, where)

            bounds = (lower, upper) if self.replication_key in names else (None, None)
            build = row_builder(
                names, self.properties, self.replication_key, extra, slow=slow, bounds=bounds
            )
            columns = ColumnBatch(
                names,
                self.properties,
                self.replication_key,
                extra,
                bounds,
                row_type=record_struct((*names, *extra)) if self.structs else None,
            )
            try:
                for chunk in iter(lambda: list(islice(reader, CHUNK_ROWS)), []):
                    lines.chunk(chunk)
                    records = columns.convert(chunk)
                    if records is None:  # a row the column pass refused: row by row
                        records = list(filter(None, map(build, chunk)))
                    if records:
                        yield records
            except csv.Error as exc:
                msg = f"{label}: line {reader.line_num}: {exc}"
                raise ExportParseError(msg) from exc

    def _slow_record(
        self, raw: list[str], names: list[str], extra: dict[str, Any], width: int, where: str
    ) -> dict[str, Any]:
        """A row the fast builder refused: tolerant converters, or an error naming the cell."""
        if len(raw) != width:
            msg = f"{where} has {len(raw)} values for {width} columns"
            raise ExportParseError(msg)
        record: dict[str, Any] = {}
        for name, value in zip(names, raw, strict=True):
            conv = type_of_schema(self.properties[name]).from_csv  # None: text, kept as written
            if name == self.replication_key:
                conv = to_timestamp
            if value in ("", NULL) and (conv is not None or value == NULL):
                record[name] = None
                continue
            try:
                record[name] = conv(value) if conv else value
            except ValueError as exc:
                program = extra.get("programId")
                if program is None and "programId" in names:
                    program = raw[names.index("programId")]
                msg = f"{where}, program {program}, column {name}: {exc}"
                raise ExportParseError(msg) from exc
        record.update(extra)
        return record


def row_builder(  # noqa: C901 (one closure, kept whole: it is the hot loop)
    names: list[str],
    properties: Mapping[str, Mapping[str, Any]],
    replication_key: str,
    extra: Mapping[str, Any],
    *,
    slow: Callable[[list[str]], dict[str, Any]],
    bounds: tuple[str | None, str | None] = (None, None),
) -> Callable[[list[str]], dict[str, Any] | None]:
    """Build, once per file, the function that turns a CSV row into a record.

    Text columns (most of them) are zipped into the dict in C with `null` mapped to None; only
    the typed columns (integers, numbers, booleans, the replication key) then get a call, with
    the strict C-implemented converter from the shared type table. A row any of them refuses
    goes to `slow`, which accepts `12.0` and ` True ` or names the bad cell; rows outside
    `bounds` (half-open, on the replication key) give None. Datetimes stay the ISO strings
    Marketo wrote; only the replication key is normalised, as window bounds compare it as text.
    """
    keys = tuple(names)
    width = len(keys)
    typed: list[tuple[str, Callable[[str], Any]]] = []
    for name in keys:
        if name == replication_key:
            typed.append((name, _replication_ts))
        else:
            strict = type_of_schema(properties[name]).from_csv_strict
            if strict is not None:
                typed.append((name, strict))
    converters = tuple(typed)
    nulls = _NULL_TO_NONE
    lower, upper = bounds
    check_bounds = replication_key in keys and (lower is not None or upper is not None)

    def build(row: list[str]) -> dict[str, Any] | None:
        if len(row) != width:
            record = slow(row)
        else:
            record = dict(zip(keys, map(nulls.get, row, row), strict=False))  # width checked
            try:
                for name, convert in converters:
                    value = record[name]
                    record[name] = convert(value) if value else None
            except (ValueError, KeyError):
                record = slow(row)
            else:
                if extra:
                    record.update(extra)
        if check_bounds:
            stamp = record[replication_key]
            if stamp is None or (lower is not None and stamp < lower):
                return None
            if upper is not None and stamp >= upper:
                return None
        return record

    return build


class _LineCounter:
    """The line a row of the current chunk ends on, worked out only for a row that fails.

    The csv reader counts physical lines as it reads; rows are read a chunk at a time, so a
    row's own line is the chunk's first line plus the line breaks of the rows before it.
    """

    def __init__(self, reader: Any) -> None:
        self._reader = reader
        self._end = reader.line_num  # the header's last line
        self._start = self._end + 1
        self._rows: list[list[str]] = []

    def chunk(self, rows: list[list[str]]) -> None:
        """A chunk was read: it starts after the previous one ended."""
        self._start = self._end + 1
        self._end = self._reader.line_num
        self._rows = rows

    def row_end(self, row: list[str]) -> int:
        """The line `row` (one of the chunk's) ends on."""
        line = self._start - 1
        for other in self._rows:
            line += _row_lines(other)
            if other is row:
                break
        return line


def _row_lines(row: list[str]) -> int:
    """Physical lines a row spans: 1 plus the line breaks inside its values (CRLF is one)."""
    text = "".join(row)
    return 1 + text.count("\n") + text.count("\r") - text.count("\r\n")


class ColumnBatch:
    """A chunk of rows converted column by column: C-level `map`s, no Python step per cell.

    Text columns only map Marketo's `null` to None; typed columns (integers, numbers,
    booleans) go through the shared table's strict converter in one `map` when the column has
    no empty cell, else one step per cell; the replication key passes untouched when every
    value is canonical. `convert` gives None when any row needs the row-by-row path (a row of
    the wrong width, a value the strict converters refuse, a non-canonical timestamp), which
    then accepts `12.0` or names the bad cell.
    """

    def __init__(
        self,
        names: list[str],
        properties: Mapping[str, Mapping[str, Any]],
        replication_key: str,
        extra: Mapping[str, Any],
        bounds: tuple[str | None, str | None],
        *,
        row_type: type[msgspec.Struct] | None = None,
    ) -> None:
        self.keys = (*names, *extra)
        self.row_type = row_type
        self.extra = tuple(extra.values())
        self.width = len(names)
        self.converters: list[Callable[[str], Any] | None] = [
            None if name == replication_key else type_of_schema(properties[name]).from_csv_strict
            for name in names
        ]
        self.stamp = names.index(replication_key) if replication_key in names else None
        self.lower, self.upper = bounds

    def convert(self, rows: list[list[str]]) -> list[dict[str, Any]] | None:
        """The chunk's records (inside the bounds), or None to go row by row."""
        if any(map(self.width.__ne__, map(len, rows))):
            return None
        nulls = _NULL_TO_NONE.get
        columns: list[Any] = []
        try:
            for column, convert in zip(zip(*rows, strict=True), self.converters, strict=True):
                # A column without `null` needs no null pass.
                cells = column if NULL_TEXT not in column else list(map(nulls, column, column))
                if convert is not None:
                    if None in cells or "" in cells:
                        cells = [convert(v) if v else None for v in cells]
                    else:
                        cells = list(map(convert, cells))
                columns.append(cells)
        except (ValueError, KeyError):
            return None
        keep = None
        if self.stamp is not None:
            stamps = columns[self.stamp]
            present = stamps if None not in stamps else [*filter(None, stamps)]
            if "" in stamps or not _canonical(present):
                return None
            keep = self._inside(stamps)
        columns.extend(repeat(value, len(rows)) for value in self.extra)
        records = (
            map(dict, map(zip, repeat(self.keys), zip(*columns, strict=True)))
            if self.row_type is None
            else map(self.row_type, *columns)  # straight from the columns: no transpose back
        )
        return list(records if keep is None else compress(records, keep))

    def _inside(self, stamps: list[str | None]) -> list[bool] | None:
        """Which rows lie inside the bounds; None when all of them do."""
        lower, upper = self.lower, self.upper
        if lower is None and upper is None:
            return None
        if (
            None not in stamps
            and (lower is None or min(stamps) >= lower)
            and (upper is None or max(stamps) < upper)
        ):
            return None
        return [
            s is not None and (lower is None or s >= lower) and (upper is None or s < upper)
            for s in stamps
        ]


def record_struct(keys: Sequence[str]) -> type[msgspec.Struct] | None:
    """A Struct whose JSON is the record dict's (same keys, same order), or None if none can be.

    For RECORD lines only: a Struct is built from a chunk's columns in C with no dict per row,
    and msgspec writes a chunk's messages in one call. Measured 2026-12-01 (1,000,000 members x
    23 columns): conversion and serialisation 3.0 -> 1.8 us a row. Fields are named by
    `rename`, so any column name works but those msgspec refuses (a quote, a backslash, a
    control character): those files keep dicts. No cycles can form (the values are str, int,
    float, bool, None), so the instances stay out of the garbage collector.
    """
    attrs = [f"c{i}" for i in range(len(keys))]
    try:
        return msgspec.defstruct(
            "ProgramMemberRow",
            [(attr, object) for attr in attrs],
            rename=dict(zip(attrs, keys, strict=True)),
            gc=False,
        )
    except (TypeError, ValueError):
        return None


def _canonical(stamps: list[str]) -> bool:
    """Every timestamp already `2024-01-02T03:04:05Z` (the replication key compares as text)."""
    return set(map(len, stamps)) <= {CANONICAL_TS_LEN} and all(
        map(str.endswith, stamps, repeat("Z"))
    )


def _lines(handle: Iterable[str], parser: MemberFileParser, label: str) -> Iterator[str]:
    """The one place NUL is decided: stripped from values, counted, reported once per file."""
    stripped = 0
    for line in handle:
        if "\x00" in line:
            stripped += line.count("\x00")
            line = line.replace("\x00", "")  # noqa: PLW2901
        yield line
    if stripped:
        parser.nul_stripped += stripped
        LOGGER.warning("%s: stripped %d NUL characters from values", label, stripped)
