"""Rows of open import files in an on-disk SQLite table: last record per key wins, in order.

Why SQLite (stdlib): a bulk run can hold a million keys in open files, and a Python dict
costs about 100 bytes a key, so rows and their key index live on disk; SQLite gives the
unique key index, the spill to disk and the ordered read-back without our own format.

- One table `rows`; `UNIQUE(scope, key)` with `INSERT OR REPLACE`: a later record of a key
  deletes the earlier one (in whatever open file of the same scope it sat) and takes a new
  rowid, so a file is cut in order of each key's *last* arrival (the order the bulk writer
  always had: the winning row sits where it arrived).
- A file's live rows and bytes are exact without reading its rows: the store counts what
  goes in, and a trigger counts in `files` only the rows a later row of the key replaces
  (a per-insert trigger cost 1-1.5 us a row; the cut file's own rows leave trigger-free).
- Rows are inserted by `executemany` in batches of `BATCH_ROWS` inside one long transaction,
  journal and fsyncs off (the database is scratch: a crash loses nothing STATE has passed).
- Memory: SQLite's page cache (`CACHE_KB`) plus one batch of rows; flat as input grows.

Measured 2026-11-30 (2 shared cores, load 12-17): the store costs 5.6 us a row for leads-like
rows (insert 4.8, cut 0.8; 16 KB pages and the trigger-free wipe of the last open file took it
from 7.7) and 6.8 us for 300-byte member rows, 6 groups, 75% superseded (a clustered WITHOUT
ROWID layout measured the same). The bulk writer's per-row path is 10-25% faster than the hash
table and spool it replaced, but in the whole target (dry run, the benchmark's 205,077 member
lines, old and new run alternately 3 times each) CPU went from 50,300 to 47,200 records per
CPU-second (-6%; wall clock within noise): REPLACE on a unique index costs SQLite about
5 us a row, and the old engine's plain appends were cheaper when nothing collided.
Per-insert trigger dropped (r15-speed): the micro above 9.4 -> 8.4 us a row (200k member
rows, 6 files); the whole target dry run over 205,077 member lines 4.50-4.75 -> 4.18-4.46
CPU-s (3 runs each, start-up included).
`benchmarks/run` puts the target at 0.53x msgspec + csv.writer (CPU) under that load, 0.67x
for the old engine at load 2.5: the 0.7x goal is not met by either; peak RSS stayed 111 MB,
flat from 100k to 1M records.
"""

from __future__ import annotations

import sqlite3
import typing as t
from array import array

if t.TYPE_CHECKING:
    from pathlib import Path

BATCH_ROWS = 1024
CACHE_KB = 16_384

_SCHEMA = """
PRAGMA page_size = 16384;
CREATE TABLE files (id INTEGER PRIMARY KEY, rows_out INTEGER NOT NULL DEFAULT 0,
                    bytes_out INTEGER NOT NULL DEFAULT 0);
CREATE TABLE rows (id INTEGER PRIMARY KEY, scope TEXT NOT NULL, key TEXT NOT NULL,
                   file INTEGER NOT NULL, line INTEGER NOT NULL, data BLOB NOT NULL,
                   UNIQUE (scope, key));
CREATE INDEX rows_by_file ON rows (file);
"""
# Fires for the rows a later row of the same key replaces (never for plain inserts).
_ROW_OUT = """
CREATE TRIGGER row_out AFTER DELETE ON rows BEGIN
  UPDATE files SET rows_out = rows_out + 1, bytes_out = bytes_out + length(old.data)
  WHERE id = old.file;
END;
"""
_INSERT = "INSERT OR REPLACE INTO rows (scope, key, file, line, data) VALUES (?, ?, ?, ?, ?)"


class Cut(t.NamedTuple):
    """What one file held when it was cut: input line and key hash of each row, bytes."""

    lines: array
    key_hashes: array
    size: int


class RowStore:
    """Open import files of one stream; used from the reading thread only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)
        for pragma in (
            "journal_mode = OFF",
            "synchronous = OFF",
            "locking_mode = EXCLUSIVE",
            "temp_store = FILE",
            f"cache_size = -{CACHE_KB}",
            "recursive_triggers = ON",  # REPLACE's deletes fire row_out
        ):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.executescript(_SCHEMA + _ROW_OUT)
        # One transaction for the store's life: pages reach the file only when the cache
        # spills, never per statement (nothing here needs to survive the process).
        self._db.execute("BEGIN")
        self._batch: list[tuple[str, str, int, int, bytes]] = []
        self._added: dict[int, list[int]] = {}  # file -> [rows, bytes] ever put in
        self._append = self._batch.append

    def open_file(self) -> int:
        """A new, empty file; returns its id."""
        file = t.cast("int", self._db.execute("INSERT INTO files DEFAULT VALUES").lastrowid)
        self._added[file] = [0, 0]
        return file

    def add(self, file: int, scope: str, key: str, line: int, data: bytes) -> None:
        """Put one row in `file`; an earlier row of (scope, key) in any open file is dropped."""
        self._append((scope, key, file, line, data))
        added = self._added[file]
        added[0] += 1
        added[1] += len(data)
        if len(self._batch) >= BATCH_ROWS:
            self._write()

    def live(self, file: int) -> tuple[int, int]:
        """Rows and bytes the file holds now (superseded rows excluded)."""
        self._write()
        added = self._added.get(file)
        if added is None:
            return (0, 0)
        query = "SELECT rows_out, bytes_out FROM files WHERE id = ?"
        rows_out, bytes_out = self._db.execute(query, (file,)).fetchone()
        return (added[0] - rows_out, added[1] - bytes_out)

    def cut(self, file: int, out: t.BinaryIO, *, keys: bool) -> Cut:
        """Write the file's rows to `out` in order and remove them from the store.

        With `keys`, each row's key hash comes back too (to order imports that share keys:
        equal hashes of different keys only make a file wait, never reorder one).
        """
        self._write()
        lines, hashes = array("q"), array("q")
        size = 0
        write, add_line = out.write, lines.append
        db = self._db
        if keys:
            add_hash = hashes.append
            query = "SELECT data, line, scope, key FROM rows WHERE file = ? ORDER BY id"
            for data, line, scope, key in db.execute(query, (file,)):
                write(data)
                add_line(line)
                add_hash(hash((scope, key)))
                size += len(data)
        else:
            query = "SELECT data, line FROM rows WHERE file = ? ORDER BY id"
            for data, line in db.execute(query, (file,)):
                write(data)
                add_line(line)
                size += len(data)
        self.drop(file)
        return Cut(lines, hashes, size)

    def drop(self, file: int) -> None:
        """Forget a file and its rows."""
        self._write()
        del self._added[file]
        db = self._db
        db.execute("DELETE FROM files WHERE id = ?", (file,))
        # The file's own rows leave without the trigger (it would update a deleted `files`
        # row per row); with no other file open, an unconditional DELETE lets SQLite drop
        # the table's pages at once instead of row by row.
        db.execute("DROP TRIGGER row_out")
        if self._added:
            db.execute("DELETE FROM rows WHERE file = ?", (file,))
        else:
            db.execute("DELETE FROM rows")
        db.execute(_ROW_OUT)

    def close(self) -> None:
        """Close the database (the caller removes its folder)."""
        self._batch.clear()
        self._db.close()

    def _write(self) -> None:
        if self._batch:
            self._db.executemany(_INSERT, self._batch)
            self._batch.clear()
