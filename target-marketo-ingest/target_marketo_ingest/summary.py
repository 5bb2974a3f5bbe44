"""Per-stream outcome counters.

received = imported + accepted + applied + skipped + rejected + superseded (+ dry_run).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class StreamSummary:
    """Counts for one stream; updated from import worker threads, so guarded by a lock."""

    stream: str
    method: str
    received: int = 0
    imported: int = 0
    accepted: int = 0
    applied: int = 0  # Data Ingestion records read back as applied
    skipped: int = 0
    superseded: int = 0
    dry_run: int = 0
    warnings: int = 0
    rejected_by_reason: Counter = field(default_factory=Counter)
    files: int = 0
    requests: int = 0
    api_calls: int = 0
    plan: Counter = field(default_factory=Counter)  # mirror plan counts
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, count: int = 1) -> None:
        """Increment one counter by name."""
        with self._lock:
            setattr(self, name, getattr(self, name) + count)

    def reject(self, reason: str, count: int = 1) -> None:
        """Count rejected records under their reason."""
        with self._lock:
            self.rejected_by_reason[reason] += count

    @property
    def rejected(self) -> int:
        """All rejected records."""
        return sum(self.rejected_by_reason.values())

    @property
    def with_outcome(self) -> int:
        """Records that ended one way or another."""
        return (
            self.imported
            + self.accepted
            + self.applied
            + self.skipped
            + self.rejected
            + self.superseded
            + self.dry_run
        )

    def as_dict(self) -> dict:
        """The summary as logged and emitted in the metric line."""
        return {
            "stream": self.stream,
            "method": self.method,
            "received": self.received,
            "imported": self.imported,
            "accepted": self.accepted,
            "applied": self.applied,
            "skipped": self.skipped,
            "rejected": self.rejected,
            "rejected_by_reason": dict(sorted(self.rejected_by_reason.items())),
            "warnings": self.warnings,
            "superseded": self.superseded,
            "dry_run": self.dry_run,
            "files": self.files,
            "requests": self.requests,
            "api_calls": self.api_calls,
            "without_outcome": self.received - self.with_outcome,
            **({"mirror": dict(self.plan)} if self.plan else {}),
        }
