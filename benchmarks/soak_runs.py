"""The processes of the chaos soak, driven as an orchestrator drives them.

Each connector run is a process whose last STATE the orchestrator saves as it arrives; a run
killed with SIGKILL is rerun from that STATE. Peak RSS is the kernel's high-water mark of the
process's own memory (VmHWM, sampled while it runs; see peak_rss.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from peak_rss import PeakRss

REPO = Path(__file__).resolve().parent.parent
TAP = REPO / ".venv" / "bin" / "tap-marketo-members"
TARGET = REPO / ".venv" / "bin" / "target-marketo-ingest"
TARGET_POSTGRES = (
    REPO / ".meltano" / "loaders" / "target-postgres" / "venv" / "bin" / "target-postgres"
)
#: Reruns allowed per phase beyond the planned kills (a run that fails on its own is rerun too,
#: as an orchestrator retries a failed job; each one is counted in the summary).
MAX_FAILED_RUNS = 3
#: Seconds before a killed or failed run is rerun: Marketo's 100-calls window. A run started at
#: once shares that window with the dead run's calls, which its own limiter cannot know about
#: (the soak met 606 that way); an orchestrator's retry delay is longer than this.
RERUN_DELAY = 20.0


@dataclass
class Attempt:
    """One process run: how it ended and what it cost."""

    killed: bool
    code: int
    seconds: float
    peak_rss_mb: float
    records: int


@dataclass
class Phase:
    """Every run of one connector until it finished, and the STATE saved last."""

    attempts: list[Attempt] = field(default_factory=list)
    state: dict | None = None
    seconds: float = 0.0

    @property
    def kills(self) -> int:
        return sum(a.killed for a in self.attempts)

    @property
    def failed(self) -> int:
        return sum(not a.killed and a.code != 0 for a in self.attempts)

    @property
    def peak_rss_mb(self) -> float:
        return max((a.peak_rss_mb for a in self.attempts), default=0.0)


def _wait(proc: subprocess.Popen, peak: PeakRss | None = None) -> tuple[int, float]:
    """Exit code and peak RSS (MB, the child's own VmHWM: see peak_rss.py) of a child.

    The child is reaped here; it stays a zombie until then, so its /proc entry is readable
    after it exited or was killed.
    """
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # ended, not yet reaped
    rss = peak.stop() if peak is not None else 0.0
    _, status, _usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, rss


def _save_states(stream: IO[bytes], phase: Phase, path: Path) -> None:
    """Keep each STATE line as it comes, as Meltano does, in `path` and in `phase.state`."""
    for raw in stream:
        line = raw.strip()
        if not line.startswith(b"{"):
            continue
        try:
            message = json.loads(line)
        except ValueError:
            continue
        value = message.get("value") if message.get("type") == "STATE" else message
        if message.get("type") not in (None, "STATE") or not isinstance(value, dict):
            continue
        phase.state = value
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(value))
        tmp.replace(path)


def run_tap_to_postgres(
    work: Path, tap_config: dict, pg_config: dict, kill_after: list[int], remaining: Any
) -> Phase:
    """The tap piped into target-postgres; the tap killed after `kill_after[i]` records of run i.

    `remaining()` is how many members are not in the warehouse yet: a kill point is a share of
    it, so each kill lands mid-run whatever the state already covers.
    """
    work.mkdir(parents=True, exist_ok=True)
    phase = Phase()
    state_path = work / "tap-state.json"
    (work / "tap.json").write_text(json.dumps(tap_config))
    (work / "target-postgres.json").write_text(json.dumps(pg_config))
    started = time.perf_counter()
    while True:
        run = len(phase.attempts)
        if run:
            time.sleep(RERUN_DELAY)
        limit = None
        if phase.kills < len(kill_after):  # a run that failed on its own uses no kill point
            limit = max(1, int(kill_after[phase.kills] * max(remaining(), 1)))
        cmd = [str(TAP), "--config", str(work / "tap.json")]
        if state_path.exists():
            cmd += ["--state", str(state_path)]
        t0 = time.perf_counter()
        with (
            (work / f"tap-{run}.log").open("wb") as tap_log,
            (work / f"target-postgres-{run}.log").open("wb") as pg_log,
        ):
            tap = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=tap_log)
            tap_peak = PeakRss(tap.pid)
            loader = subprocess.Popen(
                [str(TARGET_POSTGRES), "--config", str(work / "target-postgres.json")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=pg_log,
            )
            saver = threading.Thread(
                target=_save_states, args=(loader.stdout, phase, state_path), daemon=True
            )
            saver.start()
            records, killed = 0, False
            assert tap.stdout is not None
            assert loader.stdin is not None
            for line in tap.stdout:
                if line.startswith((b'{"type":"RECORD"', b'{"type": "RECORD"')):
                    records += 1
                loader.stdin.write(line)
                if limit is not None and records >= limit:
                    tap.send_signal(signal.SIGKILL)
                    killed = True
                    break
            loader.stdin.close()
            code, rss = _wait(tap, tap_peak)
            pg_code, _ = _wait(loader)
            saver.join(timeout=60)
        phase.attempts.append(Attempt(killed, code, time.perf_counter() - t0, rss, records))
        if pg_code != 0:
            raise RuntimeError(
                f"target-postgres exited {pg_code}; see {work}/target-postgres-{run}.log"
            )
        if not killed and code == 0:
            break
        if phase.failed > MAX_FAILED_RUNS:
            raise RuntimeError(f"the tap failed {phase.failed} times; see {work}/tap-{run}.log")
    phase.seconds = time.perf_counter() - started
    return phase


def run_target(
    work: Path, config: dict, messages: Path, schema_lines: int, kill_after: list[float]
) -> Phase:
    """The target fed `messages` from the line its last STATE names; killed at `kill_after` shares.

    `messages`: SCHEMA lines first (`schema_lines` of them, sent to every run, as a tap sends
    its schemas again), then RECORD and STATE lines; a STATE value `{"soak": {"next": i}}` means
    the lines before i are done, so a rerun starts at line i.
    """
    work.mkdir(parents=True, exist_ok=True)
    phase = Phase()
    state_path = work / "target-state.json"
    (work / "target.json").write_text(json.dumps(config))
    lines = messages.read_bytes().splitlines(keepends=True)
    schemas, body = lines[:schema_lines], lines[schema_lines:]
    started = time.perf_counter()
    while True:
        run = len(phase.attempts)
        if run:
            time.sleep(RERUN_DELAY)
        start = int(((phase.state or {}).get("soak") or {}).get("next", 0))
        todo = body[start:]
        todo_records = sum(1 for line in todo if line.startswith(b'{"type":"RECORD"'))
        limit = None
        if phase.kills < len(kill_after):
            limit = max(1, int(kill_after[phase.kills] * todo_records))
        t0 = time.perf_counter()
        with (work / f"target-{run}.log").open("wb") as log:
            proc = subprocess.Popen(
                [str(TARGET), "--config", str(work / "target.json")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
            )
            peak = PeakRss(proc.pid)
            saver = threading.Thread(
                target=_save_states, args=(proc.stdout, phase, state_path), daemon=True
            )
            saver.start()
            records, killed = 0, False
            assert proc.stdin is not None
            try:
                proc.stdin.writelines(schemas)
                for line in todo:
                    proc.stdin.write(line)
                    if line.startswith(b'{"type":"RECORD"'):
                        records += 1
                        if limit is not None and records >= limit:
                            proc.stdin.flush()
                            time.sleep(0.5)  # mid-work, not mid-read
                            proc.send_signal(signal.SIGKILL)
                            killed = True
                            break
                proc.stdin.close()
            except BrokenPipeError:
                pass
            code, rss = _wait(proc, peak)
            saver.join(timeout=60)
        phase.attempts.append(Attempt(killed, code, time.perf_counter() - t0, rss, records))
        if not killed and code == 0:
            break
        if phase.failed > MAX_FAILED_RUNS:
            raise RuntimeError(
                f"the target failed {phase.failed} times; see {work}/target-{run}.log"
            )
    phase.seconds = time.perf_counter() - started
    return phase
