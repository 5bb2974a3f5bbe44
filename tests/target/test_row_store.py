"""The SQLite row store on its own: last record per key wins, files cut in order, exact sizes."""

from __future__ import annotations

import io

from target_marketo_ingest import row_store
from target_marketo_ingest.row_store import BATCH_ROWS, RowStore


def _cut(store: RowStore, file: int, *, keys: bool = False):
    out = io.BytesIO()
    cut = store.cut(file, out, keys=keys)
    return out.getvalue(), cut


def test_last_row_of_a_key_wins_at_its_last_position(tmp_path):
    store = RowStore(tmp_path / "rows.sqlite")
    file = store.open_file()
    store.add(file, "", "a", 2, b"a,1\n")
    store.add(file, "", "b", 3, b"b,1\n")
    store.add(file, "", "a", 4, b"a,2\n")
    assert store.live(file) == (2, 8)
    data, cut = _cut(store, file)
    assert data == b"b,1\na,2\n"
    assert list(cut.lines) == [3, 4]
    assert cut.size == 8
    assert store.live(file) == (0, 0)  # cut rows leave the store


def test_a_key_moves_between_open_files_of_one_scope_only(tmp_path):
    store = RowStore(tmp_path / "rows.sqlite")
    registered, attended, other = store.open_file(), store.open_file(), store.open_file()
    store.add(registered, "1001", "a", 2, b"a,reg\n")
    store.add(attended, "1001", "a", 3, b"a,att\n")  # same program: moves to attended
    store.add(other, "1002", "a", 4, b"a,other\n")  # another program: its own member
    assert store.live(registered) == (0, 0)
    assert store.live(attended) == (1, 6)
    assert _cut(store, other)[0] == b"a,other\n"


def test_batches_past_the_insert_batch_and_key_hashes(tmp_path):
    store = RowStore(tmp_path / "rows.sqlite")
    file = store.open_file()
    n = 3 * BATCH_ROWS + 7
    for i in range(n):
        store.add(file, "s", f"k{i % (n - 5)}", i, f"{i}\n".encode())
    rows, size = store.live(file)
    assert rows == n - 5
    data, cut = _cut(store, file, keys=True)
    assert len(data) == size
    assert len(cut.key_hashes) == rows
    assert len(set(cut.key_hashes)) == rows
    assert data.splitlines()[-1] == f"{n - 1}".encode()
    store.close()


def test_cutting_the_last_open_file_empties_the_store_and_counts_stay_exact(tmp_path):
    store = RowStore(tmp_path / "rows.sqlite")
    first = store.open_file()
    store.add(first, "", "a", 2, b"a,1\n")
    store.add(first, "", "b", 3, b"b,1\n")
    assert _cut(store, first)[0] == b"a,1\nb,1\n"  # the only open file: the fast wipe
    second, third = store.open_file(), store.open_file()
    store.add(second, "", "a", 4, b"a,2\n")  # "a" was cut with the first file: a new row
    store.add(third, "", "a", 5, b"a,3\n")  # moves "a" out of the second file
    assert store.live(second) == (0, 0)
    assert store.live(third) == (1, 4)
    assert _cut(store, second)[0] == b""  # another file is open: rows removed one by one
    assert _cut(store, third)[0] == b"a,3\n"


def test_a_key_of_a_cut_file_replaces_nothing_while_other_files_stay_open(tmp_path):
    store = RowStore(tmp_path / "rows.sqlite")
    first, keep = store.open_file(), store.open_file()
    store.add(keep, "1001", "z", 1, b"z,1\n")
    store.add(first, "1001", "a", 2, b"a,1\n")
    assert _cut(store, first)[0] == b"a,1\n"  # "a" stays in the key index: `keep` is open
    second = store.open_file()
    store.add(second, "1001", "a", 3, b"a,2\n")  # a new row, not a replacement
    store.add(second, "1001", "a", 4, b"a,3\n")  # replaces the row just before it
    assert store.live(second) == (1, 4)
    assert store.live(keep) == (1, 4)
    data, cut = _cut(store, second)
    assert data == b"a,3\n"
    assert list(cut.lines) == [4]


def test_rows_wait_in_spool_files_that_go_with_their_file(tmp_path):
    store = RowStore(tmp_path / "rows.sqlite")
    first, second = store.open_file(), store.open_file()
    store.add(first, "", "a", 1, b"a,1\n")
    store.add(second, "", "b", 2, b"b,1\n")
    assert len(list(tmp_path.glob("*.spool"))) == 2
    _cut(store, first)
    assert len(list(tmp_path.glob("*.spool"))) == 1
    store.drop(second)
    assert not list(tmp_path.glob("*.spool"))
    store.close()


def test_keys_of_cut_files_are_purged_while_other_files_stay_open(tmp_path, monkeypatch):
    monkeypatch.setattr(row_store, "STALE_KEYS", 3)
    store = RowStore(tmp_path / "rows.sqlite")
    keep, first = store.open_file(), store.open_file()
    store.add(keep, "", "z", 1, b"z,1\n")
    for i in range(3):
        store.add(first, "", f"k{i}", 2 + i, b"k\n")
    _cut(store, first)
    keys = store._db.execute("SELECT key FROM keys").fetchall()
    assert keys == [("z",)]  # the cut file's keys are gone, the open file's stays
    second = store.open_file()
    store.add(second, "", "z", 9, b"z,2\n")  # still replaces the open file's row
    assert store.live(keep) == (0, 0)
    assert _cut(store, second)[0] == b"z,2\n"
