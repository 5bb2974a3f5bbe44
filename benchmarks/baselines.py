"""The raw floors each connector is measured against (issue 8), over the very same bytes."""

from __future__ import annotations

import csv
import os
import statistics
import time
from typing import TYPE_CHECKING

import msgspec
import orjson

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


def bare_tap_loop(files: list[Path], stream: str = "program_members") -> int:
    """Export CSV → RECORD lines with nothing but `csv.reader` and `orjson.dumps`."""
    rows = 0
    with open(os.devnull, "wb") as out:
        write = out.write
        dumps = orjson.dumps
        for path in files:
            with path.open(newline="", encoding="utf-8") as f:
                reader = csv.reader(f)
                header = next(reader)
                for row in reader:
                    write(
                        dumps(
                            {
                                "type": "RECORD",
                                "stream": stream,
                                "record": dict(zip(header, row, strict=False)),
                            }
                        )
                    )
                    write(b"\n")
                    rows += 1
    return rows


def bare_target_loop(lines: Path, out_dir: Path) -> int:
    """Singer lines → CSV with nothing but a `msgspec` decode and `csv.writer`."""
    decode = msgspec.json.Decoder().decode
    rows = 0
    with (
        lines.open("rb") as fin,
        (out_dir / "bare.csv").open("w", newline="", encoding="utf-8") as f,
    ):
        writer = csv.writer(f)
        header: list[str] | None = None
        for line in fin:
            msg = decode(line)
            if msg.get("type") != "RECORD":
                continue
            record = msg["record"]
            if header is None:
                header = list(record)
                writer.writerow(header)
            writer.writerow([record.get(k) for k in header])
            rows += 1
    return rows


def csv_header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as f:
        return next(csv.reader(f), [])


def timed(fn: Callable[[], int], repeats: int) -> dict[str, float]:
    """Best of `repeats` runs, in wall and in CPU seconds of this process.

    The fastest run is the floor least disturbed by other work on a shared machine, which is
    conservative for the connector's ratio.
    """
    walls = []
    cpus = []
    rows = 0
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        rows = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    best, best_cpu = min(walls), min(cpus)
    return {
        "rows": rows,
        "seconds": best,
        "median_seconds": statistics.median(walls),
        "cpu_seconds": best_cpu,
        "records_per_s": rows / best if best else 0.0,
        "records_per_cpu_s": rows / best_cpu if best_cpu else 0.0,
        "repeats": repeats,
    }
