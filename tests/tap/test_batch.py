"""BATCH output (`batch_config`): every member in batch files, each window's STATE after its
files, bounded files, the stream-map fallback, and a clear stop on a config it cannot honour."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from .support import (
    assert_same_members,
    assert_state_follows_its_records,
    catalog_for,
    config_for,
    key,
    read_batch_file,
    run_tap,
)

MEMBERS_ONLY = {"program_members": None}
HAS_PYARROW = importlib.util.find_spec("pyarrow") is not None


def batch_config(tmp_path, fmt="jsonl", compression="gzip", size=None):
    config = {
        "encoding": {"format": fmt, "compression": compression},
        "storage": {"root": (tmp_path / "batches").as_uri()},
    }
    if size:
        config["batch_size"] = size
    return config


def member_batches(run):
    return [m for m in run.raw if m["type"] == "BATCH" and m["stream"] == "program_members"]


def test_batch_config_delivers_every_member_in_files_and_no_record_lines(sb, tmp_path):
    """Issue 21's silent loss: with batch_config set, 0 members came out yet every bookmark
    moved. Now every member is in a batch file and no bookmark passes an unannounced row."""
    config = config_for(sb, batch_config=batch_config(tmp_path, size=1500))
    run = run_tap(config)
    assert not [m for m in run.raw if m["type"] == "RECORD" and m["stream"] == "program_members"], (
        "members went out as RECORD lines despite batch_config"
    )
    batches = member_batches(run)
    assert len(batches) >= 4  # 5,074 members in files of at most 1,500 rows
    for message in batches:
        assert message["encoding"] == {"format": "jsonl", "compression": "gzip"}
        assert len(message["manifest"]) == 1
        assert len(read_batch_file(message["manifest"][0], message["encoding"])) <= 1500
    assert_same_members(run.members(), sb.admin.dump("program_members"))
    # the other streams still come out, through the SDK's own batcher
    assert {p["id"] for p in run.records["programs"]} == {1001, 1002, 1003, 1004}
    parts = run.state["bookmarks"]["program_members"]["partitions"]
    assert all(p.get("replication_key_value") for p in parts)
    assert "BATCH files (jsonl, gzip)" in run.logs


def test_batch_windows_state_only_after_their_files(sb, tmp_path):
    dump = sb.admin.dump("program_members")
    ordered = sorted(r["updatedAt"] for r in dump if r["programId"] == 1001)
    start = ordered[len(ordered) // 3]
    config = config_for(
        sb,
        start_date=start,
        window_days=1,
        program_ids=[1001],
        batch_config=batch_config(tmp_path, compression="none", size=200),
    )
    run = run_tap(config, catalog=catalog_for(config, MEMBERS_ONLY))
    assert len(member_batches(run)) > 1
    expected = [r for r in dump if r["programId"] == 1001 and r["updatedAt"] >= start]
    assert_same_members(run.members(), expected)
    assert_state_follows_its_records(run)
    # a window's files are all announced before the STATE that moves past the window
    last_batch = max(i for i, m in enumerate(run.raw) if m["type"] == "BATCH")
    bookmarks_after = [
        m
        for m in run.raw[last_batch:]
        if m["type"] == "STATE"
        and m["value"]["bookmarks"]["program_members"]["partitions"][0].get("replication_key_value")
    ]
    assert bookmarks_after


def test_batch_incremental_rerun_sends_only_changed_members(sb, tmp_path):
    config = config_for(sb, batch_config=batch_config(tmp_path))
    catalog = catalog_for(config, MEMBERS_ONLY)
    first = run_tap(config, catalog=catalog)
    assert len(first.members()) == len(sb.admin.dump("program_members"))
    leads = sorted(m["leadId"] for m in sb.admin.dump("program_members") if m["programId"] == 1001)
    sb.admin.touch_members(1001, leads[:2], statusName="Attended")
    second = run_tap(config, state=first.state, catalog=catalog)
    assert sorted(key(r) for r in second.members()) == [(1001, lead) for lead in leads[:2]]
    third = run_tap(config, state=second.state, catalog=catalog)
    assert third.members() == []
    assert member_batches(third) == []  # no empty files


@pytest.mark.skipif(not HAS_PYARROW, reason="parquet needs pyarrow (tap-marketo-members[parquet])")
@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_batch_parquet_typed_like_the_schema(sb, tmp_path, compression):
    config = config_for(sb, program_ids=[1002], batch_config=batch_config(tmp_path, "parquet"))
    config["batch_config"]["encoding"]["compression"] = compression
    run = run_tap(config, catalog=catalog_for(config, MEMBERS_ONLY))
    expected = [r for r in sb.admin.dump("program_members") if r["programId"] == 1002]
    assert_same_members(run.members(), expected)
    assert all(m["manifest"][0].endswith(".parquet" + (".gz" if compression == "gzip" else ""))
               for m in member_batches(run))  # fmt: skip


def test_stream_maps_fall_back_to_record_lines_with_one_log_line(sb, tmp_path):
    config = config_for(
        sb,
        program_ids=[1004],
        batch_config=batch_config(tmp_path),
        stream_maps={"program_members": {"statusName": "statusName.upper()"}},
    )
    run = run_tap(config, catalog=catalog_for(config, MEMBERS_ONLY))
    assert member_batches(run) == []
    records = [m for m in run.raw if m["type"] == "RECORD" and m["stream"] == "program_members"]
    expected = [r for r in sb.admin.dump("program_members") if r["programId"] == 1004]
    assert len(records) == len(expected)
    assert {m["record"]["statusName"] for m in records} == {
        r["statusName"].upper() for r in expected
    }
    assert run.logs.count("members go out as RECORD lines, not BATCH files") == 1


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"encoding": {"format": "csv"}}, "batch_config.encoding.format"),
        ({"encoding": {"format": "jsonl", "compression": "zstd"}}, "compression"),
        ({"storage": {}}, "batch_config.storage.root"),
        ({"batch_size": 0}, "batch_config.batch_size"),
    ],
)
def test_batch_config_it_cannot_honour_stops_before_any_export(sb, tmp_path, change, named):
    before = len(sb.admin.dump("export_jobs"))
    config = config_for(sb, batch_config={**batch_config(tmp_path), **change})
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    proc = subprocess.run(
        [sys.executable, "-m", "tap_marketo_members.tap", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0
    assert named in proc.stderr
    assert "Traceback" not in proc.stderr
    assert '"RECORD"' not in proc.stdout
    assert len(sb.admin.dump("export_jobs")) == before
    assert not (tmp_path / "batches").exists()
