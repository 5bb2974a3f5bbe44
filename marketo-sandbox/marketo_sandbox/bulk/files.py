"""Delimited files as Marketo's bulk APIs write and read them, always streamed to and from disk."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from pathlib import Path

#: Marketo's format names and their delimiters.
DELIMITERS = {"CSV": ",", "TSV": "\t", "SSV": ";"}
MEDIA_TYPES = {"CSV": "text/csv", "TSV": "text/tab-separated-values", "SSV": "text/csv"}
CHUNK = 64 * 1024
#: What Marketo writes for an empty value in an export file.
NULL = "null"


def normalise_format(value: str | None, default: str | None = "CSV") -> str | None:
    """CSV/TSV/SSV in any case; None when the value is not one of them."""
    if value is None or value == "":
        return default
    upper = str(value).strip().upper()
    return upper if upper in DELIMITERS else None


def format_value(value: Any) -> str:
    """One export cell: empty → ``null``, booleans lower-case, datetimes ISO 8601 with Z."""
    if value is None or value == "":
        return NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else repr(value)  # noqa: PLR2004
    return str(value)


class _HashingWriter:
    """File-like sink for csv.writer: gathers rows, then encodes, hashes and writes them in batches.

    Batching keeps the per-row cost to a list append; the file is still written as it goes.
    """

    BATCH = 2000

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._parts: list[str] = []
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, text: str) -> int:
        self._parts.append(text)
        if len(self._parts) >= self.BATCH:
            self.flush()
        return len(text)

    def flush(self) -> None:
        if not self._parts:
            return
        data = "".join(self._parts).encode("utf-8")
        self._parts.clear()
        self.sha256.update(data)
        self.size += len(data)
        self._raw.write(data)


@dataclass
class WrittenFile:
    """What the status endpoints report about a finished file."""

    path: Path
    rows: int
    size: int
    checksum: str  # "sha256:<hex>"


def write_delimited(
    path: Path,
    fmt: str,
    header: list[str],
    rows: Iterable[Iterable[Any]],
    *,
    should_stop: Any = None,
) -> WrittenFile:
    """Write header and rows to ``path`` (via a temporary name, then renamed) and hash as we go.

    Rows are consumed one by one so a million-row export never sits in memory. ``should_stop`` is
    polled every 1000 rows so a cancelled job stops writing.
    """
    tmp = path.with_name(path.name + ".part")
    count = 0
    with open(tmp, "wb", buffering=CHUNK) as raw:
        sink = _HashingWriter(raw)
        writer = csv.writer(sink, delimiter=DELIMITERS[fmt], lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            # Non-empty strings and ints are written as they are; the rest goes through
            # format_value (null, true/false, dates).
            writer.writerow(
                [v if (type(v) is str and v) or type(v) is int else format_value(v) for v in row]
            )
            count += 1
            if should_stop is not None and count % 1000 == 0 and should_stop():
                break
        sink.flush()
        raw.flush()
        os.fsync(raw.fileno())
    tmp.replace(path)
    return WrittenFile(path, count, sink.size, "sha256:" + sink.sha256.hexdigest())


class DelimitedWriter:
    """Append rows to a failures/warnings file in the import's own format."""

    def __init__(self, path: Path, fmt: str, header: list[str]) -> None:
        self.path = path
        self._fh = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115
        self._writer = csv.writer(self._fh, delimiter=DELIMITERS[fmt], lineterminator="\n")
        self._writer.writerow(header)
        self.rows = 0

    def write(self, row: list[str]) -> None:
        """Append one row."""
        self._writer.writerow(row)
        self.rows += 1

    def close(self) -> None:
        """Flush and close the file."""
        self._fh.close()


def read_delimited(path: Path, fmt: str) -> tuple[list[str], Iterator[list[str]], Any]:
    """Open an uploaded file: (header, iterator over the other rows, handle to close).

    A UTF-8 byte-order mark is dropped; quoting follows RFC 4180 as Marketo's parser does.
    """
    fh = open(path, encoding="utf-8-sig", newline="", errors="replace")  # noqa: SIM115
    reader = csv.reader(fh, delimiter=DELIMITERS[fmt], strict=False)
    header = next(reader, None)
    if header is None:
        return [], iter(()), fh
    return [h.strip() for h in header], reader, fh


_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


class RangeNotSatisfiableError(ValueError):
    """The Range header asks for bytes the file does not have."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` inclusive for a single ``bytes=a-b``, ``bytes=a-`` or ``bytes=-n`` range.

    None means "send the whole file" (no header, or a multi-range/unknown unit we ignore as RFC 9110
    allows). Raises RangeNotSatisfiableError for a range outside the file.
    """
    if not header:
        return None
    match = _RANGE.match(header)
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if first == "" and last == "":
        return None
    if first == "":
        length = int(last)
        if length == 0 or size == 0:
            raise RangeNotSatisfiableError(header)
        return max(0, size - length), size - 1
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if start >= size or (last != "" and int(last) < start):
        raise RangeNotSatisfiableError(header)
    return start, end


def iter_file(path: Path, start: int, length: int, chunk: int = CHUNK) -> Iterator[bytes]:
    """Yield ``length`` bytes of ``path`` from ``start`` in chunks, never the whole file at once."""
    with open(path, "rb") as fh:
        fh.seek(start)
        remaining = length
        while remaining > 0:
            data = fh.read(min(chunk, remaining))
            if not data:
                return
            remaining -= len(data)
            yield data
