"""The bookmark ledger: everything `program_members` keeps in state, read and written here only.

Per program partition (context `{"programId": …}`, plus `memberFilters` when filters are set):
`replication_key_value` (a window's end on Marketo's clock), `member_count_max` (rows of its
last full export), `member_count_programs` (programs counted together in that job) and
`bytes_per_member` (what `plan_only` multiplies by). Stream-wide: `exports_in_progress` (job
ids to cancel after a crash), `export_bytes_today`, and with `detect_removals` `removal_snapshots`
(the last keys-only snapshot job of each program) and `removal_bytes_per_member`.

The ledger works on plain dicts (the SDK's state partitions, handed in by `partition`), so it
knows nothing of the SDK: the stream writes STATE when the engine says a commit happened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tap_marketo_members.windows import iso, parse_iso

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Callable, Mapping, Sequence

    from tap_marketo_members.scheduler import ExportUnit

REMOVAL_SNAPSHOTS = "removal_snapshots"  # removals.STATE_KEY
KEYS_BYTES_PER_MEMBER = "removal_bytes_per_member"


class Ledger:
    """Bookmarks and checkpoints of one `program_members` sync."""

    def __init__(
        self,
        partition: Callable[[Mapping[str, Any]], dict],
        stream_state: dict,
        *,
        replication_key: str,
        incremental: bool,
        start_date: dt.datetime | None,
        member_filters: str | None,
    ) -> None:
        self._partition = partition
        self.stream_state = stream_state
        self.replication_key = replication_key
        self.incremental = incremental
        self.start_date = start_date
        self.member_filters = member_filters
        # group -> seq -> window end of finished windows not yet committed (an earlier one runs)
        self._finished: dict[int, dict[int, str | None]] = {}

    # ----------------------------------------------------------------- partitions

    def context(self, program_id: int) -> dict[str, Any]:
        """The program's state partition context for this run's member filters."""
        context: dict[str, Any] = {"programId": program_id}
        if self.member_filters:
            context["memberFilters"] = self.member_filters
        return context

    def partition(self, program_id: int) -> dict:
        """The program's state partition (created empty on first use)."""
        return self._partition(self.context(program_id))

    def saved_bookmark(self, program_id: int) -> str | None:
        """The program's committed bookmark, if any."""
        value = self.partition(program_id).get("replication_key_value")
        return iso(parse_iso(str(value))) if value else None

    def bookmark(self, program_id: int) -> str | None:
        """Where this program's sync starts: its bookmark, else start_date (None: in full)."""
        saved = self.saved_bookmark(program_id)
        if saved:
            return saved
        return iso(self.start_date) if self.start_date else None

    def member_count(self, program_id: int) -> int | None:
        """Rows of the program's last full export."""
        known = self.partition(program_id).get("member_count_max")
        return None if known is None else int(known)

    def sizes(
        self, program_ids: Sequence[int]
    ) -> tuple[dict[int, int], dict[int, float], dict[int, tuple[int, ...]]]:
        """Member counts, bytes per member and programs counted together, where state has them."""
        members: dict[int, int] = {}
        per_member: dict[int, float] = {}
        counted_with: dict[int, tuple[int, ...]] = {}
        for pid in program_ids:
            state = self.partition(pid)
            if state.get("member_count_max") is not None:
                members[pid] = int(state["member_count_max"])
            if state.get("bytes_per_member") is not None:
                per_member[pid] = float(state["bytes_per_member"])
            counted_with[pid] = tuple(state.get("member_count_programs") or (pid,))
        return members, per_member, counted_with

    # ----------------------------------------------------------------- stream-wide

    def jobs_left_over(self) -> list[str]:
        """Job ids an earlier run saved as in flight; forgotten once read."""
        ids = list(self.stream_state.get("exports_in_progress") or [])
        self.stream_state["exports_in_progress"] = []
        return ids

    def jobs_in_flight(self, ids: list[str]) -> None:
        """This run's unfinished jobs, so a run killed outright has them cancelled by the next."""
        self.stream_state["exports_in_progress"] = ids

    def bytes_today(self, day: str) -> int:
        """Export bytes this tap counted on the quota day `day`."""
        own = self.stream_state.get("export_bytes_today") or {}
        return int(own.get("bytes", 0)) if own.get("day") == day else 0

    def set_bytes_today(self, day: str, used: int) -> None:
        """Today's export bytes, as the scheduler counts them."""
        self.stream_state["export_bytes_today"] = {"day": day, "bytes": used}

    def removal_snapshots(self) -> list[dict[str, Any]]:
        """The removal checks' snapshot entries (issue 20, `removals.Snapshot.to_state`)."""
        return list(self.stream_state.get(REMOVAL_SNAPSHOTS) or [])

    def set_removal_snapshots(self, entries: list[dict[str, Any]]) -> None:
        """A removal check's snapshots, once its removal rows are out."""
        self.stream_state[REMOVAL_SNAPSHOTS] = entries

    def keys_bytes_per_member(self) -> int | None:
        """Bytes per member of the last removal check's keys-only files (for `plan_only`)."""
        return _int(self.stream_state.get(KEYS_BYTES_PER_MEMBER))

    def record_keys_files(self, size: int, records: int) -> None:
        """A removal check's keys-only files: their bytes per member (an integer, see below)."""
        if records:
            self.stream_state[KEYS_BYTES_PER_MEMBER] = max(1, round(size / records))

    # ----------------------------------------------------------------- commits

    def record_file(self, unit: ExportUnit, info: Mapping[str, Any]) -> None:
        """A finished file's sizes: member counts for `rest_fallback`, bytes for `plan_only`."""
        if unit.server_filter is None and info.get("numberOfRecords") is not None:
            for pid in unit.program_ids:
                state = self.partition(pid)
                state["member_count_max"] = int(info["numberOfRecords"])
                # A job of several programs counts them together: the plan counts it once.
                if len(unit.program_ids) > 1:
                    state["member_count_programs"] = list(unit.program_ids)
                else:
                    state.pop("member_count_programs", None)
        records = _int(info.get("numberOfRecords"))
        size = _int(info.get("fileSize"))
        if records and size is not None:
            # An integer: SDK targets read STATE numbers as Decimal and cannot write a fraction
            # back out (target-postgres failed at end of pipe on 290.4).
            for pid in unit.program_ids:
                self.partition(pid)["bytes_per_member"] = max(1, round(size / records))

    def window_done(self, unit: ExportUnit, outstanding: set[int]) -> str | None:
        """Advance bookmarks only past windows whose earlier windows are all emitted.

        `outstanding` are the sequence numbers of the group's units not yet emitted (the
        scheduler's view: it may merge or split units). Returns the bookmark moved to, if any.
        """
        if not self.incremental or unit.upper is None:
            return None
        done = self._finished.setdefault(unit.group, {})
        done[unit.seq] = unit.upper
        ready = [seq for seq in done if not outstanding or seq < min(outstanding)]
        if not ready:
            return None
        value = max(done[seq] for seq in ready)  # type: ignore[type-var]
        for seq in ready:
            done.pop(seq)
        for pid in unit.program_ids:
            self.advance(pid, value)  # type: ignore[arg-type]
        return value

    def advance(self, program_id: int, value: str) -> None:
        """Move the program's bookmark to `value` (every row before it is out)."""
        state = self.partition(program_id)
        state["replication_key"] = self.replication_key
        state["replication_key_value"] = value


def _int(value: Any) -> int | None:
    try:
        return None if value is None or isinstance(value, bool) else int(value)
    except (TypeError, ValueError):
        return None
