"""Program membership mirror: the input is the whole desired membership of each program it names.

A route with `mirror: true` buffers the stream's member keys on disk (SQLite, so memory stays
flat), and at the end of the input, before any write:

1. reads each named program's current membership into the `have` table (membership.py):
   through REST while the program is small
   (`GET /rest/v1/programs/{id}/members.json?filterType=statusName&filterValues=<every status>`,
   300 per page, ⌈members ÷ 300⌉ calls; program-members.md), and through a keys-only Bulk
   Program Member Extract (`leadId`, `statusName`; up to 10 programs a job) once the REST read
   passes `membership.REST_PAGE_LIMIT` pages or Marketo refuses it (1003, programs over
   100,000 members);
2. plans per program: adds (in the input, not a member), status changes, unchanged, and
   removals (a member the input does not carry, or carries deleted);
3. stops the run with one line, before any change, when a program's removals pass
   `max_removals` (a count, or a fraction of its current members): an empty warehouse query
   must not empty a program;
4. hands the input records, then one `_sdc_deleted_at` record per member to remove, to the
   route's own write method, so removals go the way that method removes members and a failed
   removal is a reject with its reason. A dry run prints the plan and sends nothing.

Synthesised removal records count as received records of the stream, so
received = outcomes still holds.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import tempfile
import typing as t
from dataclasses import dataclass
from pathlib import Path

import orjson

from target_marketo_ingest.errors import TargetError
from target_marketo_ingest.membership import Membership, MembershipTooLargeError
from target_marketo_ingest.programs import program_and_status
from target_marketo_ingest.rest_program_members import lead_id_of
from target_marketo_ingest.validation import RecordRejected

if t.TYPE_CHECKING:
    from target_marketo_ingest.context import WriteContext
    from target_marketo_ingest.programs import ProgramCatalog

PLAN_KEYS = ("adds", "status_changes", "removals", "unchanged")

_SCHEMA = """
CREATE TABLE want (seq INTEGER PRIMARY KEY, line INTEGER, program_id INTEGER,
                   lead_id INTEGER, status TEXT, deleted INTEGER, record BLOB);
CREATE INDEX want_key ON want (program_id, lead_id, seq);
CREATE TABLE have (program_id INTEGER, lead_id INTEGER, status TEXT,
                   PRIMARY KEY (program_id, lead_id));
"""
_HAVE = "INSERT OR REPLACE INTO have VALUES (?, ?, ?)"
# The last input record of each (program, lead) is what the input wants for that member.
_DIFF = """
WITH last AS (
  SELECT w.lead_id, w.status, w.deleted FROM want w
  WHERE w.program_id = ? AND w.seq = (SELECT MAX(seq) FROM want x
                                      WHERE x.program_id = w.program_id AND x.lead_id = w.lead_id))
SELECT
  SUM(l.deleted = 0 AND h.lead_id IS NULL),
  SUM(l.deleted = 0 AND h.lead_id IS NOT NULL AND lower(h.status) <> lower(l.status)),
  SUM(l.deleted = 0 AND h.lead_id IS NOT NULL AND lower(h.status) = lower(l.status)),
  SUM(l.deleted = 1 AND h.lead_id IS NOT NULL)
FROM last l LEFT JOIN have h ON h.program_id = ? AND h.lead_id = l.lead_id
"""
# Members the input does not carry at all.
_MISSING = """
SELECT h.program_id, h.lead_id FROM have h
WHERE NOT EXISTS (SELECT 1 FROM want w WHERE w.program_id = h.program_id AND w.lead_id = h.lead_id)
"""


def mirror_line(plan: dict | None) -> str:
    """The summary line's mirror part, empty for routes that do not mirror."""
    if not plan:
        return ""
    return ", mirror: " + ", ".join(f"{k.replace('_', ' ')} {plan.get(k, 0)}" for k in PLAN_KEYS)


@dataclass
class ProgramPlan:
    """What the mirror changes in one program."""

    program_id: int
    current: int
    adds: int = 0
    status_changes: int = 0
    removals: int = 0
    unchanged: int = 0

    def line(self) -> str:
        """One plan line, as printed in a dry run and logged in a real one."""
        return (
            f"program {self.program_id}: {self.adds} adds, {self.status_changes} status "
            f"changes, {self.removals} removals, {self.unchanged} unchanged "
            f"(current members {self.current})"
        )

    def removal_limit(self, max_removals: float | None) -> float | None:
        """The most removals allowed: a count, or a fraction of current members."""
        if max_removals is None:
            return None
        if 0 < max_removals < 1:
            return max_removals * self.current
        return max_removals


class MirrorWriter:
    """Wraps a program member write method: buffers the stream, plans, then writes through it."""

    def __init__(
        self,
        ctx: WriteContext,
        inner: t.Any,
        catalog: ProgramCatalog,
        membership: Membership | None = None,
    ) -> None:
        self.ctx = ctx
        self.route = ctx.route
        self.inner = inner
        self.catalog = catalog
        self.membership = membership or Membership(
            ctx.client,
            catalog,
            ctx.api_call,
            logger=ctx.logger,
            poll_seconds=ctx.options.poll_interval_seconds,
            label=ctx.stream,
        )
        work_dir = ctx.options.work_dir
        if work_dir:
            Path(work_dir).mkdir(parents=True, exist_ok=True)
        self._dir = tempfile.TemporaryDirectory(prefix="mirror-", dir=work_dir)
        self._db = sqlite3.connect(Path(self._dir.name) / "keys.db", check_same_thread=False)
        self._db.executescript(_SCHEMA)
        self._unit: int | None = None
        self._first_seq = 0
        self.plans: list[ProgramPlan] = []

    def add(self, record: dict, seq: int, line_no: int) -> None:
        """Check the member's program and lead, and keep the record until the input ends."""
        deleted = bool(record.get("_sdc_deleted_at"))
        program_id, status = program_and_status(
            self.route, record, self.catalog, need_status=not deleted
        )
        lead_id = lead_id_of(record)
        if self._unit is None:
            self._unit = self.ctx.checkpoints.open_unit(seq)
            self._first_seq = seq
        self._db.execute(
            "INSERT INTO want VALUES (?, ?, ?, ?, ?, ?, ?)",
            (seq, line_no, program_id, lead_id, status, int(deleted), orjson.dumps(record)),
        )

    def flush(self) -> None:
        """Nothing goes out before the whole input is seen."""

    def oldest_open_age(self) -> float:
        """Buffered records wait for the end of the input on purpose."""
        return 0.0

    def close(self) -> None:
        """Plan every program, check max_removals, then write through the route's method."""
        try:
            if self._unit is not None:
                self._plan_and_write()
            self.inner.flush()
            self.inner.close()
            if self._unit is not None:
                self.ctx.checkpoints.close_unit(self._unit)
        finally:
            self._db.close()
            self._dir.cleanup()

    def plan(self) -> list[ProgramPlan]:
        """Read current membership and diff it with the input, per program; writes nothing.

        The diff runs in SQLite, so memory stays flat however large the programs are.
        """
        db = self._db
        programs = sorted(row[0] for row in db.execute("SELECT DISTINCT program_id FROM want"))
        self._read_membership(programs)
        plans = []
        for program_id in programs:
            (current,) = db.execute(
                "SELECT COUNT(*) FROM have WHERE program_id = ?", (program_id,)
            ).fetchone()
            diff = db.execute(_DIFF, (program_id, program_id)).fetchone()
            adds, changes, unchanged, deletes = diff
            missing = sum(1 for row in db.execute(_MISSING) if row[0] == program_id)
            plans.append(
                ProgramPlan(
                    program_id,
                    current=current,
                    adds=adds or 0,
                    status_changes=changes or 0,
                    removals=(deletes or 0) + missing,
                    unchanged=unchanged or 0,
                )
            )
        self.plans = plans
        return plans

    def _read_membership(self, programs: list[int]) -> None:
        """Fill `have`: REST per program, then keys-only exports for the large ones."""
        large = [program_id for program_id in programs if not self._read_rest(program_id)]
        if large:
            self._db.executemany(_HAVE, self.membership.export(large))

    def _read_rest(self, program_id: int) -> bool:
        """One program through REST; False (and nothing kept) when it is too large for it."""
        rows = self.membership.read(program_id)
        try:
            self._db.executemany(_HAVE, ((program_id, lead, status) for lead, status in rows))
        except MembershipTooLargeError as exc:
            # The pages read so far are dropped: the export reads the whole program again.
            self._db.execute("DELETE FROM have WHERE program_id = ?", (program_id,))
            self.ctx.logger.info(
                "Stream '%s': program %s: %s; reading it through a keys-only export",
                self.ctx.stream,
                program_id,
                exc,
            )
            return False
        return True

    def _plan_and_write(self) -> None:
        ctx = self.ctx
        plans = self.plan()
        for plan in plans:
            limit = plan.removal_limit(self.route.max_removals)
            if limit is not None and plan.removals > limit:
                raise TargetError(
                    f"{self.route.setting('max_removals')}: the mirror would remove "
                    f"{plan.removals} of {plan.current} members of program {plan.program_id} "
                    f"(limit {limit:g}); nothing was changed"
                )
        for plan in plans:
            ctx.logger.info(
                "Stream '%s': %smirror plan for %s",
                ctx.stream,
                "dry run: " if ctx.options.dry_run else "",
                plan.line(),
            )
            for key in PLAN_KEYS:
                ctx.summary.plan[key] += getattr(plan, key)
        rows = self._db.execute("SELECT seq, line, record FROM want ORDER BY seq")
        for seq, line, record in rows:
            self._feed(orjson.loads(record), seq, line)
        self._remove_missing()

    def _remove_missing(self) -> None:
        """One deleted record per member the input does not carry, through the route's method."""
        now = dt.datetime.now(tz=dt.timezone.utc).isoformat()
        field = self.route.program_id_field
        rows = self._db.execute(_MISSING + " ORDER BY h.program_id, h.lead_id")
        for program_id, lead_id in rows:
            self.ctx.summary.add("received")
            record = {"leadId": lead_id, field: program_id, "_sdc_deleted_at": now}
            self._feed(record, self._first_seq, None)

    def _feed(self, record: dict, seq: int, line: int | None) -> None:
        try:
            self.inner.add(record, seq, line)
        except RecordRejected as exc:
            self.ctx.reject(
                line=line, reason=exc.reason, message=exc.message, record=record, field=exc.field
            )
