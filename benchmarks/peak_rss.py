"""A child process's own peak RSS: its VmHWM, read from /proc while it runs.

`wait4`'s `ru_maxrss` is no good for a child of a big process: Linux keeps the high-water RSS
a process had before `exec`, so a connector forked from a 300 MB benchmark reports at least
300 MB (found by `target_memory.py`; `/bin/true` forked from a 310 MB Python reports 315 MB).
VmHWM belongs to the memory the child has after `exec`. It only grows, so the last value read
before the child ends is its peak, short of whatever it grew in its last `INTERVAL`.
"""

from __future__ import annotations

import threading
from pathlib import Path

INTERVAL = 0.1


def vm_hwm_mb(pid: int) -> float | None:
    """The process's VmHWM in MB now, or None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


class PeakRss:
    """Samples a child's VmHWM until it ends; `peak_mb` is the largest value seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_mb = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.is_set():
            now = vm_hwm_mb(self.pid)
            if now is None:
                return
            self.peak_mb = max(self.peak_mb, now)
            self._done.wait(INTERVAL)

    def stop(self) -> float:
        """Stop sampling (call before reaping the child) and return the peak in MB."""
        now = vm_hwm_mb(self.pid)
        if now is not None:
            self.peak_mb = max(self.peak_mb, now)
        self._done.set()
        self._thread.join(timeout=5)
        return self.peak_mb
