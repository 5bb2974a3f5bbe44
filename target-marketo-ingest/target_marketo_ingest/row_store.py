"""Rows of open import files: appended to spool files, last record per key decided by SQLite.

Why SQLite (stdlib): a bulk run can hold a million keys in open files, and a Python dict
costs about 100 bytes a key, so the key index lives on disk; SQLite gives the unique key
index and the spill to disk without our own format. Rows never enter it: each open file's
rows are appended, as they arrive, to a plain spool file (their entries to a `.meta` file
beside it); a file none of whose rows was replaced is cut by copying its spool, any other by
streaming it back and skipping the rows a later record of their key replaced.

- `keys`: one row per (scope, key), the file and arrival number of its latest record,
  upserted in batches of `BATCH_ROWS` (`executemany`, one long transaction, journal and
  fsyncs off: the database is scratch, a crash loses nothing STATE has passed).
- A trigger notes in `replaced` each earlier record a later one of the same key replaced,
  when its file is still open; a file is cut in order, without its replaced rows, so each
  key sits where it last arrived (the order the bulk writer always had).
- A file's live rows and bytes are what went in less what `replaced` holds for it: exact
  without reading its rows.
- Keys of cut files stay in `keys` (a later record of such a key replaces nothing open):
  the table is emptied at once when no file is open, and purged of them when at least
  `STALE_KEYS` and as many as the open files hold have gathered (a purge reads the whole
  table, about 0.15 us a key; so its cost per key stays constant), so the disk stays bounded.
- Memory: SQLite's page cache (`CACHE_KB`), one batch of keys and a write buffer per open
  file; flat as input grows. Measured 2026-12-01 (target dry run, peak RSS at 100k -> 1M
  member lines): 16 KB pages with a 16 MB cache 68 -> 107 MB (the cache alone grew the heap
  by 34 MB); 4 KB pages with 8 MB 69 -> 74 MB, same wall time (6.3 s at 1M). Random keys
  (emails) in four open files of 60k rows, the index's worst case, cost 3.7 -> 4.2 us a row.

Measured 2026-11-30 (2 shared cores, CPU, 200k member rows of about 300 bytes, 6 files):
rows in SQLite under a unique index with a trigger per insert cost 9.4 us a row (insert 5.4,
cut 4.0); with the trigger only for replaced rows 8.4; keys-only upserts and spool files
3.2-3.5 (add 2.5-2.7, cut 0.7; 4.1 with 8% of keys repeated). The whole target dry run over
the benchmark's 205,077 member lines: 4.50-4.75 -> 3.62-4.11 CPU-s (start-up included).
`benchmarks/run --only wallclock` at 1M members, target dry_run / msgspec + csv.writer: 0.39
before -> 0.52 (per-insert trigger dropped) -> 0.55-0.62 (this layout; 3 runs, noisy machine);
peak RSS 105 MB at 1M, 95 MB at 100k.
Cut by copy and amortised purges (1M keys in 16 files, all cut at the end, CPU, 3 runs):
add 2.54-2.70 -> 2.60-2.79 us, cut 0.73-0.82 -> 0.39-0.44 us a row; the whole dry run at
1M member lines moved by less than its noise (16.7-17.8 CPU-s both ways); `benchmarks/run`
after it: wallclock 0.544 (14.7 s vs 8.0 s at 1M; before 0.51-0.62), throughput 0.586
(before 0.505-0.606), peak RSS 106 MB at 1M.
"""

from __future__ import annotations

import shutil
import sqlite3
import struct
import typing as t
from array import array

if t.TYPE_CHECKING:
    from pathlib import Path

BATCH_ROWS = 1024
CACHE_KB = 8_192
COPY_BYTES = 1 << 20  # copy chunk when a whole spool is cut
STALE_KEYS = 262_144  # keys of cut files kept before a purge (about 15 MB of index)
# A spool entry: arrival number, input line, key hash, data length (the data is apart).
_ENTRY = struct.Struct("=qqqq")
_WIDTH = 4
META_BLOCK = _ENTRY.size * 8192  # entries read back at a time when a file is cut

_SCHEMA = """
PRAGMA page_size = 4096;
CREATE TABLE files (id INTEGER PRIMARY KEY);
CREATE TABLE keys (scope TEXT NOT NULL, key TEXT NOT NULL, file INTEGER NOT NULL,
                   seq INTEGER NOT NULL, size INTEGER NOT NULL,
                   PRIMARY KEY (scope, key)) WITHOUT ROWID;
CREATE TABLE replaced (file INTEGER NOT NULL, seq INTEGER NOT NULL, size INTEGER NOT NULL,
                       PRIMARY KEY (file, seq)) WITHOUT ROWID;
CREATE TRIGGER key_moved AFTER UPDATE ON keys
  WHEN old.file IN (SELECT id FROM files) BEGIN
  INSERT INTO replaced VALUES (old.file, old.seq, old.size);
END;
"""
_UPSERT = (
    "INSERT INTO keys VALUES (?, ?, ?, ?, ?) ON CONFLICT (scope, key) DO UPDATE "
    "SET file = excluded.file, seq = excluded.seq, size = excluded.size"
)


class Cut(t.NamedTuple):
    """What one file held when it was cut: input line and key hash of each row, bytes."""

    lines: array
    key_hashes: array
    size: int


class _Spool:
    """One open file's rows as they arrived, with the counts of what went in.

    The rows go bare to `path` and their entries to `path.meta`, so a file none of whose
    rows was replaced is cut by one copy, without a Python step per row.
    """

    __slots__ = ("added", "bytes", "handle", "meta", "path")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle = path.open("w+b")
        self.meta = path.with_suffix(".meta").open("w+b")
        self.added = 0
        self.bytes = 0

    def entries(self) -> t.Iterator[array]:
        """The entries (`_ENTRY`'s numbers, flat) in arrival order, a block at a time."""
        self.meta.flush()
        self.meta.seek(0)
        while block := self.meta.read(META_BLOCK):
            entries = array("q")
            entries.frombytes(block)
            yield entries

    def close(self) -> None:
        self.handle.close()
        self.meta.close()
        self.path.unlink(missing_ok=True)
        self.path.with_suffix(".meta").unlink(missing_ok=True)


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
        ):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.executescript(_SCHEMA)
        # One transaction for the store's life: pages reach the file only when the cache
        # spills, never per statement (nothing here needs to survive the process).
        self._db.execute("BEGIN")
        self._batch: list[tuple[str, str, int, int, int]] = []
        self._append = self._batch.append
        self._spools: dict[int, _Spool] = {}
        self._seq = 0
        self._next_file = 0
        self._stale = 0  # keys of cut files still in `keys` (at most)

    def open_file(self) -> int:
        """A new, empty file; returns its id."""
        self._next_file += 1
        file = self._next_file
        self._db.execute("INSERT INTO files VALUES (?)", (file,))
        self._spools[file] = _Spool(self.path.with_name(f"{self.path.stem}-{file}.spool"))
        return file

    def add(self, file: int, scope: str, key: str, line: int, data: bytes) -> None:
        """Put one row in `file`; an earlier row of (scope, key) in any open file is dropped."""
        seq = self._seq = self._seq + 1
        size = len(data)
        spool = self._spools[file]
        spool.handle.write(data)
        spool.meta.write(_ENTRY.pack(seq, line, hash((scope, key)), size))
        spool.added += 1
        spool.bytes += size
        self._append((scope, key, file, seq, size))
        if len(self._batch) >= BATCH_ROWS:
            self._write()

    def live(self, file: int) -> tuple[int, int]:
        """Rows and bytes the file holds now (superseded rows excluded)."""
        spool = self._spools.get(file)
        if spool is None:
            return (0, 0)
        self._write()
        query = "SELECT count(*), total(size) FROM replaced WHERE file = ?"
        rows, size = self._db.execute(query, (file,)).fetchone()
        return (spool.added - rows, spool.bytes - int(size))

    def cut(self, file: int, out: t.BinaryIO, *, keys: bool) -> Cut:
        """Write the file's rows to `out` in order and remove them from the store.

        With `keys`, each row's key hash comes back too (to order imports that share keys:
        equal hashes of different keys only make a file wait, never reorder one).
        """
        self._write()
        query = "SELECT seq FROM replaced WHERE file = ?"
        gone = {seq for (seq,) in self._db.execute(query, (file,))}
        spool = self._spools[file]
        handle = spool.handle
        handle.flush()
        handle.seek(0)
        lines, hashes = array("q"), array("q")
        if not gone:  # the common case: every row stays, in order; one copy
            shutil.copyfileobj(handle, out, COPY_BYTES)
            for entries in spool.entries():
                lines.extend(entries[1::_WIDTH])
                if keys:
                    hashes.extend(entries[2::_WIDTH])
            self.drop(file)
            return Cut(lines, hashes, spool.bytes)
        size = 0
        read, write = handle.read, out.write
        for entries in spool.entries():
            for i in range(0, len(entries), _WIDTH):
                seq, line, key_hash, length = entries[i : i + _WIDTH]
                data = read(length)
                if seq in gone:
                    continue
                write(data)
                lines.append(line)
                if keys:
                    hashes.append(key_hash)
                size += length
        self.drop(file)
        return Cut(lines, hashes, size)

    def drop(self, file: int) -> None:
        """Forget a file and its rows."""
        self._write()
        spool = self._spools.pop(file)
        spool.close()
        db = self._db
        db.execute("DELETE FROM files WHERE id = ?", (file,))
        db.execute("DELETE FROM replaced WHERE file = ?", (file,))
        self._stale += spool.added
        if not self._spools:
            # No file open: every key left is a cut file's; empty the table at once.
            db.execute("DELETE FROM keys")
            self._stale = 0
        elif self._stale >= STALE_KEYS and self._stale >= self._open_rows():
            # Amortised: a purge reads the whole table, so it waits until the stale keys
            # are as many as the open files' (a flush cutting file after file would purge
            # a million-key table again every STALE_KEYS keys otherwise).
            db.execute("DELETE FROM keys WHERE file NOT IN (SELECT id FROM files)")
            self._stale = 0

    def _open_rows(self) -> int:
        return sum(spool.added for spool in self._spools.values())

    def close(self) -> None:
        """Close the database and spool files (the caller removes their folder)."""
        self._batch.clear()
        for spool in self._spools.values():
            spool.close()
        self._spools.clear()
        self._db.close()

    def _write(self) -> None:
        if self._batch:
            self._db.executemany(_UPSERT, self._batch)
            self._batch.clear()
