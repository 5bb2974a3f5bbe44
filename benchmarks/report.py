"""Figures, goals, the printed table and the JSON file."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness import write_json


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


# --- Published figures: the README tables and inline numbers come from one results file. ---

PUBLISHED = Path(__file__).resolve().parent / "published.json"
# Files carrying generated benchmark text, relative to the repository root.
PUBLISHED_DOCS = (
    "README.md",
    "benchmarks/README.md",
    "tap-marketo-members/README.md",
    "target-marketo-ingest/README.md",
)
_BLOCK = re.compile(
    r"(<!-- benchmarks(?P<name>[\w-]*):start -->\n).*?(\n<!-- benchmarks(?P=name):end -->)",
    re.DOTALL,
)
_INLINE = re.compile(r"(<!-- bench:(?P<key>\w+) -->).*?(<!-- /bench -->)", re.DOTALL)


def figure_from_json(data: dict[str, Any]) -> Figure:
    return Figure(
        key=data["key"],
        title=data["title"],
        value=data.get("value"),
        unit=data["unit"],
        goal=data.get("goal"),
        detail=data.get("detail") or {},
        error=data.get("error"),
    )


def markdown_table(results: dict[str, Any]) -> str:
    """The run's header line and its figures as a Markdown table."""
    m = results.get("machine", {})
    started = dt.datetime.fromisoformat(results["started_utc"])
    note = results.get("machine_note")
    head = (
        f"{results['scale'].capitalize()} scale, {started:%Y-%m-%d %H:%M} UTC, commit "
        f"{results.get('git_commit')}, {m.get('cores')} cores {m.get('cpu')}, "
        f"{m.get('memory_gib')} GiB, Python {m.get('python')}"
        + (f", {note}" if note else "")
        + f"; whole run {results.get('duration_s', 0):.0f} s."
    )
    rows = [
        "| figure | value | goal | verdict | reference (absolute, this machine) |",
        "|---|---:|---|---|---|",
    ]
    for raw in results["figures"].values():
        f = figure_from_json(raw)
        ref = f.error.splitlines()[0] if f.error else f.detail.get("summary", "")
        rows.append(
            f"| {f.title} | {_fmt(f.value, f.unit)} | {f.goal or ''} | {f.verdict} | {ref} |"
        )
    return head + "\n\n" + "\n".join(rows)


def pipeline_table(results: dict[str, Any]) -> str:
    """RECORD against BATCH pipelines, one row per member count."""
    fig = results["figures"].get("pipeline_speedup")
    if fig is None:
        return "(no pipeline figures in this results file)"
    rows = [
        (
            "| members | RECORD pipeline | BATCH pipeline | speed-up | target-postgres alone on "
            "the BATCH files | tap alone (RECORD / BATCH) |"
        ),
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for p in sorted(fig["detail"]["points"], key=lambda p: p["members"]):
        rec, bat, loader = p["pipeline_records_s"], p["pipeline_batch_s"], p["loader_batch_s"]
        rows.append(
            f"| {p['members']:,} | {rec:.1f} s | {bat:.1f} s | {rec / bat:.1f}x | {loader:.1f} s "
            f"(pipeline ÷ loader {bat / loader:.2f}) | {p['tap_records_s']:.1f} s / "
            f"{p['tap_batch_s']:.1f} s |"
        )
    return "\n".join(rows)


def inline_value(results: dict[str, Any], key: str) -> str:
    """A figure as prose quotes it: ratios as `1.07x`, memory as `90.2 MB`."""
    f = figure_from_json(results["figures"][key])
    if f.value is None:
        return "n/a"
    if f.unit == "ratio":
        return f"{f.value:.2f}x"
    return _fmt(f.value, f.unit)


def render_doc(text: str, results: dict[str, Any]) -> str:
    """`text` with every generated benchmark block and inline figure rewritten from `results`."""
    blocks = {"": markdown_table, "-pipeline": pipeline_table}

    def block(m: re.Match[str]) -> str:
        return m.group(1) + blocks[m.group("name")](results) + m.group(3)

    def inline(m: re.Match[str]) -> str:
        return m.group(1) + inline_value(results, m.group("key")) + m.group(3)

    return _INLINE.sub(inline, _BLOCK.sub(block, text))
