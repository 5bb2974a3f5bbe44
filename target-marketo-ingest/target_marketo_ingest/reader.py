"""Singer input lines in, with errors that name the line: the SDK's msgspec decoder, as bytes."""

from __future__ import annotations

import sys
import typing as t
from collections import Counter

import msgspec
from singer_sdk.contrib.msgspec import MsgSpecReader, decoder

from target_marketo_ingest.errors import InputError


class SingerLineReader(MsgSpecReader):
    """Reads stdin as bytes so non-UTF-8 input is reported with its line, not a traceback."""

    def __init__(self) -> None:
        super().__init__()
        self.line_number = 0

    @property
    def default_input(self) -> t.IO:  # type: ignore[override]
        """Standard input as bytes."""
        return sys.stdin.buffer

    def process_lines(
        self,
        file_input: t.IO | None,
        callbacks: dict[str, t.Callable[[dict], None]],
    ) -> t.Counter[str]:
        """Decode each line and dispatch it; any bad line raises InputError naming it."""
        stats: dict[str, int] = {}
        decode = decoder.decode
        number = 0
        # A `for` loop (not `next()` in a `try` per line): reading is the hot path, and a
        # line that is not UTF-8 (text input only) ends the run anyway.
        try:
            for raw in file_input or self.default_input:
                number += 1
                self.line_number = number
                try:
                    message = decode(raw)
                except UnicodeDecodeError as exc:
                    raise InputError(
                        f"input is not UTF-8 ({exc.reason} at byte {exc.start})", line=number
                    ) from None
                except msgspec.DecodeError as exc:
                    if not raw.strip():
                        continue
                    raise InputError(f"malformed JSON ({exc})", line=number) from None
                if type(message) is not dict:
                    raise InputError("expected a JSON object (a Singer message)", line=number)
                kind = message.get("type")
                callback = callbacks.get(kind)  # type: ignore[arg-type]
                if callback is None:
                    raise InputError(
                        f"unknown Singer message type {kind!r}",
                        line=number,
                        stream=message.get("stream"),
                    )
                callback(message)
                stats[kind] = stats.get(kind, 0) + 1
        except UnicodeDecodeError as exc:  # from reading a text input: the next line is bad
            raise InputError(
                f"input is not UTF-8 ({exc.reason} at byte {exc.start} of the chunk)",
                line=number + 1,
            ) from None
        return Counter(stats)
