"""Run the target under tracemalloc; write where the memory held at its peak was allocated.

    python benchmarks/trace_peak.py OUT_DIR --config target.json < input.jsonl

A thread samples the traced size every second and snapshots it whenever it passes the
largest seen; at exit the last such snapshot's top allocation sites go to
OUT_DIR/trace-peak.txt (used by benchmarks/target_memory.py --trace).
"""

from __future__ import annotations

import atexit
import sys
import threading
import time
import tracemalloc
from pathlib import Path

FRAMES = 8
TOP = 25
EARLY = 40.0
LATE_EVERY = 20.0


def main() -> None:
    out = Path(sys.argv[1]) / "trace-peak.txt"
    sys.argv = ["target-marketo-ingest", *sys.argv[2:]]
    tracemalloc.start(FRAMES)
    best = {"size": 0, "snapshot": None, "at": 0.0}
    # The first snapshot after EARLY seconds and the latest one: what grew between them.
    seen: dict = {"early": None, "late": None, "late_at": 0.0}
    started = time.monotonic()

    def sample() -> None:
        while True:
            time.sleep(1.0)
            current, _ = tracemalloc.get_traced_memory()
            now = time.monotonic()
            if current > best["size"] * 1.05:
                best.update(size=current, snapshot=tracemalloc.take_snapshot(), at=now)
            if seen["early"] is None and now - started > EARLY:
                seen["early"] = tracemalloc.take_snapshot()
            elif seen["early"] is not None and now - seen["late_at"] > LATE_EVERY:
                seen.update(late=tracemalloc.take_snapshot(), late_at=now)

    def dump() -> None:
        snapshot = best["snapshot"]
        if snapshot is None:
            return
        own = tracemalloc.Filter(inclusive=False, filename_pattern=tracemalloc.__file__)
        snapshot = snapshot.filter_traces([own])
        lines = [
            f"peak traced {best['size'] / 1e6:.1f} MB at {best['at'] - started:.0f} s",
            "",
        ]
        lines.extend(
            f"{stat.size / 1e6:8.2f} MB {stat.count:9d} blocks {stat.traceback[0]}"
            for stat in snapshot.statistics("lineno")[:TOP]
        )
        lines.append("")
        for stat in snapshot.statistics("traceback")[:8]:
            lines.append(f"{stat.size / 1e6:8.2f} MB {stat.count} blocks")
            lines.extend("    " + line for line in stat.traceback.format()[-FRAMES:])
        if seen["early"] is not None and seen["late"] is not None:
            lines += ["", f"grown from {EARLY} s to {seen['late_at'] - started:.0f} s:"]
            for stat in seen["late"].compare_to(seen["early"], "traceback")[:10]:
                lines.append(f"{stat.size_diff / 1e6:+8.2f} MB {stat.count_diff:+d} blocks")
                lines.extend("    " + line for line in stat.traceback.format()[-FRAMES:])
        out.write_text("\n".join(lines) + "\n")

    threading.Thread(target=sample, daemon=True).start()
    atexit.register(dump)
    from target_marketo_ingest.target import TargetMarketoIngest  # noqa: PLC0415

    TargetMarketoIngest.cli()


if __name__ == "__main__":
    main()
