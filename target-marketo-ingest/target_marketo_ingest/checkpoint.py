"""STATE goes out only when every record received before it has an outcome.

Records are numbered as they arrive. Write methods group records into units (an import file,
an ingestion request, a REST call) and register each unit with the number of its first
record; a unit closes when all its records have an outcome. A STATE that arrived after record
N is emitted once no open unit starts before N. Superseded, rejected and imported records all
count as outcomes, so a crash loses nothing: the rerun starts from a STATE whose records are
all accounted for.
"""

from __future__ import annotations

import itertools
import threading
import typing as t


class Checkpoints:
    """Thread-safe tracker of open units and pending STATE messages."""

    def __init__(
        self,
        emit: t.Callable[[dict], None],
        *,
        enabled: bool = True,
        before_emit: t.Callable[[int], None] | None = None,
    ) -> None:
        """Track units; `before_emit(line)` runs as a STATE read at `line` goes out.

        The rejects file writes there the entries that STATE covers.
        """
        self._emit = emit
        self._before_emit = before_emit
        self._enabled = enabled
        self._lock = threading.RLock()
        self._units: dict[int, int] = {}
        self._ids = itertools.count(1)
        self._pending: list[tuple[int, dict, int]] = []

    def open_unit(self, first_seq: int) -> int:
        """Register a unit whose first record has number `first_seq`; returns its id."""
        with self._lock:
            unit = next(self._ids)
            self._units[unit] = first_seq
            return unit

    def close_unit(self, unit: int) -> None:
        """Every record of the unit has an outcome; emit any STATE that is now safe."""
        with self._lock:
            self._units.pop(unit, None)
            self._flush_locked()

    def add_state(self, state: dict, received: int, line: int = 0) -> None:
        """A STATE arrived after `received` records, at input `line`."""
        with self._lock:
            self._pending.append((received, state, line))
            self._flush_locked()

    @property
    def pending_states(self) -> int:
        """STATE messages held back."""
        with self._lock:
            return len(self._pending)

    def _flush_locked(self) -> None:
        if not self._pending:
            return
        oldest_open = min(self._units.values(), default=None)
        ready = [
            pending for pending in self._pending if oldest_open is None or oldest_open >= pending[0]
        ]
        if not ready:
            return
        self._pending = self._pending[len(ready) :]
        _, state, line = ready[-1]
        if self._enabled:
            if self._before_emit is not None:
                self._before_emit(line)
            self._emit(state)
