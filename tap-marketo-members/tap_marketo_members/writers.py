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

import orjson
from marketo_common import ConfigError

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

    def write(self, rows: Iterable[dict]) -> int:
        """Write every row (the window is out when this returns); how many."""
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
    """RECORD lines serialised by orjson straight to stdout in ~1 MB writes (the fast path)."""

    FLUSH_BYTES = WRITE_BYTES

    def __init__(self, stream: str, version: int | None) -> None:
        self._message: dict[str, Any] = {
            "type": "RECORD",
            "stream": stream,
            "record": None,
            "time_extracted": None,
        }
        if version is not None:
            self._message["version"] = version
        self._buffer = bytearray()

    def write(self, records: Iterable[dict]) -> int:
        """Serialise every record of a window and flush; returns how many."""
        message = self._message
        message["time_extracted"] = dt.datetime.now(dt.timezone.utc).isoformat()
        buffer = self._buffer
        extend = buffer.extend
        dumps = orjson.dumps
        option = orjson.OPT_APPEND_NEWLINE
        limit = self.FLUSH_BYTES
        count = 0
        for count, record in enumerate(records, start=1):  # noqa: B007
            message["record"] = record
            extend(dumps(message, option=option))
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


class SdkRecords:
    """Records through the SDK's own writer, so stream maps and flattening apply."""

    def __init__(self, write_record: Callable[[dict], None]) -> None:
        self._write_record = write_record

    def write(self, records: Iterable[dict]) -> int:
        """One RECORD message per record through the SDK."""
        count = 0
        for count, record in enumerate(records, start=1):  # noqa: B007
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

    def write(self, records: Iterable[dict]) -> int:
        """Write a window's rows into files of at most `batch_size`; list each closed file."""
        rows = iter(records)
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
