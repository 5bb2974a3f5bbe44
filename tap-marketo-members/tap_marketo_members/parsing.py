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

from tap_marketo_members.windows import iso, parse_iso

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping
    from pathlib import Path

LOGGER = logging.getLogger("tap_marketo_members.parsing")
NULL = "null"
_BOOLS = {"true": True, "false": False, "True": True, "False": False, "TRUE": True, "FALSE": False}
CANONICAL_TS_LEN = len("2024-01-01T00:00:00Z")


class ExportParseError(ValueError):
    """A value or header the schema cannot take; names the export, row and column."""


def to_bool(value: str) -> bool:
    """Exactly true/false in any case: `bool("false")` is True in Python."""
    result = _BOOLS.get(value)
    if result is None:
        result = _BOOLS.get(value.strip().lower())
        if result is None:
            raise ValueError(f"not a boolean: {value!r}")
    return result


def to_int(value: str) -> int:
    """Integers; tolerate `12.0`, which some Marketo exports write for whole numbers."""
    try:
        return int(value)
    except ValueError:
        number = float(value)
        if not number.is_integer():
            raise
        return int(number)


def to_timestamp(value: str) -> str:
    """Datetimes stay ISO strings; only non-canonical forms are normalised."""
    if len(value) == CANONICAL_TS_LEN and value[-1] == "Z":
        return value
    return iso(parse_iso(value))


def converter_for(schema: Mapping[str, Any]) -> Callable[[str], Any] | None:
    """The converter for one property schema; None means the string is kept as is."""
    types = schema.get("type", "string")
    types = [types] if isinstance(types, str) else list(types)
    if "integer" in types:
        return to_int
    if "number" in types:
        return float
    if "boolean" in types:
        return to_bool
    if "string" in types and schema.get("format") == "date-time":
        return to_timestamp
    if "string" in types and schema.get("format") == "date":
        return str
    return None


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

    def records(  # noqa: C901
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
            typed = [
                (index, conv)
                for index, name in enumerate(names)
                if (conv := converter_for(self.properties[name])) is not None
            ]
            extra = {}
            if "programId" not in names:
                if program_id is None:
                    msg = f"{label}: no programId column in a file covering several programs"
                    raise ExportParseError(msg)
                extra["programId"] = program_id
            key_index = names.index(self.replication_key) if self.replication_key in names else -1
            bounded = key_index >= 0 and (lower is not None or upper is not None)
            width = len(names)
            line = 1
            try:
                for line, raw in enumerate(reader, start=2):
                    if len(raw) != width:
                        msg = f"{label}: row {line} has {len(raw)} values for {width} columns"
                        raise ExportParseError(msg)
                    row: list[Any] = [None if value == NULL else value for value in raw]
                    for index, conv in typed:
                        value = row[index]
                        row[index] = conv(value) if value else None
                    if bounded:
                        stamp = row[key_index]
                        if (
                            stamp is None
                            or (lower is not None and stamp < lower)
                            or (upper is not None and stamp >= upper)
                        ):
                            continue
                    record = dict(zip(names, row, strict=False))
                    if extra:
                        record.update(extra)
                    yield record
            except (ValueError, csv.Error) as exc:
                if isinstance(exc, ExportParseError):
                    raise
                msg = f"{label}: row {line}: {exc}"
                raise ExportParseError(msg) from exc


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
