"""The rejects file: one JSON line per rejected record (and per warning), with the reason."""

from __future__ import annotations

import datetime as dt
import tempfile
import threading
import typing as t
from pathlib import Path

import orjson

from target_marketo_ingest.lines import input_line, label

DEFAULT_REJECTS_PATH = "marketo-rejects.jsonl"

REJECT = "reject"
WARNING = "warning"
_WRITE_BATCH = 4096  # spilled entries written per call


def _default(value: t.Any) -> t.Any:
    return str(value)


class RejectsFile:
    """Thread-safe JSONL writer, opened on the first entry so clean runs leave no file.

    Each line: ``{"kind", "stream", "line", "reason", "field", "code", "message",
    "method", "at", "run", "record"}``. ``line`` is the 1-based input line of the record
    (``<file url>#<row>`` for a row of a BATCH file); ``record`` is the record as read
    (for bulk failures: the row as sent to Marketo); ``run`` names the run that wrote it.

    An entry reaches the file when the STATE that covers its record goes out (`commit`), or
    when the run ends (`close`), never before: a run killed before that STATE leaves no line
    for records the orchestrator will send again, so a record rejected there and applied on
    the rerun is not reported as rejected. A record can still have two lines when a run that
    failed (or was killed between writing its rejects and its STATE) is rerun from an older
    STATE; the later ``run`` is the outcome that stands.
    """

    # Entries held in memory before they spill to a temporary file (input with few STATEs).
    SPILL_BYTES = 8 << 20

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path or DEFAULT_REJECTS_PATH)
        self._lock = threading.Lock()
        self._fh: t.BinaryIO | None = None
        self._held: list[tuple[int, bytes]] = []
        self._held_bytes = 0
        self._spill: t.BinaryIO | None = None
        self.run = dt.datetime.now(tz=dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
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
        """Hold one entry until the STATE covering its record goes out (see `commit`)."""
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
            "run": self.run,
            "record": record,
        }
        data = orjson.dumps(entry, default=_default) + b"\n"
        with self._lock:
            self._held.append((input_line(line), data))
            self._held_bytes += len(data)
            self.written += 1
            if self._held_bytes > self.SPILL_BYTES:
                self._spill_locked()

    def commit(self, before_line: int) -> None:
        """A STATE read at `before_line` goes out next: write every entry of a record above it."""
        with self._lock:
            if self._spill is not None:
                self._spill_locked()
                self._commit_spill_locked(before_line)
            keep = [held for held in self._held if held[0] >= before_line]
            if len(keep) < len(self._held):
                out = [data for at, data in self._held if at < before_line]
                self._held = keep
                self._held_bytes = sum(len(d) for _, d in keep)
                self._append_locked(out)

    def close(self) -> None:
        """The run ends: every entry held goes to the file, which is closed."""
        with self._lock:
            if self._spill is not None:
                self._spill_locked()
                self._commit_spill_locked(None)
            if self._held:
                self._append_locked([d for _, d in self._held])
                self._held = []
                self._held_bytes = 0
            if self._fh is not None:
                self._fh.close()
                self._fh = None

    def _append_locked(self, entries: list[bytes]) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("ab")
        self._fh.write(b"".join(entries))
        self._fh.flush()  # a crash after the STATE keeps every line it covers

    def _spill_locked(self) -> None:
        if self._spill is None:
            self._spill = tempfile.TemporaryFile()  # noqa: SIM115 - lives until close()
        self._spill.seek(0, 2)
        self._spill.writelines(b"%d\t%s" % (at, data) for at, data in self._held)
        self._held = []
        self._held_bytes = 0

    def _commit_spill_locked(self, before_line: int | None) -> None:
        """Stream the spill file: covered entries to the file, the rest to a new spill."""
        spill, self._spill = self._spill, None
        assert spill is not None
        spill.seek(0)
        rest = tempfile.TemporaryFile()  # noqa: SIM115 - becomes the spill file
        out: list[bytes] = []
        kept = 0
        for raw in spill:
            at, _, data = raw.partition(b"\t")
            if before_line is None or int(at) < before_line:
                out.append(data)
                if len(out) >= _WRITE_BATCH:
                    self._append_locked(out)
                    out = []
            else:
                rest.write(raw)
                kept += 1
        spill.close()
        if out:
            self._append_locked(out)
        if kept:
            self._spill = rest
        else:
            rest.close()
