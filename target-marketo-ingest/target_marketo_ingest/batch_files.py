"""BATCH message files, read through the SDK's storage and encoding classes.

The SDK's batch classes are private (`singer_sdk.helpers._batch`): they come through the
adapter module `sdk.py`, whose test pins them. The SDK's own
`Sink.process_batch_files` loads a whole file into a list; here each file is streamed row by
row so every row goes through the same path as a RECORD line.
"""

from __future__ import annotations

import gzip
import typing as t
import zlib
from pathlib import Path
from urllib.parse import unquote, urlparse

import msgspec
from singer_sdk.contrib.msgspec import decoder

from target_marketo_ingest import lines
from target_marketo_ingest.errors import InputError
from target_marketo_ingest.sdk import BaseBatchFileEncoding, BatchFileFormat, StorageTarget


class BadRow(t.NamedTuple):
    """A row that is not a JSON object: rejected with its file and row, never dropped."""

    raw: str
    reason: str
    message: str


def parse_encoding(raw: t.Any, *, line: int, stream: str) -> BaseBatchFileEncoding:
    """The message's `encoding`, checked: JSONL, plain or gzip."""
    if not isinstance(raw, dict):
        raise InputError("BATCH needs an object 'encoding'", line=line, stream=stream)
    try:
        encoding = BaseBatchFileEncoding.from_dict(raw)
    except TypeError as exc:
        raise InputError(f"BATCH encoding {raw!r}: {exc}", line=line, stream=stream) from None
    if encoding.format != BatchFileFormat.JSONL:
        raise InputError(
            f"BATCH format {encoding.format!r} is not supported; set the tap's batch_config "
            "encoding format to jsonl",
            line=line,
            stream=stream,
        )
    if encoding.compression not in {None, "none", "gzip"}:
        raise InputError(
            f"BATCH compression {encoding.compression!r} is not supported (gzip or none)",
            line=line,
            stream=stream,
        )
    return encoding


def parse_manifest(raw: t.Any, *, line: int, stream: str) -> list[str]:
    """The message's `manifest`: a list of file URLs."""
    if not isinstance(raw, list) or not all(isinstance(url, str) and url for url in raw):
        raise InputError("BATCH needs 'manifest', a list of file URLs", line=line, stream=stream)
    return raw


def iter_rows(
    url: str, encoding: BaseBatchFileEncoding, *, line: int, stream: str
) -> t.Iterator[tuple[int, dict | BadRow]]:
    """Each row of one file with its position (see `lines`), streamed, never all in memory.

    A missing or unreadable file, or a broken gzip stream, is an InputError naming the file
    (and the row reached); a row that is not a JSON object comes back as a BadRow.
    """
    base = lines.register_file(url, line)
    limit = lines.max_rows()
    row = 0
    try:
        if _missing_local_file(url):
            # The SDK's storage creates the file's folder before opening: not for a read.
            raise FileNotFoundError(url)  # noqa: TRY301 (reported below like any missing file)
        head, tail = StorageTarget.split_url(url)
        storage = StorageTarget.from_url(head)
        with storage.open(tail, mode="rb") as raw_file:
            source: t.IO[bytes] = (
                gzip.GzipFile(fileobj=raw_file, mode="rb")
                if encoding.compression == "gzip"
                else raw_file
            )
            with source:
                for data in source:
                    row += 1
                    if row > limit:
                        _too_many_rows(url, limit, line=line, stream=stream)
                    if not data.strip():
                        continue
                    yield base + row, _decode(data)
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"BATCH file {url} not found", line=line, stream=stream) from None
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        where = f"{url}#{row + 1}" if row else url
        raise InputError(
            f"BATCH file {where} cannot be read ({type(exc).__name__}: {exc})",
            line=line,
            stream=stream,
        ) from None


def _missing_local_file(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in {"", "file"} and not Path(unquote(parsed.path)).is_file()


def _too_many_rows(url: str, limit: int, *, line: int, stream: str) -> t.NoReturn:
    msg = f"BATCH file {url} has more than {limit} rows; split it into smaller files"
    raise InputError(msg, line=line, stream=stream)


def _decode(data: bytes) -> dict | BadRow:
    text = data.decode("utf-8", "replace").rstrip("\r\n")
    try:
        value = decoder.decode(data)
    except UnicodeDecodeError as exc:
        return BadRow(text, "malformed_row", f"row is not UTF-8 ({exc.reason})")
    except msgspec.DecodeError as exc:
        return BadRow(text, "malformed_row", f"row is not valid JSON ({exc})")
    if type(value) is not dict:
        return BadRow(text, "malformed_row", "row is not a JSON object (a raw record)")
    return value
