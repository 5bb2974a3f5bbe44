"""removals.py on its own (no SDK, no sandbox): the diff, regrouping, filters, flat memory."""

from __future__ import annotations

import logging
import shutil
import tracemalloc
from pathlib import Path

from marketo_common.program_member_export import ExportFile
from tap_marketo_members.removals import STATE_KEY, RemovalCheck

NOW = "2026-11-30T12:00:00Z"


class FakeExports:
    """Finished keys-only jobs, each a file on disk, downloadable again."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: dict[str, Path] = {}

    def add(self, export_id: str, rows) -> Path:
        path = self.folder / f"{export_id}.csv"
        with path.open("w") as out:
            out.write("programId,leadId\n")
            out.writelines(f"{pid},{lead}\n" for pid, lead in rows)
        self.files[export_id] = path
        return path

    def status(self, export_id: str) -> dict:
        path = self.files[export_id]
        return {"exportId": export_id, "status": "Completed", "fileSize": path.stat().st_size}

    def download(self, export_id, dest, *, file_size, checksum):
        shutil.copyfile(self.files[export_id], dest)
        return ExportFile(Path(dest), file_size, has_nul=False)


def _check(exports, state, **kw) -> RemovalCheck:
    return RemovalCheck(exports, state, logger=logging.getLogger("test"), **kw)


def _run(exports, state, snapshots: dict[str, tuple[tuple[int, ...], list]], **kw) -> list:
    """One check whose new jobs are `snapshots` (exportId -> (programs, rows))."""
    check = _check(exports, state, **kw)
    finished = []
    for export_id, (pids, rows) in snapshots.items():
        unit = check.units(pids)[0]
        copy = exports.add(export_id, rows)
        finished.append(
            (
                unit,
                ExportFile(copy, copy.stat().st_size, False),
                {"exportId": export_id, "finishedAt": NOW},
            )
        )
    out = list(check.removed(iter(finished), NOW))
    check.commit()
    check.close()
    return [(r["programId"], r["leadId"]) for r in out]


def test_programs_regrouped_between_checks_are_compared_member_by_member(tmp_path):
    exports, state = FakeExports(tmp_path), {}
    assert _run(exports, state, {"a": ((1, 2), [(1, 10), (1, 11), (2, 20)])}) == []
    # next check: one job per program (say program 2 now travels with others)
    removed = _run(
        exports,
        state,
        {"b": ((1,), [(1, 10)]), "c": ((2,), [(2, 20), (2, 21)])},
    )
    assert removed == [(1, 11)]
    assert [s["exportId"] for s in state[STATE_KEY]] == ["b", "c"]


def test_only_checked_programs_are_compared(tmp_path):
    exports, state = FakeExports(tmp_path), {}
    _run(exports, state, {"a": ((1, 2), [(1, 10), (2, 20)])})
    assert _run(exports, state, {"b": ((1,), [])}) == [(1, 10)]  # program 2 not checked
    # program 2 keeps its part of snapshot a, still comparable
    assert state[STATE_KEY][0] == {"programIds": [2], "exportId": "a", "finishedAt": NOW}
    assert _run(exports, state, {"c": ((2,), [])}) == [(2, 20)]


def test_a_snapshot_under_other_filters_is_a_baseline(tmp_path):
    exports, state = FakeExports(tmp_path), {}
    _run(exports, state, {"a": ((1,), [(1, 10), (1, 11)])})
    filtered = "statusNames=attended"
    assert _run(exports, state, {"b": ((1,), [(1, 10)])}, filters=filtered) == []
    assert state[STATE_KEY] == [
        {"programIds": [1], "exportId": "b", "finishedAt": NOW, "memberFilters": filtered}
    ]


def test_interval_is_judged_from_finished_at(tmp_path):
    state = {STATE_KEY: [{"programIds": [1, 2], "exportId": "a", "finishedAt": NOW}]}
    check = _check(FakeExports(tmp_path), state, interval_hours=24)
    assert check.due([1, 2, 3], "2026-12-01T11:59:59Z") == [3]
    assert check.due([1, 2, 3], "2026-12-01T12:00:00Z") == [1, 2, 3]
    check.close()


def _peak(folder: Path, members: int) -> int:
    """Peak Python memory of a check over `members`, half of whom left (counted, not kept)."""
    folder.mkdir()
    exports, state = FakeExports(folder), {}
    _run(exports, state, {"a": ((7,), ((7, lead) for lead in range(members)))})
    new = exports.add("b", ((7, lead) for lead in range(0, members, 2)))
    check = _check(exports, state)
    unit = check.units((7,))[0]
    finished = [(unit, ExportFile(new, new.stat().st_size, False), {"exportId": "b"})]
    tracemalloc.start()
    try:
        removed = sum(1 for _ in check.removed(iter(finished), NOW))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        check.close()
    assert removed == members // 2
    return peak


def test_memory_stays_flat_as_programs_grow(tmp_path):
    small = _peak(tmp_path / "s", 20_000)
    large = _peak(tmp_path / "l", 200_000)
    assert large < small * 1.5 + 500_000, (small, large)
