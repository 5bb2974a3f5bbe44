"""The benchmark keeps working: the whole pipeline at tiny scale, every figure present and sane.

No timing assertions here (performance is judged by the full run, not by tests); this checks that
each figure was measured from real runs and that its numbers are consistent with each other.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

FIGURES = {
    "tap_throughput",
    "target_throughput",
    "api_calls_export_per_100k",
    "tap_rss_large_mb",
    "tap_rss_ratio",
    "target_rss_large_mb",
    "target_rss_ratio",
    "slot_use_export",
    "polling_economy",
    "slot_use_import",
    "packing_import_files",
    "packing_ingestion",
    "api_calls_import_per_100k",
    "api_calls_ingest_per_100k",
    "tap_wall_ratio",
    "target_wall_ratio",
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str, str]:
    out = tmp_path_factory.mktemp("bench-results")
    proc = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "run"), "--scale", "tiny", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=280,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    data = json.loads((out / "latest.json").read_text())
    dated = list(out.glob("*-tiny.json"))
    assert len(dated) == 1, "the dated result file is written beside latest.json"
    return data, proc.stdout, proc.stderr


@pytest.mark.slow
def test_every_figure_measured_with_goal_and_verdict(tiny_run):
    data, stdout, _ = tiny_run
    figures = data["figures"]
    assert set(figures) == FIGURES
    for key, fig in figures.items():
        assert fig["error"] is None, f"{key}: {fig['error']}"
        assert isinstance(fig["value"], (int, float)), key
        assert math.isfinite(fig["value"]), key
        if fig["goal"] is None:
            assert fig["verdict"] == "ref", key
        else:
            assert fig["verdict"] in {"PASS", "MISS"}, key
            assert fig["pass"] is (fig["verdict"] == "PASS"), key
        assert fig["title"] in stdout, f"{key} missing from the printed table"
    assert data["machine"]["cores"] >= 1
    assert data["scale"] == "tiny"


@pytest.mark.slow
def test_throughput_ratios_come_from_the_same_data(tiny_run):
    data, _, _ = tiny_run
    tap = data["figures"]["tap_throughput"]
    detail = tap["detail"]
    # The tap emitted exactly the rows of the files the bare loop read, with >= 14 columns.
    assert detail["records"] == detail["bare_rows"] > 0
    assert detail["columns"] >= 14
    assert tap["value"] == pytest.approx(
        detail["tap_records_per_cpu_s"] / detail["bare"]["records_per_cpu_s"]
    )
    assert 0 < detail["tap_stream_phase_cpu_s"] <= detail["tap_wall_s"]
    assert 0 < tap["value"] < 20
    target = data["figures"]["target_throughput"]
    assert target["detail"]["records_full"] == detail["records"]
    assert target["detail"]["bare"]["rows"] == detail["records"]
    assert 0 < target["value"] < 20


@pytest.mark.slow
def test_memory_packing_slots_and_calls_are_sane(tiny_run):
    data, _, _ = tiny_run
    f = {k: v["value"] for k, v in data["figures"].items()}
    for who in ("tap", "target"):
        assert 10 < f[f"{who}_rss_large_mb"] < 4000
        assert 0.2 < f[f"{who}_rss_ratio"] < 10
    assert 0 < f["packing_import_files"] <= 1.0
    assert 0 < f["packing_ingestion"] <= 1.0
    # A wall time can't beat the ideal schedule by much (only by the status-rhythm rounding).
    assert f["slot_use_export"] > 0.5
    assert f["slot_use_import"] > 0.5
    slots = data["figures"]["slot_use_export"]["detail"]
    assert slots["jobs"] == data["sizes"]["slot_jobs"]
    for key in (
        "api_calls_export_per_100k",
        "api_calls_import_per_100k",
        "api_calls_ingest_per_100k",
    ):
        assert f[key] > 0


@pytest.mark.slow
def test_benchmark_output_holds_no_secret_or_token(tiny_run):
    """The benchmark prints connector logs and writes result files: no secret or token in them."""
    data, stdout, stderr = tiny_run
    for name, text in {"stdout": stdout, "stderr": stderr, "json": json.dumps(data)}.items():
        assert "sandbox-secret" not in text, name
        assert not re.search(r"(?i)bearer\s+[0-9a-f-]{16,}", text), name
        assert not re.search(r"access_token=(?!REDACTED)[^&\s\"']+", text), name


@pytest.mark.slow
def test_wall_clock_ratios_compare_the_same_rows(tiny_run):
    data, _, _ = tiny_run
    for key in ("tap_wall_ratio", "target_wall_ratio"):
        fig = data["figures"][key]
        points = fig["detail"]["points"]
        for point in points.values():
            # The raw client replayed the tap's own jobs: the same rows, the same count.
            assert point["raw_rows"] == point["records"] > 0
            assert point["export_jobs"] >= 1
            assert point["tap_wall_s"] > 0
            assert point["target_wall_s"] > 0
            assert 10 < point["tap_rss_mb"] < 4000
        largest = points[max(points, key=int)]
        who = key.split("_")[0]
        assert fig["value"] == pytest.approx(largest[f"{who}_ratio"])
