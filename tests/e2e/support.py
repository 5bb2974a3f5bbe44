"""Helpers for the end-to-end tests: the pinned Meltano, PostgreSQL access, JSONL files."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MELTANO_INSTALL_TIMEOUT = 900
MELTANO_RUN_TIMEOUT = 300
# What `meltano install` depends on. Our connectors are installed editable, so code changes
# need no reinstall; a changed meltano.yml or pyproject does. scripts/demo writes the same stamp.
PLUGIN_INPUTS = (
    "meltano.yml",
    "marketo-common/pyproject.toml",
    "tap-marketo-members/pyproject.toml",
    "target-marketo-ingest/pyproject.toml",
)
PLUGINS_STAMP = ".meltano/plugins.sha256"
PLUGIN_VENVS = (
    ("extractor", "tap-marketo-members"),
    ("extractor", "tap-jsonl"),
    ("extractor", "tap-postgres"),
    ("loader", "target-marketo-ingest"),
    ("loader", "target-duckdb"),
    ("loader", "target-jsonl"),
    ("loader", "target-postgres"),
)


def isolated_sys_dir(path: Path) -> dict[str, str]:
    """Meltano variables for a `.meltano/` of one test's own that shares the installed venvs.

    Meltano writes each run's config and catalog under `.meltano/run/<plugin>/`; two runs at
    once (pytest-xdist, two sessions) would overwrite each other's files there. Each test gets
    its own run folder, logs and system database; the plugin venvs are symlinked in.
    """
    path.mkdir(parents=True, exist_ok=True)
    for kind in ("extractors", "loaders"):
        link = path / kind
        if not link.exists():
            link.symlink_to(ROOT / ".meltano" / kind, target_is_directory=True)
    return {
        "MELTANO_SYS_DIR_ROOT": str(path),
        "MELTANO_DATABASE_URI": f"sqlite:///{path / 'meltano.db'}",
    }


def plugins_fingerprint() -> str:
    """`sha256sum` of the files the plugin venvs are built from, in sha256sum's format."""
    return "".join(
        f"{hashlib.sha256((ROOT / name).read_bytes()).hexdigest()}  {name}\n"
        for name in PLUGIN_INPUTS
    )


def meltano_version() -> str:
    """The exact version pinned by `requires_meltano: ==X.Y.Z` in meltano.yml."""
    text = (ROOT / "meltano.yml").read_text(encoding="utf-8")
    match = re.search(r"^requires_meltano:\s*['\"]?==\s*([0-9][^\s'\"]*)", text, re.MULTILINE)
    if match is None:
        msg = "meltano.yml must pin Meltano with `requires_meltano: ==X.Y.Z`"
        raise RuntimeError(msg)
    return match.group(1)


def _uv() -> str:
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is not on PATH: run `bash scripts/setup` first")
    return uv


def tail(text: str, lines: int = 40) -> str:
    """The end of a process's output, for failure messages."""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Meltano:
    """The pinned Meltano executable bound to the repository's project."""

    executable: Path
    project_root: Path = ROOT
    base_env: dict[str, str] = field(default_factory=dict)

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """Process environment: ours, minus anything that would point Meltano elsewhere."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MELTANO_")}
        env.update(
            {
                "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
                "MELTANO_CLI_LOG_LEVEL": "info",
                "MELTANO_ENVIRONMENT": "dev",
                "NO_COLOR": "1",
            }
        )
        env.update(self.base_env)
        env.update(extra or {})
        return env

    def __call__(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        timeout: float = MELTANO_RUN_TIMEOUT,
        check: bool = True,
        input_text: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `meltano ARGS` in the project; a failure shows the end of its logs."""
        started = time.monotonic()
        proc = subprocess.run(
            [str(self.executable), *args],
            cwd=self.project_root,
            env=self.env(env),
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        elapsed = time.monotonic() - started
        print(f"meltano {' '.join(args)}: exit {proc.returncode} in {elapsed:.1f}s")
        if check and proc.returncode != 0:
            pytest.fail(
                f"meltano {' '.join(args)} exited {proc.returncode}\n"
                f"--- stdout ---\n{tail(proc.stdout)}\n--- stderr ---\n{tail(proc.stderr, 80)}"
            )
        return proc


def install_meltano() -> Path:
    """Install the pinned Meltano with uv's tool mechanism (a no-op when already there)."""
    uv = _uv()
    version = meltano_version()
    subprocess.run(
        [uv, "tool", "install", "--quiet", "--python", "3.11", f"meltano=={version}"],
        check=True,
        timeout=MELTANO_INSTALL_TIMEOUT,
    )
    bin_dir = subprocess.run(
        [uv, "tool", "dir", "--bin"], check=True, capture_output=True, text=True
    ).stdout.strip()
    return Path(bin_dir) / "meltano"


def sandbox_env(config: dict, *, output: Path | None = None) -> dict[str, str]:
    """Meltano's per-setting variables that point both connectors at a running sandbox."""
    env = {
        "TAP_MARKETO_MEMBERS_BASE_URL": config["base_url"],
        "TAP_MARKETO_MEMBERS_CLIENT_ID": config["client_id"],
        "TAP_MARKETO_MEMBERS_CLIENT_SECRET": config["client_secret"],
        "TAP_MARKETO_MEMBERS_MUNCHKIN_ID": config["munchkin_id"],
        "TARGET_MARKETO_INGEST_BASE_URL": config["base_url"],
        "TARGET_MARKETO_INGEST_INGESTION_BASE_URL": config["ingestion_base_url"],
        "TARGET_MARKETO_INGEST_CLIENT_ID": config["client_id"],
        "TARGET_MARKETO_INGEST_CLIENT_SECRET": config["client_secret"],
        "TARGET_MARKETO_INGEST_MUNCHKIN_ID": config["munchkin_id"],
    }
    if output is not None:
        env["TARGET_MARKETO_INGEST_REJECTS_PATH"] = str(output / "rejects.jsonl")
        env["TARGET_JSONL_DESTINATION_PATH"] = str(output / "jsonl")
        env["TARGET_DUCKDB_FILEPATH"] = str(output / "warehouse.duckdb")
        (output / "jsonl").mkdir(parents=True, exist_ok=True)
    return env


def read_jsonl(path: Path) -> list[dict]:
    """Every JSON line of a file (an absent file is an empty list, so counts catch it)."""
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    """Write rows as JSON lines, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return path


# --- PostgreSQL -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Postgres:
    """A reachable PostgreSQL server and the psql client used to check it with SQL."""

    host: str
    port: int
    user: str
    password: str
    database: str
    psql_path: str

    def env(self) -> dict[str, str]:
        """libpq variables for psql."""
        return {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
            "PGDATABASE": self.database,
        }

    def meltano_env(self, prefix: str) -> dict[str, str]:
        """Meltano's per-setting variables for tap-postgres (`TAP_POSTGRES`) or target-postgres."""
        return {
            f"{prefix}_HOST": self.host,
            f"{prefix}_PORT": str(self.port),
            f"{prefix}_USER": self.user,
            f"{prefix}_PASSWORD": self.password,
            f"{prefix}_DATABASE": self.database,
        }

    def loader_env(self, schema: str) -> dict[str, str]:
        """target-postgres's variables for loading into `schema` of this server."""
        return {
            **self.meltano_env("TARGET_POSTGRES"),
            "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": schema,
        }

    def query(self, sql: str) -> list[list[str]]:
        """Rows of a query as lists of text (psql's unaligned output; NULL prints as \\N)."""
        proc = subprocess.run(
            [
                self.psql_path,
                "-X",
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-F",
                "\t",
                "-P",
                "null=\\N",
                "-c",
                sql,
            ],
            env={**os.environ, **self.env()},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0:
            pytest.fail(f"psql failed on {sql!r}: {proc.stderr.strip()}")
        return [line.split("\t") for line in proc.stdout.splitlines()]

    def scalar(self, sql: str) -> str:
        """The single value of a one-row, one-column query."""
        rows = self.query(sql)
        assert len(rows) == 1, f"{sql!r} returned {len(rows)} rows"
        return rows[0][0]
