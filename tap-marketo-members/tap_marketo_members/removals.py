"""Members who left a program: keys-only membership snapshots, diffed from one check to the next.

A removed member never shows in an updatedAt export again, so the tap asks Marketo for the full
current membership of each program group, keys only (`fields: ["leadId"]`; a `programIds` job
puts `programId` first, bulk-program-member-extract.md), and compares it with the previous check's
file. Marketo keeps export files seven days (bulk-extract.md, "Limits"), so state holds only the
previous job's exportId, finishedAt and programIds (a few dozen bytes per group, whatever the
member count) and the previous file is downloaded again. The diff runs in a SQLite file on disk,
so memory stays flat however large the programs are.

Every (programId, leadId) in the previous snapshot and not in the new one comes out as a record
with the keys and `_sdc_deleted_at`. The new snapshot is created after this run's updatedAt
exports (their upper edge is read from Marketo's clock before any of them), so it is the later
truth: a member removed and added again before it is in it and is not removed; a member updated
in this run and removed before it is gone, and its removal comes after its update record (so no
"updated in this run" exception is needed, and one would lose such a removal for good: the next
check's previous snapshot no longer holds the member). The first check, and a check whose
previous file is gone, only takes a baseline. Nothing here knows the Singer SDK: the stream feeds
it the export files of a scheduler and writes out what it yields.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from marketo_common import MarketoAPIError
from marketo_common.program_member_export import keys_file_rows

from tap_marketo_members.ledger import REMOVAL_SNAPSHOTS
from tap_marketo_members.scheduler import ExportUnit
from tap_marketo_members.settings import MAX_PROGRAM_IDS_PER_JOB
from tap_marketo_members.windows import iso, parse_iso

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, MutableMapping, Sequence

    from marketo_common.export_files import ExportDownloader
    from marketo_common.program_member_export import ExportFile

KEYS_ONLY_FIELDS = ("leadId",)  # a programIds job adds programId as the first column
DELETED_AT = "_sdc_deleted_at"
DELETED_AT_SCHEMA = {"type": ["string", "null"], "format": "date-time"}
STATE_KEY = REMOVAL_SNAPSHOTS  # kept in state by the ledger
FILE_RETENTION = dt.timedelta(days=7)  # bulk-extract.md, "Limits": "File retention period"
LOGGER = logging.getLogger("tap_marketo_members.removals")


@dataclass(frozen=True)
class Snapshot:
    """One keys-only export job whose file stands for its programs' membership at finishedAt.

    `export_id` None: Marketo had nothing to export (no job), an empty membership.
    """

    program_ids: tuple[int, ...]
    export_id: str | None
    finished_at: str
    filters: str | None = None

    def to_state(self) -> dict[str, Any]:
        """The state entry: a few dozen bytes, whatever the member count."""
        entry: dict[str, Any] = {
            "programIds": list(self.program_ids),
            "exportId": self.export_id,
            "finishedAt": self.finished_at,
        }
        if self.filters:
            entry["memberFilters"] = self.filters
        return entry

    @classmethod
    def from_state(cls, entry: dict[str, Any]) -> Snapshot:
        """An entry as `to_state` wrote it."""
        return cls(
            program_ids=tuple(int(p) for p in entry.get("programIds") or ()),
            export_id=entry.get("exportId"),
            finished_at=str(entry.get("finishedAt") or ""),
            filters=entry.get("memberFilters"),
        )


class RemovalCheck:
    """One run's removal check: which programs are due, their new snapshots, and the diff.

    `exports` gives a job's status and downloads its file again (`ExportDownloader`). `state`
    holds `STATE_KEY` (read; written only at `commit`: the engine hands `committed()` to the
    ledger instead). `filters` is the fingerprint of the run's member filters: a snapshot taken
    under other filters is not compared with (the membership it holds is a different set).
    """

    def __init__(
        self,
        exports: ExportDownloader,
        state: MutableMapping[str, Any],
        *,
        interval_hours: float = 0.0,
        filters: str | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.exports = exports
        self.state = state
        self.interval = dt.timedelta(hours=interval_hours)
        self.filters = filters
        self.logger = logger or LOGGER
        self.removed_count = 0
        self._new: list[Snapshot] = []
        self._checked: set[int] = set()
        self._compared: list[int] = []
        self._workdir = tempfile.TemporaryDirectory(prefix="tap-marketo-members-removals-")
        self._db = sqlite3.connect(Path(self._workdir.name) / "keys.db")
        self._db.executescript(
            """
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            PRAGMA cache_size = -8192;
            CREATE TABLE prev (pid INTEGER, lead INTEGER);
            CREATE TABLE new (pid INTEGER, lead INTEGER);
            CREATE TABLE compared (pid INTEGER PRIMARY KEY, at TEXT);
            """
        )

    def close(self) -> None:
        """Drop the key files."""
        self._db.close()
        self._workdir.cleanup()

    # ------------------------------------------------------------------ planning

    def snapshots(self) -> list[Snapshot]:
        """The snapshots in state (earlier checks)."""
        return [Snapshot.from_state(e) for e in self.state.get(STATE_KEY) or []]

    def due(self, program_ids: Sequence[int], now: str) -> list[int]:
        """Programs with no snapshot under these filters, or one older than the interval."""
        return due_programs(
            self.state.get(STATE_KEY) or [],
            program_ids,
            now,
            interval_hours=self.interval.total_seconds() / 3600,
            filters=self.filters,
        )

    @staticmethod
    def units(program_ids: Sequence[int], first_group: int = 0) -> list[ExportUnit]:
        """Full (no updatedAt filter) exports of up to 10 programs each."""
        ids = sorted(program_ids)
        return [
            ExportUnit(first_group + n, 0, tuple(ids[i : i + MAX_PROGRAM_IDS_PER_JOB]), upper=None)
            for n, i in enumerate(range(0, len(ids), MAX_PROGRAM_IDS_PER_JOB))
        ]

    # ------------------------------------------------------------------ the check

    def removed(
        self,
        finished: Iterable[tuple[ExportUnit, ExportFile | None, dict[str, Any]]],
        now: str,
    ) -> Iterator[dict[str, Any]]:
        """`load` then `diff`: the removed members' records."""
        self.load(finished, now)
        yield from self.diff(now)

    def load(
        self,
        finished: Iterable[tuple[ExportUnit, ExportFile | None, dict[str, Any]]],
        now: str,
    ) -> None:
        """Load each new snapshot as its job finishes, then the previous ones of its programs.

        `finished` gives the keys-only jobs of `units(...)` (file None: Marketo had nothing to
        export); each file is read before the next is asked for. All the export jobs (and their
        quota stops) happen here, before any record is yielded by `diff`.
        """
        for unit, exported, info in finished:
            at = iso(parse_iso(str(info["finishedAt"]))) if info.get("finishedAt") else now
            export_id = str(info["exportId"]) if info.get("exportId") else None
            self._new.append(Snapshot(unit.program_ids, export_id, at, self.filters))
            if exported is not None:
                self._load("new", exported.path, unit.program_ids, set(unit.program_ids))
            self._checked.update(unit.program_ids)
            self._db.executemany(
                "INSERT OR REPLACE INTO compared VALUES (?, ?)",
                [(pid, at) for pid in unit.program_ids],
            )
        self._compared = self._load_previous(self._checked, now)

    def diff(self, now: str) -> Iterator[dict[str, Any]]:  # noqa: ARG002
        """The removed members' records: in a previous snapshot, not in the new one.

        State changes only at `commit`, after these are written.
        """
        checked, compared = self._checked, self._compared
        self._db.executemany(
            "DELETE FROM compared WHERE pid = ?", [(pid,) for pid in checked - set(compared)]
        )
        self._db.execute("CREATE INDEX new_keys ON new (pid, lead)")
        rows = self._db.execute(
            """
            SELECT DISTINCT p.pid, p.lead, c.at FROM prev p JOIN compared c ON c.pid = p.pid
            WHERE NOT EXISTS (SELECT 1 FROM new n WHERE n.pid = p.pid AND n.lead = p.lead)
            ORDER BY p.pid, p.lead
            """
        )
        for pid, lead, at in rows:
            self.removed_count += 1
            yield {"programId": pid, "leadId": lead, DELETED_AT: at}
        self.logger.info(
            "Removal check: %d members left programs %s since the previous check",
            self.removed_count,
            ",".join(str(p) for p in compared) or "-",
        )

    def committed(self) -> list[dict[str, Any]]:
        """The state entries after this check: the new snapshots in place of those they replace."""
        renewed = {pid for snap in self._new for pid in snap.program_ids}
        kept = []
        for snap in self.snapshots():
            left = tuple(pid for pid in snap.program_ids if pid not in renewed)
            if left:
                kept.append(Snapshot(left, snap.export_id, snap.finished_at, snap.filters))
        return [snap.to_state() for snap in (*kept, *self._new)]

    def commit(self) -> None:
        """Keep the new snapshots in `state` (the engine hands `committed()` to the ledger)."""
        if not self._new:
            return
        self.state[STATE_KEY] = self.committed()
        self._new = []

    def _load_previous(self, checked: set[int], now: str) -> list[int]:
        """Load the previous snapshots of `checked`; returns the programs that have one."""
        wanted = self._previous_of(checked)
        if not wanted:
            self.logger.info(
                "Removal check: first snapshot of programs %s taken (the baseline); removals "
                "are listed from the next check on",
                ",".join(str(p) for p in sorted(checked)) or "-",
            )
            return []
        baseline = sorted(checked - set(wanted))
        if baseline:
            self.logger.info("Removal check: baseline taken for new programs %s", baseline)
        gone: set[int] = set()
        loaded: set[str | None] = set()
        for snap in {s for snaps in wanted.values() for s in snaps}:
            pids = set(snap.program_ids) & set(wanted)
            if snap.export_id is None or snap.export_id in loaded:
                continue  # nothing was exported: an empty membership
            loaded.add(snap.export_id)
            reason = self._download_previous(snap, pids, now)
            if reason:
                gone.update(pids)
                self.logger.warning(
                    "Removal check: the previous snapshot of programs %s (export %s, finished "
                    "%s) cannot be read (%s). Members removed between that check and this one "
                    "cannot be listed; this check's snapshot is the new baseline. Run checks "
                    "less than seven days apart (Marketo keeps export files seven days).",
                    ",".join(str(p) for p in sorted(pids)),
                    snap.export_id,
                    snap.finished_at,
                    reason,
                )
        if gone:
            self._db.executemany("DELETE FROM prev WHERE pid = ?", [(pid,) for pid in gone])
        return sorted(set(wanted) - gone)

    def _previous_of(self, checked: set[int]) -> dict[int, list[Snapshot]]:
        """The earlier snapshots, under this run's filters, of each checked program."""
        wanted: dict[int, list[Snapshot]] = {}
        for snap in self.snapshots():
            if snap.filters == self.filters:
                for pid in set(snap.program_ids) & checked:
                    wanted.setdefault(pid, []).append(snap)
        return wanted

    def _download_previous(self, snap: Snapshot, pids: set[int], now: str) -> str | None:
        """Download and load a previous snapshot; the reason when it cannot be read."""
        finished = parse_iso(snap.finished_at) if snap.finished_at else None
        if finished and parse_iso(now) - finished > FILE_RETENTION:
            return "older than Marketo's seven-day file retention"
        dest = Path(self._workdir.name) / f"previous-{snap.export_id}.csv"
        try:
            status = self.exports.status(str(snap.export_id))
            if status.get("status") != "Completed":
                return f"its job reads {status.get('status') or 'not found'}"
            exported = self.exports.download(
                str(snap.export_id),
                dest,
                file_size=_int(status.get("fileSize")),
                checksum=status.get("fileChecksum"),
            )
        except MarketoAPIError as exc:
            if exc.retryable:
                raise
            return f"Marketo: {exc}"
        try:
            self._load("prev", exported.path, snap.program_ids, pids)
        finally:
            dest.unlink(missing_ok=True)
        return None

    def _load(self, table: str, path: Path, program_ids: Sequence[int], keep: set[int]) -> None:
        """Insert a keys-only file's (programId, leadId) rows of programs in `keep`."""
        label = f"keys-only export of programs {list(program_ids)}"
        rows = (
            (pid, lead)
            for pid, lead in keys_file_rows(path, program_ids, label=label)
            if pid in keep
        )
        self._db.executemany(f"INSERT INTO {table} VALUES (?, ?)", rows)  # noqa: S608


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def due_programs(
    entries: Iterable[dict[str, Any]],
    program_ids: Sequence[int],
    now: str,
    *,
    interval_hours: float,
    filters: str | None,
) -> list[int]:
    """Programs whose removal check is due: no snapshot under `filters`, or one too old.

    `entries` are state's snapshot entries (`STATE_KEY`); `plan_only` asks this too.
    """
    last: dict[int, str] = {}
    for snap in (Snapshot.from_state(e) for e in entries):
        if snap.filters == filters:
            for pid in snap.program_ids:
                last[pid] = max(last.get(pid, ""), snap.finished_at)
    if not interval_hours:
        return list(program_ids)  # 0: every run (whatever the clocks say)
    moment = parse_iso(now)
    interval = dt.timedelta(hours=interval_hours)
    return [
        pid for pid in program_ids if not last.get(pid) or parse_iso(last[pid]) + interval <= moment
    ]


def start_check(
    exports: ExportDownloader,
    state: MutableMapping[str, Any],
    program_ids: Sequence[int],
    now: str,
    *,
    interval_hours: float,
    filters: str | None,
    bulk_available: bool,
    logger: logging.Logger,
) -> tuple[RemovalCheck, list[int]] | None:
    """This run's check and the programs due for it; None when none is due or bulk is off."""
    if not bulk_available:
        logger.warning(
            "detect_removals: bulk export is not available (603/610), so no membership "
            "snapshot can be taken; removals are not checked this run"
        )
        return None
    check = RemovalCheck(
        exports, state, interval_hours=interval_hours, filters=filters, logger=logger
    )
    due = check.due(program_ids, now)
    if not due:
        logger.info(
            "detect_removals: no program due (removal_check_interval_hours %g)", interval_hours
        )
        check.close()
        return None
    return check, due
