"""Marketo -> PostgreSQL as a user runs it: `meltano run` with RECORD lines and with BATCH files.

For each size it measures, on the same sandbox data and the same PostgreSQL server:
- the tap alone (RECORD lines to a file; BATCH files plus their messages),
- MeltanoLabs target-postgres alone, fed those very RECORD lines and those very BATCH messages,
- `meltano run tap-marketo-members target-postgres` and
  `meltano run tap-marketo-members-batch target-postgres`, each into an empty schema.
Every load is checked by counting rows in PostgreSQL. The goals (issue 21) are judged at the
largest size: the BATCH pipeline within 1.5x of target-postgres alone loading the same BATCH
files, and at least 4x faster than the RECORD pipeline.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import RunResult, check, run_connector, write_json
from report import Figure

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the e2e helpers: Meltano and its project

from e2e.support import (  # noqa: E402
    Meltano,
    Postgres,
    install_meltano,
    isolated_sys_dir,
    sandbox_env,
)

if TYPE_CHECKING:
    from marketo_sandbox.server import SandboxServer

log = logging.getLogger("benchmarks.pipeline")
TARGET_POSTGRES = REPO / ".meltano" / "loaders" / "target-postgres" / "venv" / "bin"
# Rows per batch file, as meltano.yml sets it: target-postgres 0.8.1 loads each file whole; at
# 200,000 members 20,000-row files loaded in 10.4 s (184 MB RSS), 100,000-row ones in 11.1 s
# (538 MB), 5,000-row ones in 11.3 s (126 MB), with COPY.
BATCH_SIZE = 20_000
# The loader as meltano.yml configures it (COPY instead of INSERT), the same for every run.
LOADER = {"use_copy": True}
PG = {
    "host": os.environ.get("E2E_PG_HOST", "127.0.0.1"),
    "port": int(os.environ.get("E2E_PG_PORT", "5432")),
    "user": os.environ.get("E2E_PG_USER", "marketo"),
    "password": os.environ.get("E2E_PG_PASSWORD", "marketo"),
    "database": os.environ.get("E2E_PG_DATABASE", "marketo_e2e"),
}
# One full export per 10 programs (filtered locally), the same jobs for the tap alone and in the
# pipeline, as bench.py's throughput run does; the window plan is not what is measured here.
FULL_EXPORT = {
    "start_date": "2000-01-01T00:00:00Z",
    "updated_at_filter": "off",
    "rest_fallback": "never",
}
# The e2e tests' PostgreSQL helper (psql with these credentials), checked the same way.
POSTGRES = Postgres(psql_path=shutil.which("psql") or "psql", **PG)
KEYS = (
    (
        "pipeline_batch_vs_loader",
        "BATCH pipeline ÷ target-postgres alone on BATCH",
        "ratio",
        "<= 1.5",
    ),
    ("pipeline_speedup", "RECORD pipeline ÷ BATCH pipeline (wall)", "ratio", ">= 4"),
)


def rows_in(schema: str) -> int:
    return int(POSTGRES.scalar(f"SELECT count(*) FROM {schema}.program_members"))


def fresh_schema(name: str) -> str:
    POSTGRES.query(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    return name


def batch_config(root: Path) -> dict[str, Any]:
    return {
        "encoding": {"format": "jsonl", "compression": "gzip"},
        "storage": {"root": root.as_uri()},
        "batch_size": BATCH_SIZE,
    }


class PipelineBench:
    """The four measurements per size, in one scratch folder."""

    def __init__(self, work: Path) -> None:
        self.work = work / "pipeline"
        self.work.mkdir(parents=True, exist_ok=True)
        self.meltano = Meltano(install_meltano())
        started = time.perf_counter()
        self.meltano("install", timeout=3600)
        log.info("meltano plugins ready in %.1fs", time.perf_counter() - started)

    def tap(self, name: str, sb: SandboxServer, **extra: Any) -> RunResult:
        config = write_json(
            self.work / f"{name}.tap.json",
            {**sb.config, **FULL_EXPORT, "poll_interval_seconds": 1, **extra},
        )
        return check(
            run_connector(
                [str(REPO / ".venv" / "bin" / "tap-marketo-members"), "--config", str(config)],
                stdout_path=self.work / f"{name}.singer",
                stderr_path=self.work / f"{name}.tap.log",
                timeout_s=3600,
            ),
            f"tap ({name})",
        )

    def loader(self, name: str, singer: Path, schema: str) -> RunResult:
        settings = {**PG, **LOADER, "default_target_schema": fresh_schema(schema)}
        config = write_json(self.work / f"{name}.target.json", settings)
        return check(
            run_connector(
                [str(TARGET_POSTGRES / "target-postgres"), "--config", str(config)],
                stdin_path=singer,
                stdout_path=self.work / f"{name}.target.out",
                stderr_path=self.work / f"{name}.target.log",
                timeout_s=7200,
            ),
            f"target-postgres ({name})",
        )

    def meltano_run(
        self, name: str, extractor: str, sb: SandboxServer, schema: str, env: dict[str, str]
    ) -> float:
        sys_env = isolated_sys_dir(self.work / f"{name}-meltano")
        full_env = {
            **sandbox_env(sb.config),
            **sys_env,
            "TAP_MARKETO_MEMBERS_POLL_INTERVAL_SECONDS": "1",
            "TARGET_POSTGRES_HOST": PG["host"],
            "TARGET_POSTGRES_PORT": str(PG["port"]),
            "TARGET_POSTGRES_USER": PG["user"],
            "TARGET_POSTGRES_PASSWORD": PG["password"],
            "TARGET_POSTGRES_DATABASE": PG["database"],
            "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": fresh_schema(schema),
            "TARGET_POSTGRES_USE_COPY": str(LOADER["use_copy"]).lower(),
            "TAP_MARKETO_MEMBERS_START_DATE": FULL_EXPORT["start_date"],
            "TAP_MARKETO_MEMBERS_UPDATED_AT_FILTER": FULL_EXPORT["updated_at_filter"],
            "TAP_MARKETO_MEMBERS_REST_FALLBACK": FULL_EXPORT["rest_fallback"],
            **env,
        }
        started = time.perf_counter()
        self.meltano("run", extractor, "target-postgres", env=full_env, timeout=7200)
        return time.perf_counter() - started

    def measure(self, sb: SandboxServer, members: int) -> dict[str, Any]:
        """Every figure for one size; each load checked against the member count."""
        tag = f"m{members}"
        point: dict[str, Any] = {"members": members}
        rec = self.tap(f"{tag}-records", sb)
        point["tap_records_s"] = rec.wall_s
        root = self.work / f"{tag}-batch-files"
        bat = self.tap(f"{tag}-batch", sb, batch_config=batch_config(root))
        point["tap_batch_s"] = bat.wall_s
        point["batch_files"] = len(list(root.glob("*program_members*")))
        point["batch_bytes"] = sum(p.stat().st_size for p in root.glob("*program_members*"))
        for mode in ("records", "batch"):
            schema = f"bench_{mode}_alone"
            result = self.loader(f"{tag}-{mode}", self.work / f"{tag}-{mode}.singer", schema)
            point[f"loader_{mode}_s"] = result.wall_s
            point[f"loader_{mode}_rss_mb"] = result.peak_rss_mb
            point[f"loader_{mode}_rows"] = rows_in(schema)
        shutil.rmtree(root, ignore_errors=True)
        (self.work / f"{tag}-records.singer").unlink(missing_ok=True)
        point["pipeline_records_s"] = self.meltano_run(
            f"{tag}-records", "tap-marketo-members", sb, "bench_records_run", {}
        )
        point["pipeline_records_rows"] = rows_in("bench_records_run")
        run_root = self.work / f"{tag}-run-batch-files"
        point["pipeline_batch_s"] = self.meltano_run(
            f"{tag}-batch",
            "tap-marketo-members-batch",
            sb,
            "bench_batch_run",
            {"TAP_MARKETO_MEMBERS_BATCH_BATCH_CONFIG": json.dumps(batch_config(run_root))},
        )
        point["pipeline_batch_rows"] = rows_in("bench_batch_run")
        shutil.rmtree(run_root, ignore_errors=True)
        for key in ("loader_records_rows", "loader_batch_rows", "pipeline_records_rows",
                    "pipeline_batch_rows"):  # fmt: skip
            if point[key] != members:
                msg = f"{key}: {point[key]} rows in PostgreSQL, sandbox has {members} members"
                raise RuntimeError(msg)
        for schema in ("bench_records_alone", "bench_batch_alone", "bench_records_run",
                       "bench_batch_run"):  # fmt: skip
            fresh_schema(schema)
        log.info("pipeline point %s", point)
        return point


def figures(points: list[dict[str, Any]]) -> list[Figure]:
    """The goals at the largest size; every size's absolute numbers in the detail."""
    big = max(points, key=lambda p: p["members"])
    summary = "; ".join(
        f"{p['members']:,} members: RECORD pipeline {p['pipeline_records_s']:.1f}s, BATCH "
        f"pipeline {p['pipeline_batch_s']:.1f}s, target-postgres alone {p['loader_records_s']:.1f}s"
        f" (RECORD) / {p['loader_batch_s']:.1f}s (BATCH), tap alone {p['tap_records_s']:.1f}s / "
        f"{p['tap_batch_s']:.1f}s"
        for p in sorted(points, key=lambda p: p["members"])
    )
    detail = {"points": points, "summary": summary}
    values = (
        big["pipeline_batch_s"] / big["loader_batch_s"],
        big["pipeline_records_s"] / big["pipeline_batch_s"],
    )
    return [
        Figure(key, f"{title} ({big['members']:,})", value, unit, goal, detail=detail)
        for (key, title, unit, goal), value in zip(KEYS, values, strict=True)
    ]
