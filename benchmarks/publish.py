"""Render the published benchmark figures into the READMEs and benchmarks/report/.

    benchmarks/publish            rewrite the generated blocks and the report from published.json
    benchmarks/publish --check    exit 1 (and name the files) if a README disagrees; writes nothing

The figures live in benchmarks/published.json (a committed copy of a full run's results file);
README text between `<!-- benchmarks:start -->` / `<!-- benchmarks:end -->` (the figures table),
`<!-- benchmarks-pipeline:start -->` / `<!-- benchmarks-pipeline:end -->` (RECORD vs BATCH) and
inline `<!-- bench:KEY -->…<!-- /bench -->` (one figure in prose) is generated from it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from html_report import write_report
from report import PUBLISHED, PUBLISHED_DOCS, render_doc

REPO = Path(__file__).resolve().parents[1]


def stale_docs(results: dict, repo: Path = REPO) -> dict[str, str]:
    """Every published doc whose text differs from its rendering: path -> rendered text."""
    out = {}
    for rel in PUBLISHED_DOCS:
        text = (repo / rel).read_text()
        rendered = render_doc(text, results)
        if rendered != text:
            out[rel] = rendered
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/publish", description=__doc__)
    parser.add_argument("--results", type=Path, default=PUBLISHED)
    parser.add_argument("--check", action="store_true", help="report stale READMEs, write nothing")
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    stale = stale_docs(results)
    if args.check:
        for rel in stale:
            print(f"stale: {rel} (run benchmarks/publish)", file=sys.stderr)
        return 1 if stale else 0
    for rel, text in stale.items():
        (REPO / rel).write_text(text)
        print(f"updated {rel}")
    print(f"report  {write_report(results, REPO / 'benchmarks' / 'report').relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
