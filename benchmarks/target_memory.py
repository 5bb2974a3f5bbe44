"""Peak RSS of the target writing through all five people routes, at growing input sizes.

The chaos soak's target phase (benchmarks/soak.py) in small: M leads and M program members
in chunks of 500 per stream (`leads_bulk`, `persons_ingest`, `pm_bulk`, `pm_ingest` with
verify, `pm_rest`), one record in 97 bad, a STATE every 2,000 records, against a strict
sandbox (optionally in chaos mode). The input comes straight from the sandbox's database
(no tap, no PostgreSQL), and the target runs once per size, not killed. Prints one line per
size and the ratio of the peaks: memory should not grow with the input.

    uv run --frozen python benchmarks/target_memory.py --records 10000 25000 --chaos 0.01
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET = REPO / ".venv" / "bin" / "target-marketo-ingest"
sys.path.insert(0, str(REPO / "benchmarks"))

from marketo_sandbox.seed import CHANNELS, PROGRAMS  # noqa: E402
from marketo_sandbox.server import SandboxServer  # noqa: E402
from soak import BAD_EVERY, CHUNK, SCHEMAS, STATE_EVERY, STREAMS, TIME_SCALE, top_statuses  # noqa: E402


def build_input(db: Path, path: Path, m: int) -> int:
    """The soak's input shape from the sandbox's own rows; returns the record count."""
    top = top_statuses()
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    leads = conn.execute("SELECT email, id FROM leads ORDER BY id LIMIT ?", (m,)).fetchall()
    steps = {
        pid: {s["name"]: s["step"] for s in CHANNELS[channel][1]} for pid, _, channel, _ in PROGRAMS
    }
    members = []
    query = (
        "SELECT m.program_id, m.lead_id, l.email, m.status_name FROM program_members m "
        "JOIN leads l ON l.id = m.lead_id ORDER BY (m.lead_id * 7919 + m.program_id) % 1000003"
    )
    for pid, lead, email, status in conn.execute(query):
        if pid in top and steps.get(pid, {}).get(status, 0) < top[pid][1]:
            members.append((pid, lead, email))
            if len(members) >= m:
                break
    conn.close()
    rows: dict[str, list[dict]] = {name: [] for name in STREAMS}
    for i, (email, _lead) in enumerate(leads):
        stream = "leads_bulk" if i % 2 == 0 else "persons_ingest"
        bad = i % BAD_EVERY == BAD_EVERY - 1
        record = {"email": f"mem-bad-{i}" if bad else email, "firstName": "Mem"}
        record["lastName"] = f"Mem-{i}"
        rows[stream].append(record)
    for i, (program, lead, email) in enumerate(members):
        stream = ("pm_bulk", "pm_ingest", "pm_rest")[i % 3]
        status = "Backstage Pass" if i % BAD_EVERY == BAD_EVERY - 1 else top[program][0]
        record = {"programId": program, "statusName": status}
        record.update({"email": email} if stream == "pm_bulk" else {"leadId": lead})
        rows[stream].append(record)
    out = [
        json.dumps({"type": "SCHEMA", "stream": n, "schema": {"type": "object", "properties": p},
                    "key_properties": k})
        for n, (p, k) in SCHEMAS.items()
    ]  # fmt: skip
    cursors = dict.fromkeys(STREAMS, 0)
    since, count = 0, 0
    while any(cursors[s] < len(rows[s]) for s in STREAMS):
        for stream in STREAMS:
            chunk = rows[stream][cursors[stream] : cursors[stream] + CHUNK]
            cursors[stream] += len(chunk)
            for record in chunk:
                out.append(json.dumps({"type": "RECORD", "stream": stream, "record": record}))
                since += 1
                count += 1
                if since >= STATE_EVERY:
                    out.append(json.dumps({"type": "STATE", "value": {"n": count}}))
                    since = 0
    out.append(json.dumps({"type": "STATE", "value": {"n": count}}))
    path.write_text("\n".join(out) + "\n")
    return count


# The target is started by this small launcher, never forked from the benchmark itself: Linux
# keeps the high-water RSS of the memory a process had before exec (`ru_maxrss` of a child
# forked from a 300 MB parent that execs /bin/true is 300 MB). The launcher forks the target
# from its own few MB, writes the target's `wait4` peak (KB) to fd argv[1] and exits with
# the target's code.
LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
os.write(int(sys.argv[1]), str(usage.ru_maxrss).encode())
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _child(launcher: int) -> int:
    """The launcher's one child (the target), once it has been forked."""
    children = Path(f"/proc/{launcher}/task/{launcher}/children")
    while not children.read_text().split():
        time.sleep(0.05)
    return int(children.read_text().split()[0])


def _sample_rss(launcher: int, out: Path, started: float) -> None:
    """The target's VmRSS and VmHWM every half second, to `out` (seconds, MB, MB)."""
    try:
        pid = _child(launcher)
    except OSError:
        return  # the launcher ended already
    with out.open("w") as fh:
        while True:
            try:
                lines = Path(f"/proc/{pid}/status").read_text().splitlines()
            except OSError:
                return
            kb = {ln.split(":")[0]: ln.split()[1] for ln in lines if ln.startswith("Vm")}
            if "VmRSS" not in kb:
                return
            now = time.perf_counter() - started
            rss, hwm = int(kb["VmRSS"]) / 1024, int(kb["VmHWM"]) / 1024
            fh.write(f"{now:.1f}\t{rss:.1f}\t{hwm:.1f}\n")
            fh.flush()
            time.sleep(0.5)


def run(m: int, args: argparse.Namespace, work: Path) -> dict:
    """One sandbox, one input of M leads + M members, one target run; its peak RSS."""
    work.mkdir(parents=True, exist_ok=True)
    sb = SandboxServer(
        work / "sandbox.db",
        seed=None,
        members=4 * m,  # each generated lead is in all 4 programs: M leads, enough members
        time_scale=TIME_SCALE,
        strict=True,
        chaos=f"{args.chaos}:{args.seed}" if args.chaos else None,
        options={"ingestion_apply_delay_seconds": 5},
    )
    try:
        sb.start()
        messages = work / "input.jsonl"
        records = build_input(sb.db_path, messages, m)
        config = {
            **sb.config,
            "streams": STREAMS,
            "rejects_path": str(work / "rejects.jsonl"),
            "poll_interval_seconds": 60.0 / TIME_SCALE,
            "request_timeout_seconds": 30,
            "verify_timeout_seconds": 30,
            **({"dry_run": True} if args.dry_run else {}),
        }
        (work / "target.json").write_text(json.dumps(config))
        cmd = [str(TARGET), "--config", str(work / "target.json")]
        if args.trace:
            cmd = [sys.executable, str(REPO / "benchmarks" / "trace_peak.py"), str(work), *cmd[1:]]
        started = time.perf_counter()
        read_peak, write_peak = os.pipe()
        with messages.open("rb") as stdin, (work / "target.log").open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-c", LAUNCHER, str(write_peak), *cmd],
                stdin=stdin,
                stdout=subprocess.DEVNULL,
                stderr=log,
                pass_fds=(write_peak,),
            )
            os.close(write_peak)
            sampler = threading.Thread(
                target=_sample_rss, args=(proc.pid, work / "rss.tsv", started), daemon=True
            )
            sampler.start()
            code = proc.wait()
        with os.fdopen(read_peak, "rb") as fh:
            peak_kb = int(fh.read() or 0)
        return {
            "records": records,
            "code": code,
            "seconds": round(time.perf_counter() - started, 1),
            "peak_rss_mb": round(peak_kb / 1024, 1),
        }
    finally:
        sb.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, nargs="+", default=[10_000, 25_000])
    parser.add_argument("--chaos", type=float, default=0.0, help="sandbox chaos rate (0.01 = 1%%)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--trace", action="store_true", help="tracemalloc at the peak")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="target-memory-"))
    results = []
    for m in args.records:
        result = run(m, args, work / str(m))
        results.append(result)
        print(
            f"M={m:,}x2 records={result['records']:,} exit={result['code']} "
            f"{result['seconds']} s peak RSS {result['peak_rss_mb']} MB ({work / str(m)})",
            flush=True,
        )
    if len(results) > 1:
        first, last = results[0], results[-1]
        print(
            f"peak RSS ratio {last['peak_rss_mb'] / first['peak_rss_mb']:.2f} for "
            f"{last['records'] / first['records']:.1f}x the records",
            flush=True,
        )
    return 0 if all(r["code"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
