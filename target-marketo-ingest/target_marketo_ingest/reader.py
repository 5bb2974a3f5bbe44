"""Singer input lines in, with errors that name the line: the SDK's msgspec decoder, as bytes.

Standard input is read through a 1 MiB buffer, and a pipe is widened to 1 MiB where Linux
allows it: with Python's 8 KiB buffer over a 64 KiB pipe, reading 1M RECORD lines (684 MB)
through the benchmark's pipe took 2.5-2.7 s wall against 1.8 s from a file; with both, 1.7-1.8 s
(measured 2026-11-30, a read + msgspec decode loop, 2 shared cores).

RECORD lines go on in runs (`RecordRun`: up to 512 consecutive lines of one stream), so the
target, sink, writer and row store take a list per run instead of a call chain per record:
the whole dry run over 200k member lines, in-process, 8.25 -> 7.60 us a record. Lines of a
stream with a typed decoder are not decoded here at all (typed_records.py).
"""

from __future__ import annotations

import contextlib
import io
import sys
import typing as t
from collections import Counter

import msgspec
from singer_sdk.contrib.msgspec import MsgSpecReader, decoder

from target_marketo_ingest.errors import InputError
from target_marketo_ingest.typed_records import RECORD_HEAD

#: RECORD lines handed over at once (a run of one stream's consecutive lines).
RUN_LINES = 512
RecordsCallback = t.Callable[[str, list[t.Any], int], None]
_NAME_AT = len(RECORD_HEAD)


class SingerLineReader(MsgSpecReader):
    """Reads stdin as bytes so non-UTF-8 input is reported with its line, not a traceback.

    With `on_records` set, runs of consecutive RECORD lines of one stream go to it as one
    list (stream, messages, first line number) instead of one callback per line. Lines of a
    stream named in `raw_streams` (its name as JSON bytes -> stream) that start with
    `RECORD_HEAD` are not decoded here: they go, as bytes, to `on_raw_records`, whose stream
    decodes them with its own typed decoder (see typed_records.py).
    """

    def __init__(self) -> None:
        super().__init__()
        self.line_number = 0
        self.on_records: RecordsCallback | None = None
        self.on_raw_records: RecordsCallback | None = None
        self.raw_streams: dict[bytes, str] = {}

    @property
    def default_input(self) -> t.IO:  # type: ignore[override]
        """Standard input as bytes, read in large chunks (see the module docstring)."""
        return open_stdin()

    def process_lines(
        self,
        file_input: t.IO | None,
        callbacks: dict[str, t.Callable[[dict], None]],
    ) -> t.Counter[str]:
        """Decode each line and dispatch it; any bad line raises InputError naming it.

        RECORD lines gather into a run while they are consecutive lines of one stream; the
        run goes out before any other message, a blank line, a bad line or the end of input,
        so every message is handled in input order. Handing 512 records at a time saves the
        call chain per record (reader -> target -> sink -> writer -> row store).
        """
        stats: dict[str, int] = {}
        decode = decoder.decode
        on_records = self.on_records
        run = RecordRun(self, on_records, self.on_raw_records, stats)
        append = run.append
        raw_streams = self.raw_streams
        number = 0
        # A `for` loop (not `next()` in a `try` per line): reading is the hot path, and a
        # line that is not UTF-8 (text input only) ends the run anyway.
        try:
            for raw in file_input or self.default_input:
                number += 1
                if raw_streams and raw.startswith(RECORD_HEAD):
                    stream = raw_streams.get(raw[_NAME_AT : raw.find(b'"', _NAME_AT)])
                    if stream is not None:
                        append(raw, number, stream, True)
                        continue
                try:
                    message = decode(raw)
                except (UnicodeDecodeError, msgspec.DecodeError) as exc:
                    run.hand_over()
                    self._bad_line(exc, raw, number)
                    continue  # a blank line
                if on_records and type(message) is dict and message.get("type") == "RECORD":
                    append(message, number, message.get("stream"), False)
                    continue
                run.hand_over()
                self.line_number = number
                self._dispatch(message, callbacks, number)
                stats[message["type"]] = stats.get(message["type"], 0) + 1
        except UnicodeDecodeError as exc:  # from reading a text input: the next line is bad
            run.hand_over()
            raise InputError(
                f"input is not UTF-8 ({exc.reason} at byte {exc.start} of the chunk)",
                line=number + 1,
            ) from None
        run.hand_over()
        return Counter(stats)

    def decode_line(self, raw: bytes, number: int) -> dict:
        """One RECORD line left undecoded, decoded as the reading loop would (same errors)."""
        try:
            message = decoder.decode(raw)
        except (UnicodeDecodeError, msgspec.DecodeError) as exc:
            self._bad_line(exc, raw, number)
            raise  # pragma: no cover (a line starting with RECORD_HEAD is never blank)
        if type(message) is not dict:  # pragma: no cover (it starts with '{')
            raise InputError("expected a JSON object (a Singer message)", line=number)
        return message

    def _bad_line(self, exc: Exception, raw: bytes, number: int) -> None:
        """A line msgspec could not decode: InputError naming it, unless it is blank."""
        self.line_number = number
        if isinstance(exc, UnicodeDecodeError):
            raise InputError(
                f"input is not UTF-8 ({exc.reason} at byte {exc.start})", line=number
            ) from None
        if raw.strip():
            raise InputError(f"malformed JSON ({exc})", line=number) from None

    @staticmethod
    def _dispatch(
        message: t.Any, callbacks: dict[str, t.Callable[[dict], None]], number: int
    ) -> None:
        """One message to its handler; a non-object or an unknown type is an InputError."""
        if type(message) is not dict:
            raise InputError("expected a JSON object (a Singer message)", line=number)
        kind = message.get("type")
        callback = callbacks.get(kind)  # type: ignore[arg-type]
        if callback is None:
            raise InputError(
                f"unknown Singer message type {kind!r}", line=number, stream=message.get("stream")
            )
        callback(message)


class RecordRun:
    """Consecutive RECORD lines of one stream and one kind, gathered for one call.

    The kind is decoded messages (to `on_records`) or undecoded lines (to `on_raw_records`).
    """

    __slots__ = ("first", "messages", "on_raw", "on_records", "raw", "reader", "stats", "stream")

    def __init__(
        self,
        reader: SingerLineReader,
        on_records: RecordsCallback | None,
        on_raw: RecordsCallback | None,
        stats: dict[str, int],
    ) -> None:
        self.reader = reader
        self.on_records = on_records
        self.on_raw = on_raw
        self.stats = stats
        self.messages: list[t.Any] = []
        self.stream: t.Any = None
        self.raw = False
        self.first = 0

    def append(self, item: t.Any, number: int, stream: t.Any, raw: bool) -> None:
        """Add a RECORD (decoded message, or undecoded line if `raw`) read at line `number`.

        One that does not continue the run (another stream or kind, not the next line, or a
        full run) sends the run first.
        """
        messages = self.messages
        if messages and (
            stream != self.stream
            or raw != self.raw
            or number != self.first + len(messages)
            or len(messages) >= RUN_LINES
        ):
            self.hand_over()
        if not messages:
            self.stream, self.first, self.raw = stream, number, raw
        messages.append(item)

    def hand_over(self) -> None:
        """Send the run (if any) on, its last line as the reader's line."""
        messages = self.messages
        if not messages:
            return
        batch = messages[:]
        messages.clear()
        self.reader.line_number = self.first + len(batch) - 1
        callback = self.on_raw if self.raw else self.on_records
        t.cast("RecordsCallback", callback)(self.stream, batch, self.first)
        self.stats["RECORD"] = self.stats.get("RECORD", 0) + len(batch)


INPUT_BUFFER = 1 << 20
F_SETPIPE_SZ = 1031  # Linux's fcntl to size a pipe (fcntl.F_SETPIPE_SZ, Python 3.10+)


def open_stdin() -> t.IO[bytes]:
    """Standard input as bytes with a 1 MiB buffer; a pipe is widened to 1 MiB if allowed.

    Best effort: a file, a terminal, another OS or a kernel that refuses the size keeps its
    own; a replaced `sys.stdin` without a file descriptor is read as it is.
    """
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return sys.stdin.buffer
    with contextlib.suppress(ImportError, OSError):  # not a pipe, not Linux, over the max
        import fcntl  # noqa: PLC0415 (POSIX only)

        fcntl.fcntl(fd, F_SETPIPE_SZ, INPUT_BUFFER)
    return open(fd, "rb", buffering=INPUT_BUFFER, closefd=False)  # stdin itself stays open
