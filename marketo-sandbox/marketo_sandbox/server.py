"""`SandboxServer`: run the sandbox in a subprocess on a free port, for tests and benchmarks."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from typing_extensions import Self

from marketo_sandbox.admin_client import AdminClient
from marketo_sandbox.app import DEFAULT_MUNCHKIN_ID
from marketo_sandbox.assumptions import SEED_ENV, randomised

if TYPE_CHECKING:
    from collections.abc import Callable

TEMPLATE_DIR = Path(tempfile.gettempdir()) / "marketo-sandbox-templates"


def demo_template() -> Path:
    """A demo-seeded db to copy instead of seeding each test's sandbox again.

    Keyed by the seed code and the UTC hour, so its relative timestamps ("the last 60 days")
    stay current; built once per key (atomically, so parallel test processes may race).
    """
    from marketo_sandbox import seed, storage  # noqa: PLC0415 - only when a template is built

    repos = sorted(Path(storage.__file__).with_name("repos").glob("*.py"))
    source = b"".join(p.read_bytes() for p in [Path(seed.__file__), Path(storage.__file__), *repos])
    key = hashlib.sha256(source).hexdigest()[:12]
    hour = time.strftime("%Y%m%d%H", time.gmtime())
    path = TEMPLATE_DIR / f"demo-{key}-{hour}.db"
    if path.exists():
        return path
    TEMPLATE_DIR.mkdir(parents=True, exist_ok=True)
    building = path.with_suffix(f".{os.getpid()}.tmp")
    # core tables only: the server creates the families' tables from their current code
    store = storage.Store(building)
    seed.apply(store, "demo")
    store.db.conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.db.conn().execute("PRAGMA journal_mode = DELETE")
    store.close()
    building.replace(path)
    for old in TEMPLATE_DIR.glob("demo-*.db"):
        if old != path and old.stat().st_mtime < time.time() - 7200:
            old.unlink(missing_ok=True)
    return path


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SandboxError(RuntimeError):
    """The sandbox process did not start (its log tail is in the message)."""


class SandboxServer:
    """A sandbox process (`python -m marketo_sandbox.cli serve`), so tests can kill it.

    `db_path=None` uses a temporary file removed by `stop()`. `restart()` keeps the db and the
    port. Extra API users: `api_users=[(client_id, client_secret), ...]`; faults armed at
    start-up: `faults=[(path_glob, kind, count), ...]`; chaos mode: `chaos="RATE[:SEED]"`.
    """

    def __init__(
        self,
        db_path: str | Path | None = None,
        *,
        seed: str | None = "demo",
        members: int = 0,
        time_scale: float = 1.0,
        strict: bool = False,
        client_id: str = "sandbox-client",
        client_secret: str = "sandbox-secret",  # noqa: S107 - the sandbox's own default
        options: dict[str, Any] | None = None,
        munchkin_id: str = DEFAULT_MUNCHKIN_ID,
        api_users: list[tuple[str, str]] | None = None,
        port: int | None = None,
        start_timeout: float | None = None,
        faults: list[tuple[str, str, int]] | None = None,
        use_template: bool = True,
        assumption_seed: int | None = None,
        chaos: str | None = None,
    ) -> None:
        self._tmpdir = None if db_path else tempfile.mkdtemp(prefix="marketo-sandbox-")
        self.db_path = Path(db_path) if db_path else Path(self._tmpdir) / "sandbox.db"
        self.seed = seed
        self.members = members
        self.time_scale = time_scale
        self.strict = strict
        self.client_id = client_id
        self.client_secret = client_secret
        if assumption_seed is None and os.environ.get(SEED_ENV):
            assumption_seed = int(os.environ[SEED_ENV])
        #: The draw of assumed behaviours (assumptions.py) this server runs with; None: defaults.
        self.assumption_seed = assumption_seed
        drawn = randomised(assumption_seed) if assumption_seed is not None else {}
        self.options = {**drawn, **(options or {})}
        self.munchkin_id = munchkin_id
        self.api_users = api_users or []
        self.port = port or free_port()
        # generating members takes time before the server listens (about 1 s per 50,000 on a
        # busy 2-core machine): wait for it on top of the usual start
        self.start_timeout = start_timeout or 60.0 + members / 20_000
        self.faults = faults or []
        #: Chaos mode "RATE[:SEED]" from the start (chaos.py); None: off.
        self.chaos = chaos
        #: Copy a cached demo db instead of seeding in the server (same data, faster start).
        self.use_template = use_template
        self.log_path = self.db_path.with_suffix(".log")
        self.process: subprocess.Popen | None = None
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.admin = AdminClient(self.base_url)

    @property
    def config(self) -> dict[str, Any]:
        """Connector settings for this sandbox."""
        return {
            "base_url": self.base_url,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "munchkin_id": self.munchkin_id,
            "ingestion_base_url": self.base_url,
        }

    def command(self) -> list[str]:
        """The serve command line."""
        cmd = [
            sys.executable, "-m", "marketo_sandbox.cli", "serve",
            "--host", "127.0.0.1", "--port", str(self.port), "--db", str(self.db_path),
            "--munchkin-id", self.munchkin_id, "--client-id", self.client_id,
            "--client-secret", self.client_secret, "--time-scale", str(self.time_scale),
        ]  # fmt: skip
        if self.seed:
            cmd += ["--seed", self.seed]
        if self.members:
            cmd += ["--members", str(self.members)]
        if self.strict:
            cmd.append("--strict")
        if self.options:
            cmd += ["--options", json.dumps(self.options)]
        for path_glob, kind, count in self.faults:
            cmd += ["--fault", f"{path_glob}:{kind}:{count}"]
        if self.chaos:
            cmd += ["--chaos", self.chaos]
        for cid, secret in self.api_users:
            cmd += ["--api-user", f"{cid}:{secret}"]
        return cmd

    def start(self) -> SandboxServer:
        """Start the process and wait until `/_sandbox/now` answers."""
        if self.process and self.process.poll() is None:
            return self
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        if self.seed == "demo" and not self.db_path.exists() and self.use_template:
            shutil.copyfile(demo_template(), self.db_path)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child writes to it while it runs
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            self.command(), stdout=log, stderr=subprocess.STDOUT, env=env
        )
        log.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SandboxError(f"sandbox exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/_sandbox/now", timeout=2):  # noqa: S310
                    return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        self.stop()
        raise SandboxError(f"sandbox did not answer in {self.start_timeout} s:\n{self.log()}")

    def log(self, tail: int = 4000) -> str:
        """The end of the process's output."""
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def _end(self, sig: int) -> None:
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self.process = None

    def kill(self) -> None:
        """SIGKILL the process (crash tests); the db stays."""
        self._end(signal.SIGKILL)

    def restart(self, down_until: Callable[[float], bool] | None = None) -> SandboxServer:
        """Stop and start again on the same port and db: data, jobs and tokens survive.

        `down_until(timeout)` keeps the server down until it returns (restart tests wait for a
        client call to fail, so the outage is seen however the client's calls are timed).
        """
        self._end(signal.SIGTERM)
        if down_until is not None:
            down_until(60.0)
        return self.start()

    def stop(self) -> None:
        """Terminate the process and remove a temporary db."""
        self._end(signal.SIGTERM)
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
