"""Channels (with their progression statuses) and programs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from marketo_sandbox.envelope import MarketoHTTPError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from marketo_sandbox.clock import Clock
    from marketo_sandbox.repos.database import Database

NOT_IN_PROGRAM = "Not in Program"


class ProgramRepository:
    """The `channels` and `programs` tables; a program's statuses come from its channel."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def add_channel(self, name: str, program_type: str, statuses: Sequence[Mapping]) -> None:
        """Create or replace a channel; statuses: [{name, step, success, hidden?, description?}]."""
        with self.db.tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO channels VALUES (?, ?, ?)",
                (name, program_type, orjson.dumps(list(statuses)).decode()),
            )

    def channel(self, name: str) -> dict[str, Any] | None:
        """A channel with its progression statuses (ordered by step)."""
        row = (
            self.db.conn()
            .execute("SELECT name, program_type, statuses FROM channels WHERE name = ?", (name,))
            .fetchone()
        )
        if row is None:
            return None
        statuses = sorted(orjson.loads(row[2]), key=lambda s: s["step"])
        return {"name": row[0], "applicableProgramType": row[1], "progressionStatuses": statuses}

    def add(
        self,
        program_id: int,
        name: str,
        channel: str,
        *,
        program_type: str = "program",
        description: str = "",
        status: str = "",
        folder_id: int | None = None,
        created_at: str | None = None,
    ) -> None:
        """Create a program (its channel must exist); `created_at` for seeded history."""
        now = created_at or self.clock.now_iso()
        with self.db.tx() as conn:
            conn.execute(
                "INSERT INTO programs (id, name, description, type, channel, status, folder_id, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (program_id, name, description, program_type, channel, status, folder_id, now, now),
            )

    _PROGRAM_SQL = (
        "SELECT id, name, description, type, channel, status, workspace, folder_id, "
        "created_at, updated_at FROM programs"
    )

    def _program_dict(self, row: Sequence[Any]) -> dict[str, Any]:
        channel = self.channel(row[4]) or {"progressionStatuses": []}
        progression = channel["progressionStatuses"]
        return {
            "id": row[0],
            "name": row[1],
            "description": row[2] or "",
            "type": row[3],
            "channel": row[4],
            "status": row[5] or "",
            "workspace": row[6],
            "folderId": row[7],
            "createdAt": row[8],
            "updatedAt": row[9],
            "statuses": [NOT_IN_PROGRAM] + [s["name"] for s in progression],
            "progressionStatuses": progression,
        }

    def get(self, program_id: int) -> dict[str, Any] | None:
        """A program, or None.

        `statuses` lists the status names incl. "Not in Program"; `progressionStatuses` the
        channel's statuses as dicts with name, step and success.
        """
        row = self.db.conn().execute(self._PROGRAM_SQL + " WHERE id = ?", (program_id,)).fetchone()
        return self._program_dict(row) if row else None

    def all(self) -> list[dict[str, Any]]:
        """Every program, by id."""
        rows = self.db.conn().execute(self._PROGRAM_SQL + " ORDER BY id").fetchall()
        return [self._program_dict(r) for r in rows]

    def require(self, program_id: int) -> dict[str, Any]:
        """The program, or Marketo's 1013."""
        program = self.get(program_id)
        if program is None:
            raise MarketoHTTPError(1013, f"Program '{program_id}' not found")
        return program

    @staticmethod
    def status_step(program: Mapping[str, Any], status_name: str) -> dict[str, Any] | None:
        """The progression status of `program` named `status_name` (case-insensitive), or None."""
        wanted = status_name.strip().lower()
        for status in program["progressionStatuses"]:
            if status["name"].lower() == wanted:
                return status
        return None

    def require_status(self, program: Mapping[str, Any], status_name: str) -> dict[str, Any]:
        """The assignable status of that name; 1003 naming the valid ones otherwise."""
        status = self.status_step(program, status_name or "")
        if status is None:
            # "Not in Program" is not a progression status: it cannot be assigned.
            raise MarketoHTTPError(
                1003,
                f"Invalid status '{status_name}' for program {program['id']}; valid: "
                + ", ".join(s["name"] for s in program["progressionStatuses"]),
            )
        return status
