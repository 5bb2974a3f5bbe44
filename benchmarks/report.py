"""Figures, goals, the printed table and the JSON file."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import write_json

if TYPE_CHECKING:
    import datetime as dt


@dataclass
class Figure:
    """One line of the table: a value, its goal, and how it was measured."""

    key: str
    title: str
    value: float | None
    unit: str
    goal: str | None = None  # ">= 0.7", "<= 1.1" or None for reference figures
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def passed(self) -> bool | None:
        if self.error is not None:
            return False
        if self.goal is None or self.value is None:
            return None
        op, limit = self.goal.split()
        return self.value >= float(limit) if op == ">=" else self.value <= float(limit)

    @property
    def verdict(self) -> str:
        if self.error is not None:
            return "ERROR"
        return {True: "PASS", False: "MISS", None: "ref"}[self.passed]

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["pass"] = self.passed
        data["verdict"] = self.verdict
        return data


def machine() -> dict[str, Any]:
    """What ran the numbers: these machines are shared, so absolute figures vary."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_gb, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_avg_at_start": os.getloadavg(),
    }


def git_commit(repo: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in {"ratio", "fill"}:
        return f"{value:.3f}"
    if unit == "MB":
        return f"{value:.1f} MB"
    if abs(value) >= 1000:
        return f"{value:,.0f} {unit}"
    return f"{value:.2f} {unit}"


def table(figures: list[Figure]) -> str:
    """The human table: ratio, goal, verdict, and the absolute numbers for reference."""
    rows = [("figure", "value", "goal", "verdict", "reference (absolute, this machine)")]
    rows.extend(
        (
            f.title,
            _fmt(f.value, f.unit),
            f.goal or "",
            f.verdict,
            f.error.splitlines()[0][:90] if f.error else f.detail.get("summary", ""),
        )
        for f in figures
    )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for n, r in enumerate(rows):
        lines.append(
            "  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4]
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 34)
    return "\n".join(lines)


def save(out_dir: Path, figures: list[Figure], meta: dict[str, Any], started: dt.datetime) -> Path:
    """Write results/<date>.json and results/latest.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = {
        **meta,
        "started_utc": started.isoformat(timespec="seconds"),
        "figures": {f.key: f.as_json() for f in figures},
        "goals_missed": [f.key for f in figures if f.passed is False],
    }
    stamp = started.strftime("%Y-%m-%dT%H%M%SZ")
    path = write_json(out_dir / f"{stamp}-{meta['scale']}.json", data)
    write_json(out_dir / "latest.json", data)
    return path
