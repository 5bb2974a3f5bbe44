"""Record writers: where program member rows go, behind one small protocol (`RecordWriter`).

RECORD lines on stdout (the fast path), records through the SDK's writer (stream maps), or BATCH
files a loader reads whole. A writer takes one window's rows at a time: when `write` returns,
every row is out (on stdout, or in a closed batch file listed in `manifests` for the stream to
announce), so the stream commits the window's bookmark after it.
"""

from __future__ import annotations

import datetime as dt
import gzip
import importlib.util
import itertools
import sys
import uuid
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
import orjson
from marketo_common import ConfigError

from tap_marketo_members.pipes import widen_pipe

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from tap_marketo_members.sdk import BatchConfig

BATCH_FORMATS = ("jsonl", "parquet")
BATCH_COMPRESSIONS = (None, "none", "gzip")
# gzip level 1: about 4x faster than Python's default 9 for ~15% larger files; the loader's
# decompression costs the same either way, and the files live only until the loader reads them.
GZIP_LEVEL = 1
WRITE_BYTES = 1 << 20
PARQUET_ROW_GROUP = 10_000


class RecordWriter(Protocol):
    """Where a window's rows go."""

    TAKES_STRUCTS: bool  # export rows may come as `parsing.record_struct` instances, not dicts

    def write(self, chunks: Iterable[list[dict]]) -> int:
        """Write every row, given in lists (the window is out when this returns); how many."""
        ...

    def flush(self) -> None:
        """Push out anything buffered."""
        ...


def check_batch_config(raw: Any) -> None:
    """Refuse a `batch_config` this tap cannot honour, before anything is exported."""
    if not isinstance(raw, dict):
        raise ConfigError("batch_config", "an object with encoding and storage")
    encoding = raw.get("encoding")
    storage = raw.get("storage")
    if not isinstance(encoding, dict) or encoding.get("format") not in BATCH_FORMATS:
        raise ConfigError("batch_config.encoding.format", f"one of {', '.join(BATCH_FORMATS)}")
    if encoding.get("compression") not in BATCH_COMPRESSIONS:
        raise ConfigError("batch_config.encoding.compression", "gzip or none")
    if not isinstance(storage, dict) or not isinstance(storage.get("root"), str):
        raise ConfigError("batch_config.storage.root", "a folder or URL such as file:///tmp/batch")
    size = raw.get("batch_size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise ConfigError("batch_config.batch_size", "a positive integer (rows per file)")
    if encoding["format"] == "parquet" and importlib.util.find_spec("pyarrow") is None:
        raise ConfigError(
            "batch_config.encoding.format",
            "jsonl, or parquet with pyarrow installed (pip install 'tap-marketo-members[parquet]')",
        )


class RecordLines:
    """RECORD lines straight to stdout in ~1 MB writes (the fast path).

    Rows come as `parsing.record_struct` instances (export files) or dicts (REST pages, removal
    rows, rows the column pass refused). A list of structs goes out in one msgspec call; a dict
    through orjson, one at a time. Both give the message's keys in the SDK's order.
    """

    FLUSH_BYTES = WRITE_BYTES
    TAKES_STRUCTS = True

    def __init__(self, stream: str, version: int | None) -> None:
        self._stream = stream
        self._version = version
        fields = ["type", "stream", "record", "time_extracted"]
        if version is not None:
            fields.append("version")
        self._message_type = msgspec.defstruct(
            "RecordMessage", [(name, object) for name in fields], gc=False
        )
        self._encoder = msgspec.json.Encoder()
        self._buffer = bytearray()
        self.pipe_bytes = _widen_stdout()

    def write(self, chunks: Iterable[list[Any]]) -> int:
        """Serialise every record of a window and flush; returns how many."""
        extracted = dt.datetime.now(dt.timezone.utc).isoformat()
        message: dict[str, Any] = {
            "type": "RECORD",
            "stream": self._stream,
            "record": None,
            "time_extracted": extracted,
        }
        constants = [itertools.repeat("RECORD"), itertools.repeat(self._stream)]
        tail = [itertools.repeat(extracted)]
        if self._version is not None:
            message["version"] = self._version
            tail.append(itertools.repeat(self._version))
        buffer = self._buffer
        dumps = orjson.dumps
        option = orjson.OPT_APPEND_NEWLINE
        encode_lines = self._encoder.encode_lines
        make = self._message_type
        limit = self.FLUSH_BYTES
        count = 0
        for chunk in chunks:
            if type(chunk[0]) is dict:
                for record in chunk:
                    message["record"] = record
                    buffer += dumps(message, option=option)
            else:
                buffer += encode_lines(list(map(make, *constants, chunk, *tail)))
            count += len(chunk)
            if len(buffer) >= limit:
                self.flush()
        self.flush()
        return count

    def flush(self) -> None:
        """Write buffered lines in one call, after anything the SDK wrote before them."""
        if not self._buffer:
            return
        out = sys.stdout
        out.flush()
        binary = getattr(out, "buffer", None)
        if binary is not None:
            binary.write(self._buffer)
            binary.flush()
        else:  # a text-only stdout (some test harnesses)
            out.write(self._buffer.decode())
            out.flush()
        self._buffer.clear()


def _widen_stdout() -> int | None:
    """A 1 MiB pipe, so each ~1 MB write lands while the reader is still busy with the last."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # a replaced stdout (some test harnesses)
        return None
    return widen_pipe(fd)


class SdkRecords:
    """Records through the SDK's own writer, so stream maps and flattening apply."""

    TAKES_STRUCTS = False

    def __init__(self, write_record: Callable[[dict], None]) -> None:
        self._write_record = write_record

    def write(self, chunks: Iterable[list[dict]]) -> int:
        """One RECORD message per record through the SDK."""
        count = 0
        for count, record in enumerate(itertools.chain.from_iterable(chunks), start=1):  # noqa: B007
            self._write_record(record)
        return count

    def flush(self) -> None:
        """The SDK writes each message as it goes."""


class BatchFiles:
    """Rows written straight into batch files of at most `batch_size` rows each.

    Files are named like the SDK's own batcher names them and written through the storage the
    `batch_config` names (the SDK's fsspec-backed `StorageTarget`), so any root the SDK's targets
    can read works here too.
    """

    TAKES_STRUCTS = False

    def __init__(
        self,
        config: BatchConfig,
        *,
        tap_name: str,
        stream_name: str,
        properties: Mapping[str, Any],
    ) -> None:
        self.config = config
        self.format = config.encoding.format
        self.gzip = config.encoding.compression == "gzip"
        self._sync_id = f"{tap_name}--{stream_name}-{uuid.uuid4()}"
        self._properties = properties
        self._seq = 0
        self.files = 0
        self.bytes_written = 0
        self.manifests: list[list[str]] = []  # closed files not yet announced (BATCH messages)

    def write(self, chunks: Iterable[list[dict]]) -> int:
        """Write a window's rows into files of at most `batch_size`; list each closed file."""
        rows = itertools.chain.from_iterable(chunks)
        size = self.config.batch_size
        total = 0
        for first in rows:
            chunk = itertools.chain((first,), itertools.islice(rows, size - 1))
            self._seq += 1
            filename = f"{self.config.storage.prefix or ''}{self._sync_id}-{self._seq}"
            filename += ".json" if self.format == "jsonl" else ".parquet"
            filename += ".gz" if self.gzip else ""
            with self.config.storage.open(filename, "wb") as out:
                if self.format == "jsonl":
                    count = self._write_jsonl(chunk, out)
                else:
                    count = self._write_parquet(chunk, out)
            total += count
            self.files += 1
            self.manifests.append([self.config.storage.get_url(filename)])
        return total

    def take_manifests(self) -> list[list[str]]:
        """The closed files to announce, each once."""
        taken, self.manifests = self.manifests, []
        return taken

    def flush(self) -> None:
        """Files are closed as they fill; nothing is held back."""

    def _write_jsonl(self, rows: Iterable[dict], out: Any) -> int:
        stream = (
            gzip.GzipFile(fileobj=out, mode="wb", compresslevel=GZIP_LEVEL, mtime=0)
            if self.gzip
            else None
        )
        target = stream or out
        buffer = bytearray()
        dumps = orjson.dumps
        option = orjson.OPT_APPEND_NEWLINE
        count = 0
        for count, row in enumerate(rows, start=1):  # noqa: B007
            buffer.extend(dumps(row, option=option))
            if len(buffer) >= WRITE_BYTES:
                self.bytes_written += len(buffer)
                target.write(buffer)
                buffer.clear()
        self.bytes_written += len(buffer)
        target.write(buffer)
        if stream is not None:
            stream.close()  # closes only the gzip layer; `out` is closed by the storage
        return count

    def _write_parquet(self, rows: Iterable[dict], out: Any) -> int:
        import pyarrow as pa  # noqa: PLC0415 - optional dependency, checked at start-up
        import pyarrow.parquet as pq  # noqa: PLC0415

        schema = arrow_schema(self._properties)
        count = 0
        with pq.ParquetWriter(out, schema, compression="gzip" if self.gzip else "snappy") as pw:
            while True:
                group = list(itertools.islice(rows, PARQUET_ROW_GROUP))
                if not group:
                    break
                count += len(group)
                pw.write_table(pa.Table.from_pylist(group, schema=schema))
        return count


def arrow_schema(properties: Mapping[str, Any]) -> Any:
    """The Arrow schema of a JSON Schema's properties, so every file has the same columns."""
    import pyarrow as pa  # noqa: PLC0415

    def arrow_type(prop: Mapping[str, Any]) -> Any:
        types = prop.get("type", "string")
        types = {types} if isinstance(types, str) else set(types)
        if "integer" in types:
            return pa.int64()
        if "number" in types:
            return pa.float64()
        if "boolean" in types:
            return pa.bool_()
        return pa.string()

    return pa.schema([(name, arrow_type(prop)) for name, prop in properties.items()])
