"""The rejects file: one JSON line per rejected record (and per warning), with the reason."""

from __future__ import annotations

import datetime as dt
import threading
import typing as t
from pathlib import Path

import orjson

from target_marketo_ingest.lines import label

DEFAULT_REJECTS_PATH = "marketo-rejects.jsonl"

REJECT = "reject"
WARNING = "warning"


def _default(value: t.Any) -> t.Any:
    return str(value)


class RejectsFile:
    """Thread-safe JSONL writer, opened on the first entry so clean runs leave no file.

    Each line: ``{"kind", "stream", "line", "reason", "field", "code", "message",
    "method", "at", "record"}``. ``line`` is the 1-based input line of the record
    (``<file url>#<row>`` for a row of a BATCH file); ``record`` is the record as read
    (for bulk failures: the row as sent to Marketo).
    """

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path or DEFAULT_REJECTS_PATH)
        self._lock = threading.Lock()
        self._fh: t.BinaryIO | None = None
        self.written = 0

    def write(
        self,
        *,
        kind: str,
        stream: str,
        line: int | None,
        reason: str,
        message: str,
        record: t.Any,
        method: str,
        field: str | None = None,
        code: str | int | None = None,
    ) -> None:
        """Append one entry and flush, so a crash keeps every reject written so far."""
        entry = {
            "kind": kind,
            "stream": stream,
            "line": label(line),
            "reason": reason,
            "field": field,
            "code": None if code is None else str(code),
            "message": message,
            "method": method,
            "at": dt.datetime.now(tz=dt.timezone.utc).isoformat(),
            "record": record,
        }
        data = orjson.dumps(entry, default=_default) + b"\n"
        with self._lock:
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = self.path.open("ab")
            self._fh.write(data)
            self._fh.flush()
            self.written += 1

    def close(self) -> None:
        """Close the file if it was opened."""
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
