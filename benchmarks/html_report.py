"""An HTML page with plots from one results file (benchmarks/results/*.json or published.json).

    uv run --frozen python benchmarks/html_report.py RESULTS.json OUT_DIR

writes OUT_DIR/report.html and the PNGs it shows: throughput against the raw floor, peak memory
against record count, export/import slot use (over time when the results carry per-job times) and
the RECORD vs BATCH pipelines. The data are the figures' `detail` dicts (see bench.py).
"""

from __future__ import annotations

import html
import json
import sys
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")

import matplotlib.pyplot as plt
from report import figure_from_json, markdown_table

PNG_DPI = 100


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    # No timestamps in the PNG metadata: the same results render to the same bytes.
    fig.savefig(path, dpi=PNG_DPI, metadata={"Software": None})
    plt.close(fig)
    return path


def plot_throughput(figures: dict[str, Any], path: Path) -> Path | None:
    bars = []
    for key, who, rate_key in (
        ("tap_throughput", "tap", "tap_records_per_cpu_s"),
        ("target_throughput", "target", "target_records_per_cpu_s"),
    ):
        f = figures.get(key)
        if not f or f.get("value") is None:
            continue
        d = f["detail"]
        bars.append((who, d.get(rate_key), (d.get("bare") or {}).get("records_per_cpu_s"), f))
    bars = [b for b in bars if b[1] and b[2]]
    if not bars:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = range(len(bars))
    width = 0.38
    ax.bar([x - width / 2 for x in xs], [b[1] for b in bars], width, label="connector")
    ax.bar([x + width / 2 for x in xs], [b[2] for b in bars], width, label="raw floor (bare loop)")
    for x, (_who, conn, _bare, f) in zip(xs, bars, strict=True):
        ax.annotate(
            f"{f['value']:.2f}x (goal {f.get('goal')})",
            (x - width / 2, conn),
            ha="center",
            va="bottom",
            fontsize=9,
        )
    ax.set_xticks(list(xs), [b[0] for b in bars])
    ax.set_ylabel("records per CPU second")
    ax.set_title("Throughput against the raw floor (same run, same bytes)")
    ax.legend(loc="upper right")
    ax.set_ylim(0, max(max(b[1], b[2]) for b in bars) * 1.25)
    return _save(fig, path)


def plot_memory(figures: dict[str, Any], path: Path) -> Path | None:
    f = figures.get("tap_rss_large_mb") or figures.get("target_rss_large_mb")
    points = (f or {}).get("detail", {}).get("points")
    if not points:
        return None
    rows = sorted(points.values(), key=lambda p: p["records"])
    fig, ax = plt.subplots(figsize=(7, 4))
    records = [p["records"] for p in rows]
    for who in ("tap", "target"):
        ax.plot(records, [p[f"{who}_rss_mb"] for p in rows], marker="o", label=who)
    goal = f.get("goal") or ""
    if goal.startswith("<="):
        ax.axhline(float(goal.split()[1]), color="grey", linestyle="--", label=f"goal {goal} MB")
    ax.set_xscale("log")
    ax.set_xlabel("records (log scale)")
    ax.set_ylabel("peak RSS (MB)")
    ax.set_ylim(bottom=0)
    ax.set_title("Peak memory against record count")
    ax.legend()
    return _save(fig, path)


def plot_slots(figures: dict[str, Any], path: Path) -> Path | None:
    export = figures.get("slot_use_export")
    per_job = (export or {}).get("detail", {}).get("per_job") or []
    timed = [j for j in per_job if j.get("started_s") is not None and j.get("finished_s")]
    if timed:
        # Slots in use over time: jobs processing at each moment, against the limit of 2.
        edges = sorted(
            [(j["started_s"], 1) for j in timed] + [(j["finished_s"], -1) for j in timed]
        )
        ts, used, level = [0.0], [0], 0
        for t, step in edges:
            level += step
            ts.append(t)
            used.append(level)
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.step(ts, used, where="post", label="export jobs processing")
        ax.axhline(2, color="grey", linestyle="--", label="Marketo limit (2)")
        ax.set_xlabel("sandbox seconds since the first job was created")
        ax.set_ylabel("slots in use")
        ax.set_ylim(0, 3)
        ax.set_yticks([0, 1, 2, 3])
        ax.set_title(f"Export slot use over time ({export['value']:.3f} of ideal)")
        ax.legend()
        return _save(fig, path)
    bars = [
        (label, figures[key])
        for key, label in (("slot_use_export", "export"), ("slot_use_import", "import"))
        if figures.get(key) and figures[key].get("value") is not None
    ]
    bars = [(label, f) for label, f in bars if "wall_sandbox_s" in f["detail"]]
    if not bars:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = range(len(bars))
    width = 0.38
    ax.bar([x - width / 2 for x in xs], [f["detail"]["wall_sandbox_s"] for _, f in bars], width,
           label="measured (sandbox seconds)")  # fmt: skip
    ax.bar([x + width / 2 for x in xs], [f["detail"]["ideal_sandbox_s"] for _, f in bars], width,
           label="ideal: ceil(N/2) x job time")  # fmt: skip
    for x, (_label, f) in zip(xs, bars, strict=True):
        ax.annotate(f"{f['value']:.3f}", (x - width / 2, f["detail"]["wall_sandbox_s"]),
                    ha="center", va="bottom", fontsize=9)  # fmt: skip
    ax.set_xticks(list(xs), [label for label, _ in bars])
    ax.set_ylabel("sandbox seconds")
    ax.set_title("Job slot use: both Marketo slots kept busy")
    ax.legend(loc="upper right")
    return _save(fig, path)


def plot_pipeline(figures: dict[str, Any], path: Path) -> Path | None:
    points = (figures.get("pipeline_speedup") or {}).get("detail", {}).get("points")
    if not points:
        return None
    rows = sorted(points, key=lambda p: p["members"])
    series = (
        ("pipeline_records_s", "RECORD pipeline"),
        ("pipeline_batch_s", "BATCH pipeline"),
        ("loader_batch_s", "target-postgres alone (BATCH)"),
    )
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(series)
    for i, (key, label) in enumerate(series):
        xs = [n + (i - 1) * width for n in range(len(rows))]
        ax.bar(xs, [p.get(key, 0) for p in rows], width, label=label)
    ax.set_xticks(range(len(rows)), [f"{p['members']:,} members" for p in rows])
    ax.set_ylabel("wall seconds")
    ax.set_title("meltano run into PostgreSQL: RECORD lines vs BATCH files")
    ax.legend()
    return _save(fig, path)


PLOTS = (
    ("throughput.png", "Throughput against the raw floor", plot_throughput),
    ("memory.png", "Memory against record count", plot_memory),
    ("slots.png", "Export and import slot use", plot_slots),
    ("pipeline.png", "RECORD and BATCH pipelines", plot_pipeline),
)


def write_report(results: dict[str, Any], out_dir: Path) -> Path:
    """Write out_dir/report.html and its PNGs; return the HTML file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = results["figures"]
    sections = []
    for name, title, plot in PLOTS:
        if plot(figures, out_dir / name) is not None:
            sections.append(
                f'<h2>{html.escape(title)}</h2>\n<img src="{name}" alt="{html.escape(title)}">'
            )
    rows = []
    for raw in figures.values():
        f = figure_from_json(raw)
        ref = f.error.splitlines()[0] if f.error else f.detail.get("summary", "")
        value = "-" if f.value is None else f"{f.value:g} {f.unit}"
        rows.append(
            f'<tr class="{f.verdict.lower()}"><td>{html.escape(f.title)}</td>'
            f"<td>{html.escape(value)}</td><td>{html.escape(f.goal or '')}</td>"
            f"<td>{f.verdict}</td><td>{html.escape(str(ref))}</td></tr>"
        )
    header = markdown_table(results).split("\n\n", 1)[0]
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Marketo connectors: benchmarks</title>
<style>
body {{ font-family: sans-serif; max-width: 64rem; margin: 2rem auto; padding: 0 1rem; }}
table {{ border-collapse: collapse; font-size: 0.9rem; }}
td, th {{ border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; }}
tr.pass td:nth-child(4) {{ color: #1a7f37; }} tr.miss td, tr.error td {{ color: #cf222e; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>Marketo connectors: benchmarks</h1>
<p>{html.escape(header)}</p>
{chr(10).join(sections)}
<h2>Every figure</h2>
<table><tr><th>figure</th><th>value</th><th>goal</th><th>verdict</th><th>reference</th></tr>
{chr(10).join(rows)}
</table>
<p>How each figure is measured: benchmarks/README.md in the repository.</p>
</body></html>
"""
    path = out_dir / "report.html"
    path.write_text(page)
    return path


def main(argv: list[str]) -> int:
    results, out = Path(argv[0]), Path(argv[1])
    print(write_report(json.loads(results.read_text()), out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
