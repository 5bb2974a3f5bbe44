"""Bulk import files, shared by leads and program members: rows in, files of <= 10 MB out.

Records become CSV rows as they arrive and go to the stream's `RowStore` (spool files and a
SQLite key index on disk, last record per key wins), one open file per group (a program and
status). A file is cut when the next row would pass the size limit: its rows are streamed into
the import file, which goes to `ImportJobRunner`. At most `max_concurrent_imports` jobs run
and a bounded number wait; past that, `add` blocks, so reading input pauses and memory and disk
stay bounded.
"""

from __future__ import annotations

import csv
import shutil
import tempfile
import time
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from target_marketo_ingest.import_jobs import ImportFile, ImportJobRunner, match_rows
from target_marketo_ingest.row_store import RowStore

if t.TYPE_CHECKING:
    from target_marketo_ingest.context import WriteContext
    from target_marketo_ingest.import_jobs import BulkEndpoint

__all__ = ["BulkImportWriter", "CsvRenderer", "GroupSpec", "ImportFile", "match_rows"]

GroupSpec = tuple[t.Any, dict[str, t.Any], str]
NO_GROUP: GroupSpec = (None, {}, "")
MAX_OPEN_FILES = 256  # groups with an open file; more cuts the fullest (bounds the disk)


class _LineSink:
    """csv.writer target that keeps each rendered line (csv.writer writes one per row)."""

    __slots__ = ("write",)

    def __init__(self, lines: list[str]) -> None:
        self.write = lines.append


class CsvRenderer:
    """Render rows to CSV lines (RFC 4180 quoting: commas, quotes, newlines).

    `writerows` appends one line per row to `lines`, which the caller takes and clears.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._writer = csv.writer(_LineSink(self.lines), lineterminator="\n")
        self.writerows = self._writer.writerows

    def render(self, row: list[str]) -> str:
        """The CSV text of one row, newline included."""
        self._writer.writerow(row)
        return self.lines.pop()


@dataclass(eq=False)
class _OpenFile:
    """One group's file being filled; its rows are in the store, only counters here."""

    id: int
    params: dict[str, t.Any]
    label: str
    group_key: t.Any
    scope: str
    size: int  # bytes of the import file if cut now; an upper bound until refreshed
    added: int = 0  # rows put in, superseded ones included
    unit: int | None = None
    opened_at: float = field(default_factory=time.monotonic)


class BulkImportWriter:
    """Sink-facing side: rows in, files out, one open file per group.

    Records of one scope (a program) with the same key are one member: across the open
    files of different statuses the last record wins too.
    """

    def __init__(
        self,
        ctx: WriteContext,
        endpoint: BulkEndpoint,
        header: list[str],
        key_index: list[int],
        *,
        scope_param: str | None = None,
    ) -> None:
        self.ctx = ctx
        self._scope_param = scope_param
        self.header = header
        self._key_index = key_index
        self._single_key = key_index[0] if len(key_index) == 1 else None
        renderer = CsvRenderer()
        self._writerows = renderer.writerows
        self._rendered = renderer.lines
        self._header_bytes = renderer.render(header).encode("utf-8")
        self._files: dict[t.Any, _OpenFile] = {}
        self._max_bytes = ctx.options.max_import_bytes
        self._counter = 0
        self.runner = ImportJobRunner(ctx, endpoint)
        self._dir = Path(
            tempfile.mkdtemp(prefix="target-marketo-ingest-", dir=ctx.options.work_dir)
        )
        self.store = RowStore(self._dir / "rows.sqlite")
        self._add = self.store.add

    def add(self, row: list[str], seq: int, line_no: int, group: GroupSpec = NO_GROUP) -> None:
        """Add one validated row; cuts the group's file first when the row would not fit.

        `group` is (key, job parameters, label): one open file per key.
        """
        self.add_many([row], [seq], [line_no], [group])

    def add_many(
        self,
        rows: list[list[str]],
        seqs: list[int],
        lines: list[int],
        groups: list[GroupSpec],
    ) -> None:
        """Add validated rows in order, as `add` would one by one.

        The rows are rendered by one `writerows` call and the loop below is the only Python
        step per row (a run of 512 records from the reader arrives as one call).
        """
        self._writerows(rows)
        texts = self._rendered[:]
        self._rendered.clear()
        files = self._files
        max_bytes = self._max_bytes
        single_key = self._single_key
        store_add = self._add
        for row, text, seq, line_no, group in zip(rows, texts, seqs, lines, groups, strict=True):
            data = text.encode("utf-8")
            nbytes = len(data)
            file = files.get(group[0])
            if file is None:
                file = self._open(group)
            if file.size + nbytes >= max_bytes:
                file = self._room_for(file, group, nbytes, row, line_no)
                if file is None:
                    continue
            if file.unit is None:
                file.unit = self.ctx.checkpoints.open_unit(seq)
            key = (
                row[single_key]
                if single_key is not None
                else "\x1f".join(row[i] for i in self._key_index)
            )
            store_add(file.id, file.scope, key, line_no, data)
            file.size += nbytes
            file.added += 1

    def _room_for(
        self, file: _OpenFile, group: GroupSpec, nbytes: int, row: list[str], line_no: int
    ) -> _OpenFile | None:
        """The file a row that may not fit goes to: this one, a new one, or none (rejected)."""
        rows, size = self.store.live(file.id)  # superseded rows no longer count
        file.size = len(self._header_bytes) + size
        if file.size + nbytes < self._max_bytes:
            return file
        if not rows:
            self.ctx.reject(
                line=line_no,
                reason="record_too_large",
                message=f"one row is {nbytes} bytes; import files must stay under "
                f"{self._max_bytes} bytes",
                record=dict(zip(self.header, row, strict=False)),
            )
            return None
        self._roll(file)
        return self._open(group)

    def _open(self, spec: GroupSpec) -> _OpenFile:
        if len(self._files) >= MAX_OPEN_FILES:
            self._roll(max(self._files.values(), key=lambda f: f.size))
        group_key, params, label = spec
        scope = params.get(self._scope_param) if self._scope_param else None
        file = _OpenFile(
            id=self.store.open_file(),
            params=params,
            label=label,
            group_key=group_key,
            scope="" if scope is None else str(scope),
            size=len(self._header_bytes),
        )
        self._files[group_key] = file
        return file

    def _roll(self, file: _OpenFile) -> None:
        """Cut one open file into an import file and send it (or, in a dry run, count it)."""
        if self._files.get(file.group_key) is file:
            del self._files[file.group_key]
        ctx = self.ctx
        dry_run = ctx.options.dry_run
        number = self._counter + 1
        path = self._dir / f"{ctx.stream}-{number:05d}.csv"
        with path.open("wb") as out:
            out.write(self._header_bytes)
            cut = self.store.cut(file.id, out, keys=not dry_run)
        rows = len(cut.lines)
        if file.added > rows:
            ctx.summary.add("superseded", file.added - rows)
        if not rows:
            path.unlink(missing_ok=True)
            if file.unit is not None:
                ctx.checkpoints.close_unit(file.unit)
            return
        self._counter = number
        label = f"{file.label}file {number}"
        imported = ImportFile(
            path=path,
            header=self.header,
            line_numbers=cut.lines,  # type: ignore[arg-type]
            size=len(self._header_bytes) + cut.size,
            unit=t.cast("int", file.unit),
            params=file.params,
            label=label.strip(),
            key_hashes=cut.key_hashes,
        )
        ctx.summary.add("files")
        if dry_run:
            ctx.logger.info(
                "Stream '%s': dry run: built %s (%d rows, %d bytes); not sent",
                ctx.stream,
                imported.label,
                rows,
                imported.size,
            )
            ctx.summary.add("dry_run", rows)
            path.unlink(missing_ok=True)
            ctx.checkpoints.close_unit(imported.unit)
            return
        self.runner.submit(imported)

    def flush(self) -> None:
        """Cut every open file (end of input, schema change or an old pending STATE)."""
        for file in list(self._files.values()):
            self._roll(file)

    def oldest_open_age(self) -> float:
        """Seconds since the oldest non-empty open file started."""
        now = time.monotonic()
        ages = [now - f.opened_at for f in self._files.values() if f.added]
        return max(ages, default=0.0)

    def close(self) -> None:
        """Flush and wait for every job."""
        try:
            self.flush()
            self.runner.close()
        finally:
            self._files.clear()
            self.store.close()
            shutil.rmtree(self._dir, ignore_errors=True)
