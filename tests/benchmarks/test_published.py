"""Benchmark numbers in the READMEs come from one committed results file, and so does the report.

Fast: nothing here runs the benchmark. benchmarks/published.json is rendered again (the README
tables, the inline figures in the connector READMEs, the HTML report and its PNGs) and compared
with what is committed.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

from html_report import PLOTS, write_report  # noqa: E402
from publish import stale_docs  # noqa: E402
from report import PUBLISHED, PUBLISHED_DOCS, render_doc  # noqa: E402

CONNECTOR_READMES = ("tap-marketo-members/README.md", "target-marketo-ingest/README.md")
# What a benchmark figure looks like in prose: a decimal ratio ("0.83x", also with a
# multiplication sign), a rate per CPU second, or a peak memory figure.
BENCH_LIKE = re.compile(
    r"\b\d+\.\d+\s?[x\u00d7](?!\w)|\b[\d,.]+\s*(?:rec(?:ords)?\s+)?per\s+CPU|\b[\d.]+\s*MB\s+peak"
    r"|peak\s+RSS\s+(?:of\s+)?[\d.]+",
    re.IGNORECASE,
)
GENERATED = re.compile(
    r"<!-- benchmarks([\w-]*):start -->.*?<!-- benchmarks\1:end -->"
    r"|<!-- bench:\w+ -->.*?<!-- /bench -->",
    re.DOTALL,
)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def published() -> dict:
    return json.loads(PUBLISHED.read_text())


def test_readmes_agree_with_published_results(published: dict) -> None:
    stale = stale_docs(published)
    assert not stale, f"run benchmarks/publish: {sorted(stale)} disagree with published.json"


def test_every_doc_has_its_generated_block() -> None:
    for rel in ("README.md", "benchmarks/README.md"):
        assert "<!-- benchmarks:start -->" in (REPO / rel).read_text(), rel
    assert "<!-- benchmarks-pipeline:start -->" in (REPO / "README.md").read_text()
    for rel in CONNECTOR_READMES:
        assert rel in PUBLISHED_DOCS


def test_a_stale_figure_is_rewritten(published: dict) -> None:
    """The tap README once said 0.83x where the table said 1.07x: that cannot stay."""
    text = (REPO / "tap-marketo-members/README.md").read_text()
    inline = re.search(r"<!-- bench:tap_throughput -->(.*?)<!-- /bench -->", text)
    assert inline, "the tap README quotes its throughput ratio from published.json"
    drifted = text.replace(inline.group(0), "<!-- bench:tap_throughput -->0.83x<!-- /bench -->")
    rendered = render_doc(drifted, published)
    assert rendered == text
    assert f"{published['figures']['tap_throughput']['value']:.2f}x" in rendered

    table = (REPO / "README.md").read_text()
    assert render_doc(table.replace("| 1.074 |", "| 0.830 |"), published) == table


@pytest.mark.parametrize("rel", ["README.md", *CONNECTOR_READMES])
def test_readmes_quote_no_unpublished_figure(rel: str) -> None:
    """Outside the generated spans, no number in a README looks like a benchmark figure."""
    text = GENERATED.sub("", (REPO / rel).read_text())
    found = [m.group(0) for m in BENCH_LIKE.finditer(text)]
    assert not found, f"{rel}: benchmark figures not from published.json: {found}"


def _is_png(path: Path) -> bool:
    if path.read_bytes()[:8] != PNG_MAGIC:
        return False
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        return img.format == "PNG" and img.size[0] > 100 and img.size[1] > 100


def test_report_renders_from_published_results(published: dict, tmp_path: Path) -> None:
    html_path = write_report(published, tmp_path)
    page = html_path.read_text()
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == sorted(name for name, _title, _plot in PLOTS)
    for name in pngs:
        assert f'src="{name}"' in page, name
        assert _is_png(tmp_path / name), name
    # The committed report is this rendering.
    committed = REPO / "benchmarks" / "report"
    assert (committed / "report.html").read_text() == page
    for name in pngs:
        assert _is_png(committed / name), name
    readme = (REPO / "benchmarks" / "README.md").read_text()
    for name in ("report.html", *pngs):
        assert f"report/{name}" in readme, name
