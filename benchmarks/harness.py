"""Process, pipe and sandbox helpers shared by every benchmark figure.

Connectors run as real processes (the console scripts in the venv, no `uv` in between) so the
peak RSS read from `wait4` is the connector's own and the timing includes what a user pays.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import msgspec
import psutil
import requests
from peak_rss import PeakRss

BIN = Path(sys.executable).parent
TAP = BIN / "tap-marketo-members"
TARGET = BIN / "target-marketo-ingest"

# First RECORD of the bulk stream, whatever the key order of the writer (a SCHEMA line for the
# stream does not match: its next key is "schema", not "record").
_FIRST_MEMBER_RECORD = re.compile(
    rb'"type":\s*"RECORD",\s*"stream":\s*"program_members"|"stream":\s*"program_members",\s*"record"'
)
_CHUNK = 1 << 16


@dataclass
class RunResult:
    """What one connector process cost."""

    cmd: list[str]
    returncode: int
    wall_s: float
    peak_rss_mb: float
    stdout_bytes: int = 0
    first_member_record_s: float | None = None  # from process start
    stdin_consumed_s: float | None = None  # the process began reading stdin, from its start
    last_member_record_s: float | None = None  # last chunk holding one, from process start
    eof_s: float | None = None  # stdout closed, from process start
    cpu_s: float | None = None  # user + system CPU seconds of the whole run
    first_member_record_cpu_s: float | None = None
    last_member_record_cpu_s: float | None = None
    stdin_consumed_cpu_s: float | None = None
    stderr_tail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def stream_phase_s(self) -> float | None:
        """Seconds from the first program_members RECORD on stdout to the last one.

        Start-up, export-job waits, download and the end-of-run teardown are fixed costs
        that do not grow with the records; they are reported beside, not in, the rate.
        """
        if self.first_member_record_s is None or self.last_member_record_s is None:
            return None
        return self.last_member_record_s - self.first_member_record_s

    @property
    def stream_phase_cpu_s(self) -> float | None:
        """CPU seconds the process used between its first and last bulk RECORD."""
        if self.first_member_record_cpu_s is None or self.last_member_record_cpu_s is None:
            return None
        return self.last_member_record_cpu_s - self.first_member_record_cpu_s

    @property
    def input_phase_cpu_s(self) -> float | None:
        """CPU seconds from the first read of stdin to exit."""
        if self.cpu_s is None or self.stdin_consumed_cpu_s is None:
            return None
        return self.cpu_s - self.stdin_consumed_cpu_s

    @property
    def input_phase_s(self) -> float:
        """Seconds from the first read of stdin to exit: the work that grows with input."""
        return self.wall_s - (self.stdin_consumed_s or 0.0)


class ConnectorFailedError(RuntimeError):
    """A connector under measurement exited non-zero: the figure is void, say why."""


def _cpu(proc: psutil.Process | None) -> float | None:
    """CPU seconds (user + system) the process has used so far."""
    if proc is None:
        return None
    try:
        times = proc.cpu_times()
    except psutil.Error:
        return None
    return times.user + times.system


def _pump(
    src: IO[bytes],
    dst: IO[bytes] | None,
    t0: float,
    out: dict[str, Any],
    child: psutil.Process | None = None,
) -> None:
    fd = src.fileno()
    total = 0
    while True:
        chunk = os.read(fd, _CHUNK)
        if not chunk:
            break
        total += len(chunk)
        if _FIRST_MEMBER_RECORD.search(chunk):
            now = time.perf_counter() - t0
            cpu = _cpu(child)
            if "first" not in out:
                out["first"], out["first_cpu"] = now, cpu
            out["last"], out["last_cpu"] = now, cpu
        if dst is not None:
            dst.write(chunk)
    out["eof"] = time.perf_counter() - t0
    out["bytes"] = total


def _feed(
    src: Path, dst: IO[bytes], t0: float, out: dict[str, Any], child: psutil.Process | None
) -> None:
    """Write a file into the child's stdin pipe; note when the child starts draining it.

    The pipe holds 64 KiB: the second 64 KiB write can only complete once the child has read
    the first, so its completion marks the start of input processing (after start-up).
    """
    fd = dst.fileno()
    try:
        with src.open("rb") as f:
            n = 0
            while chunk := f.read(_CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
                n += 1
                if n == 2:
                    out["consumed"] = time.perf_counter() - t0
                    out["consumed_cpu"] = _cpu(child)
    except BrokenPipeError:
        out["broken_pipe"] = True
    finally:
        out.setdefault("consumed", time.perf_counter() - t0)
        dst.close()


def run_connector(
    cmd: list[str],
    *,
    stdin_path: Path | None = None,
    stdout_path: Path | None = None,
    stderr_path: Path,
    timeout_s: float = 900.0,
    env: dict[str, str] | None = None,
) -> RunResult:
    """Run one connector, read its stdout through a pipe and return time and peak RSS.

    stdout goes to `stdout_path` (page cache) or is discarded; the pipe lets us time-stamp the
    first bulk RECORD, so the tap's streaming phase can be separated from start-up and job waits.
    Peak RSS is the child's own high-water mark (VmHWM, see peak_rss.py): `wait4`'s ru_maxrss
    would report at least this benchmark's own RSS.
    """
    dst = open(stdout_path, "wb") if stdout_path else None  # noqa: SIM115
    errf = open(stderr_path, "wb")  # noqa: SIM115
    info: dict[str, Any] = {}
    if env is None:
        # Start-up as a user's install has it: bytecode cached (pip compiles on install), even
        # where the calling shell turned caching off.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE if stdin_path else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=errf,
        env=env,
    )
    peak = PeakRss(proc.pid)
    try:
        child: psutil.Process | None = psutil.Process(proc.pid)
    except psutil.Error:
        child = None
    pump = threading.Thread(target=_pump, args=(proc.stdout, dst, t0, info, child), daemon=True)
    pump.start()
    feeder_info: dict[str, Any] = {}
    feeder = None
    if stdin_path:
        feeder = threading.Thread(
            target=_feed, args=(stdin_path, proc.stdin, t0, feeder_info, child), daemon=True
        )
        feeder.start()
    deadline = t0 + timeout_s
    while True:
        # Ended (a zombie, not reaped yet)? Then its peak is read before wait4 reaps it.
        ended = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if ended is not None:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
            break
        time.sleep(0.01)
    wall = time.perf_counter() - t0
    peak_mb = peak.stop()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    pump.join(timeout=30)
    if feeder is not None:
        feeder.join(timeout=30)
    for f in (dst, errf):
        if f is not None:
            f.close()
    proc.stdout.close()  # type: ignore[union-attr]
    tail = Path(stderr_path).read_bytes()[-4000:].decode("utf-8", "replace")
    return RunResult(
        cmd=[str(c) for c in cmd],
        returncode=proc.returncode,
        wall_s=wall,
        peak_rss_mb=peak_mb,
        stdout_bytes=info.get("bytes", 0),
        first_member_record_s=info.get("first"),
        last_member_record_s=info.get("last"),
        eof_s=info.get("eof"),
        stdin_consumed_s=feeder_info.get("consumed"),
        cpu_s=usage.ru_utime + usage.ru_stime,
        first_member_record_cpu_s=info.get("first_cpu"),
        last_member_record_cpu_s=info.get("last_cpu"),
        stdin_consumed_cpu_s=feeder_info.get("consumed_cpu"),
        stderr_tail=tail,
    )


def check(result: RunResult, what: str) -> RunResult:
    """Turn a failed connector run into one clear error with the end of its log."""
    if result.returncode != 0:
        raise ConnectorFailedError(
            f"{what} exited {result.returncode}; last log lines:\n{result.stderr_tail[-1500:]}"
        )
    return result


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2, default=str))
    return path


class _Envelope(msgspec.Struct):
    type: str
    stream: str | None = None


def split_singer_output(src: Path, dst: Path, stream: str) -> dict[str, int]:
    """Keep the SCHEMA/RECORD/STATE lines of one stream; count messages by type.

    The target gets exactly the tap's lines for the bulk stream: same values, same types.
    """
    decoder = msgspec.json.Decoder(_Envelope)
    counts: dict[str, int] = {}
    with src.open("rb") as fin, dst.open("wb") as fout:
        for line in fin:
            env = decoder.decode(line)
            if env.type == "STATE":
                fout.write(line)
                continue
            if env.stream != stream:
                continue
            counts[env.type] = counts.get(env.type, 0) + 1
            fout.write(line)
    return counts


class SandboxAPI:
    """The connector-facing API of a running sandbox, for the bench's own downloads."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.base_url = config["base_url"].rstrip("/")
        self._config = config
        self._session = requests.Session()
        self._token: str | None = None

    def _auth(self) -> dict[str, str]:
        if self._token is None:
            resp = self._session.post(
                f"{self.base_url}/identity/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": self._config["client_id"],
                    "client_secret": self._config["client_secret"],
                },
                timeout=30,
            )
            resp.raise_for_status()
            self._token = resp.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def download_export(self, export_id: str, dst: Path) -> int:
        """Fetch a completed export file exactly as the tap received it."""
        url = f"{self.base_url}/bulk/v1/program/members/export/{export_id}/file.json"
        with self._session.get(url, headers=self._auth(), stream=True, timeout=300) as resp:
            resp.raise_for_status()
            size = 0
            with dst.open("wb") as f:
                for chunk in resp.iter_content(1 << 20):
                    f.write(chunk)
                    size += len(chunk)
        return size

    def close(self) -> None:
        self._session.close()
