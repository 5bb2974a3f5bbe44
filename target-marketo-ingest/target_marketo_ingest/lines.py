"""Input positions as one integer, so rows of BATCH files can name their file and row.

Write methods carry a record's position as an int64 through spool files and requests. RECORD
lines keep their 1-based line number; a row of a BATCH file gets a number at or above
`BATCH_BASE` that encodes which file (registered here) and which row, and turns back into
``file:///x.json.gz#17`` wherever a position is shown (the rejects file, error messages).
"""

from __future__ import annotations

import threading
import typing as t

BATCH_BASE = 1 << 48
_ROW_BITS = 32
_ROW_MASK = (1 << _ROW_BITS) - 1

_lock = threading.Lock()
_files: list[str] = []
_file_lines: list[int] = []


def register_file(url: str, line: int = 0) -> int:
    """Number a BATCH file read from input `line`; positions of its rows are `base + row`."""
    with _lock:
        _files.append(url)
        _file_lines.append(line)
        return BATCH_BASE + ((len(_files) - 1) << _ROW_BITS)


def input_line(position: int | None) -> int:
    """The input line a position came from (a BATCH row: its BATCH message's line; none: 0).

    A STATE read at line S covers exactly the positions whose input line is below S.
    """
    if position is None:
        return 0
    if position < BATCH_BASE:
        return position
    index = (position - BATCH_BASE) >> _ROW_BITS
    with _lock:
        return _file_lines[index] if index < len(_file_lines) else 0


def max_rows() -> int:
    """Rows a single BATCH file may hold (positions must stay inside its range)."""
    return _ROW_MASK


def label(line: int | None) -> int | str | None:
    """A position as shown to people: the line number, or ``<file url>#<row>``."""
    if line is None or line < BATCH_BASE:
        return line
    offset = line - BATCH_BASE
    index = offset >> _ROW_BITS
    with _lock:
        url = _files[index] if index < len(_files) else "<unknown batch file>"
    return f"{url}#{offset & _ROW_MASK}"


def describe(line: t.Any) -> str:
    """Position for an error message: ``line 12`` or ``file:///x.json.gz#17``."""
    shown = label(line)
    return f"line {shown}" if isinstance(shown, int) else str(shown)
