"""Export CSV -> typed record dicts, streaming, with converters built once per column.

Marketo writes the literal `null` for an empty field; booleans as `true`/`false`; datetimes as
ISO strings (kept as strings). Values may hold commas, quotes, CR/LF, U+2028 and NUL: the file is
opened with `newline=""` so only the csv module splits records, and NUL is handled in one place
(`_lines`): stripped, with a count in the log.
"""

from __future__ import annotations

import csv
import logging
from typing import TYPE_CHECKING, Any

from marketo_common.fields import CANONICAL_TS_LEN, NULL_TEXT, type_of_schema

from tap_marketo_members.windows import iso, parse_iso

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping
    from pathlib import Path

LOGGER = logging.getLogger("tap_marketo_members.parsing")
NULL = NULL_TEXT
# `dict.get(v, v)` through `map` turns Marketo's literal `null` into None without a Python call.
_NULL_TO_NONE = {NULL_TEXT: None}


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
    ) -> None:
        self.properties = properties
        self.header_to_name = header_to_name
        self.replication_key = replication_key
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

    def records(
        self,
        path: Path,
        *,
        label: str,
        has_nul: bool = False,
        lower: str | None = None,
        upper: str | None = None,
        program_id: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield typed records with lower <= updatedAt < upper (string compare, canonical ISO)."""
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

            def slow(raw: list[str]) -> dict[str, Any]:
                where = f"{label}: record ending on line {reader.line_num}"
                return self._slow_record(raw, names, extra, width, where)

            bounds = (lower, upper) if self.replication_key in names else (None, None)
            build = row_builder(
                names, self.properties, self.replication_key, extra, slow=slow, bounds=bounds
            )
            try:
                # map/filter run in C: per row, one call of the builder and no more.
                yield from filter(None, map(build, reader))
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
