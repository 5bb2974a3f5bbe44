"""The request log (`calls`): every API call, queued in memory and written in batches."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from marketo_sandbox.repos.database import Database


class CallLog:
    """Buffered, so logging never waits on a long write transaction of another request."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._rows: list[tuple] = []
        self._lock = threading.Lock()

    def log(self, row: tuple) -> None:
        """Queue one row (at, method, path, query, status, code, client_id, ms)."""
        with self._lock:
            self._rows.append(row)

    def flush(self) -> None:
        """Write queued rows (called periodically by the app)."""
        with self._lock:
            rows, self._rows = self._rows, []
        if rows:
            with self.db.tx() as conn:
                conn.executemany(
                    "INSERT INTO calls (at, method, path, query, status, code, client_id, "
                    "duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )

    def dump(self) -> list[dict[str, Any]]:
        """The request log (admin dump)."""
        self.flush()
        cur = self.db.conn().execute(
            "SELECT id, at, method, path, query, status, code, client_id, duration_ms "
            "FROM calls ORDER BY id"
        )
        keys = ("id", "at", "method", "path", "query", "status", "code", "clientId", "durationMs")
        return [dict(zip(keys, r, strict=True)) for r in cur]
