"""Fixtures for the end-to-end tests: Meltano with every plugin, PostgreSQL, process helpers.

Meltano is installed isolated from the workspace (`uv tool install`, version pinned in
meltano.yml) and its plugins once per session into the project's `.meltano/`, which later
sessions reuse. Each test gets its own Meltano system database, so state never leaks between
tests and parallel workers never share a bookmark.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .support import (
    MELTANO_INSTALL_TIMEOUT,
    PLUGIN_VENVS,
    PLUGINS_STAMP,
    ROOT,
    Meltano,
    Postgres,
    install_meltano,
    isolated_sys_dir,
    plugins_fingerprint,
    tail,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

E2E_TIMEOUT = 900


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder is an e2e test; a missing marker would hide it from `-m e2e`."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)
            # The first e2e test's setup installs Meltano and its plugins on a clean machine.
            item.add_marker(pytest.mark.timeout(E2E_TIMEOUT))


@pytest.fixture(scope="session")
def meltano(tmp_path_factory: pytest.TempPathFactory) -> Meltano:
    """Meltano with every plugin of meltano.yml installed, once per session.

    A file lock keeps parallel workers from installing into `.meltano/` at the same time.
    """
    (ROOT / ".meltano").mkdir(exist_ok=True)
    lock_path = ROOT / ".meltano" / "e2e-install.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        melt = Meltano(install_meltano())
        stamp = ROOT / PLUGINS_STAMP
        fingerprint = plugins_fingerprint()
        venvs = [
            ROOT / ".meltano" / f"{kind}s" / name / "venv" / "bin" / "python"
            for kind, name in PLUGIN_VENVS
        ]
        if (
            not all(v.exists() for v in venvs)
            or not stamp.exists()
            or stamp.read_text(encoding="utf-8") != fingerprint
        ):
            started = time.monotonic()
            melt("install", timeout=MELTANO_INSTALL_TIMEOUT)
            stamp.write_text(fingerprint, encoding="utf-8")
            print(f"meltano install: {time.monotonic() - started:.1f}s")
    melt.base_env.update(isolated_sys_dir(tmp_path_factory.mktemp("meltano-sys")))
    return melt


@pytest.fixture
def meltano_state(tmp_path: Path, meltano: Meltano) -> dict[str, str]:
    """A `.meltano/` run folder and system database of this test's own (bookmarks survive
    between its runs, nothing is shared with tests running at the same time)."""
    return isolated_sys_dir(tmp_path / "meltano-sys")


def _pg_params() -> dict:
    return {
        "host": os.environ.get("E2E_PG_HOST", "127.0.0.1"),
        "port": int(os.environ.get("E2E_PG_PORT", "5432")),
        "user": os.environ.get("E2E_PG_USER", "marketo"),
        "password": os.environ.get("E2E_PG_PASSWORD", "marketo"),
        "database": os.environ.get("E2E_PG_DATABASE", "marketo_e2e"),
    }


def _pg_reachable(psql: str | None, params: dict) -> str | None:
    """None when we can log in, else why not."""
    if psql is None:
        return "the psql client is not installed"
    env = {
        **os.environ,
        "PGHOST": params["host"],
        "PGPORT": str(params["port"]),
        "PGUSER": params["user"],
        "PGPASSWORD": params["password"],
        "PGDATABASE": params["database"],
        "PGCONNECT_TIMEOUT": "5",
    }
    proc = subprocess.run(
        [psql, "-X", "-At", "-c", "SELECT 1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return None if proc.returncode == 0 else (proc.stderr.strip() or "psql could not connect")


@pytest.fixture(scope="session")
def postgres() -> Postgres:
    """A PostgreSQL server on localhost, started by scripts/services when we may.

    CI runs scripts/services before the tests; when the server is not up yet and we are root
    with apt-get (a fresh CI or dev machine), the fixture runs it itself. Anywhere else the
    tests skip and say why.
    """
    params = _pg_params()
    reason = _pg_reachable(shutil.which("psql"), params)
    if reason is not None and os.geteuid() == 0 and shutil.which("apt-get"):
        proc = subprocess.run(
            ["bash", str(ROOT / "scripts" / "services")],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        print(proc.stdout, proc.stderr)
        reason = _pg_reachable(shutil.which("psql"), params)
        if reason is not None:
            reason = f"scripts/services could not start it: {tail(proc.stderr or proc.stdout, 5)}"
    if reason is not None:
        pytest.skip(
            f"PostgreSQL is not reachable at {params['host']}:{params['port']} as "
            f"{params['user']}/{params['database']} ({reason}); run `sudo bash scripts/services`"
        )
    psql = shutil.which("psql")
    assert psql is not None
    return Postgres(psql_path=psql, **params)


@pytest.fixture
def pg_schema(postgres: Postgres) -> Iterator[tuple[Postgres, str]]:
    """The server and a schema of this test's own, dropped afterwards."""
    name = f"e2e_{uuid.uuid4().hex[:10]}"
    yield postgres, name
    postgres.query(f"DROP SCHEMA IF EXISTS {name} CASCADE")
