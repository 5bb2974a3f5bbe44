"""Chaos soak (issue 19): the whole round trip under random faults and SIGKILLs, proved exact.

1. N program members out of the sandbox through the tap into PostgreSQL (the tap piped into
   MeltanoLabs target-postgres), the tap killed with SIGKILL at K random points and rerun from
   the last STATE target-postgres emitted.
2. M leads and M program members read back from PostgreSQL and written through every write
   method of the target (bulk leads, Data Ingestion persons; bulk, Data Ingestion and REST
   program members), a few deliberately bad; the target killed at K random points and rerun
   from its last STATE, with the input from the line that STATE names.
The sandbox runs in chaos mode (RATE, seeded) with Marketo's real REST limits (`--strict`).
The same run without chaos (same data, same kill points) gives the wall-time baseline.
Prints ONE summary line; `--json` writes every number. Exit 0 only when every proof holds.

    benchmarks/soak                                   # full: 1,000,000 / 200,000, 5%, K=3
    benchmarks/soak --members 100000 --records 20000  # medium
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from marketo_sandbox.seed import CHANNELS, PROGRAMS
from marketo_sandbox.server import SandboxServer
from soak_proofs import psql_rows, warehouse_equals_marketo, write_outcomes
from soak_runs import REPO, run_tap_to_postgres, run_target

PG = {
    "host": os.environ.get("E2E_PG_HOST", "127.0.0.1"),
    "port": int(os.environ.get("E2E_PG_PORT", "5432")),
    "user": os.environ.get("E2E_PG_USER", "marketo"),
    "password": os.environ.get("E2E_PG_PASSWORD", "marketo"),
    "database": os.environ.get("E2E_PG_DATABASE", "marketo_e2e"),
}
#: Sandbox seconds per second: export and import jobs take minutes of sandbox time.
TIME_SCALE = 120.0
#: The target's streams: one per write method (routing.METHODS, the ones that write people).
STREAMS = {
    "leads_bulk": {"method": "bulk_leads", "lookup_field": "email"},
    "persons_ingest": {"method": "ingest_persons", "dedupe_fields": ["email"]},
    "pm_bulk": {"method": "bulk_program_members"},
    "pm_ingest": {"method": "ingest_program_members"},
    "pm_rest": {"method": "rest_program_members"},
}
_S = {"type": ["string", "null"]}
_I = {"type": ["integer", "null"]}
SCHEMAS = {
    "leads_bulk": ({"email": _S, "firstName": _S, "lastName": _S}, ["email"]),
    "persons_ingest": ({"email": _S, "firstName": _S, "lastName": _S}, ["email"]),
    "pm_bulk": ({"email": _S, "programId": _I, "statusName": _S}, ["email", "programId"]),
    "pm_ingest": ({"leadId": _I, "programId": _I, "statusName": _S}, ["leadId", "programId"]),
    "pm_rest": ({"leadId": _I, "programId": _I, "statusName": _S}, ["leadId", "programId"]),
}
BAD_EVERY = 97  # one record in 97 is bad on purpose: rejected, with its reason
STATE_EVERY = 2000  # records between the input's STATE messages
CHUNK = 500  # records of one stream in a row


def top_statuses() -> dict[int, tuple[str, int]]:
    """Each program's last (highest-step) status: a write there always moves a member forward."""
    out = {}
    for pid, _, channel, _ in PROGRAMS:
        statuses = CHANNELS[channel][1]
        step = max(s["step"] for s in statuses)
        out[pid] = ([s["name"] for s in statuses if s["step"] == step][-1], step)
    return out


def _steps_sql() -> str:
    cases = []
    for pid, _, channel, _ in PROGRAMS:
        for s in CHANNELS[channel][1]:
            name = s["name"].replace("'", "''")
            cases.append(f'WHEN "programId" = {pid} AND "statusName" = \'{name}\' THEN {s["step"]}')
    return "CASE " + " ".join(cases) + " ELSE 0 END"


def build_input(path: Path, schema: str, m: int, seed: int, tag: str) -> tuple[dict, dict, int]:
    """The target's input, read from PostgreSQL: M leads and M members, in chunks per stream.

    Returns (expected {key: (stream, value)}, email -> leadId, schema line count).
    """
    top = top_statuses()
    order = f"md5(concat('{seed}', \"programId\", '-', \"leadId\"))"
    leads = [
        line.split("\t")
        for line in psql_rows(
            PG,
            f'SELECT DISTINCT ON (email) email, "leadId" FROM {schema}.program_members '
            f"ORDER BY email LIMIT {m}",
        )
    ]
    below = " OR ".join(
        f'("programId" = {pid} AND ({_steps_sql()}) < {step})' for pid, (_, step) in top.items()
    )
    members = [
        line.split("\t")
        for line in psql_rows(
            PG,
            f'SELECT "programId", "leadId", email FROM {schema}.program_members '
            f"WHERE {below} ORDER BY {order} LIMIT {m}",
        )
    ]
    expected: dict[tuple, tuple[str, str]] = {}
    email_to_lead = {email.lower(): int(lead) for email, lead in leads}
    rows: dict[str, list[dict]] = {name: [] for name in STREAMS}
    for i, (good, _lead) in enumerate(leads):
        stream = "leads_bulk" if i % 2 == 0 else "persons_ingest"
        last = f"Soak-{tag}-{i}"
        # one in BAD_EVERY without @: refused (a reject with its reason), never created
        email = f"soak-bad-{i}" if i % BAD_EVERY == BAD_EVERY - 1 else good
        rows[stream].append({"email": email, "firstName": "Soak", "lastName": last})
        expected[("lead", email.lower())] = (stream, last)
    for i, (program, lead, email) in enumerate(members):
        stream = ("pm_bulk", "pm_ingest", "pm_rest")[i % 3]
        status = top[int(program)][0]
        if i % BAD_EVERY == BAD_EVERY - 1:
            status = "Backstage Pass"  # not a status of the program: rejected
        record = {"programId": int(program), "statusName": status}
        record.update({"email": email} if stream == "pm_bulk" else {"leadId": int(lead)})
        email_to_lead[email.lower()] = int(lead)
        rows[stream].append(record)
        expected[("member", int(program), int(lead))] = (stream, status)
    lines = [
        json.dumps(
            {
                "type": "SCHEMA",
                "stream": name,
                "schema": {"type": "object", "properties": props},
                "key_properties": keys,
            }
        )
        for name, (props, keys) in SCHEMAS.items()
    ]
    schema_lines = len(lines)
    body: list[str] = []
    cursors = dict.fromkeys(STREAMS, 0)
    since_state = 0
    while any(cursors[s] < len(rows[s]) for s in STREAMS):
        for stream in STREAMS:
            chunk = rows[stream][cursors[stream] : cursors[stream] + CHUNK]
            cursors[stream] += len(chunk)
            for record in chunk:
                body.append(
                    json.dumps(
                        {"type": "RECORD", "stream": stream, "record": record},
                        separators=(",", ":"),
                    )
                )
                since_state += 1
                if since_state >= STATE_EVERY:
                    body.append(
                        json.dumps({"type": "STATE", "value": {"soak": {"next": len(body) + 1}}})
                    )
                    since_state = 0
    body.append(json.dumps({"type": "STATE", "value": {"soak": {"next": len(body) + 1}}}))
    path.write_text("\n".join(lines + body) + "\n")
    return expected, email_to_lead, schema_lines


def run_once(args: argparse.Namespace, work: Path, chaos: bool) -> dict[str, Any]:
    """One soak (with or without chaos) in `work`; every proof and number."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rng = random.Random(args.seed)
    tap_kills = [rng.uniform(0.1, 0.9) for _ in range(args.kills)]
    target_kills = [rng.uniform(0.1, 0.9) for _ in range(args.kills)]
    schema = f"soak_{'chaos' if chaos else 'calm'}_{os.getpid()}"
    list(psql_rows(PG, f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    sb = SandboxServer(
        work / "sandbox.db",
        seed=None,
        members=args.members,
        time_scale=TIME_SCALE,
        strict=True,
        chaos=f"{args.rate}:{args.seed}" if chaos else None,
        options={"ingestion_apply_delay_seconds": 5},
    )
    try:
        sb.start()
        started = time.perf_counter()
        now = dt.datetime.now(tz=dt.timezone.utc)
        tap_config = {
            **sb.config,
            "start_date": (now - dt.timedelta(days=35)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "window_days": 7,
            "poll_interval_seconds": 60.0 / TIME_SCALE,
            "rest_fallback": "never",
            "request_timeout_seconds": 30,
        }
        pg_config = {**PG, "use_copy": True, "default_target_schema": schema}

        def remaining() -> int:
            """Members not in the warehouse yet."""
            table = f"'{schema}.program_members'"
            sql = f"SELECT CASE WHEN to_regclass({table}) IS NULL THEN 0 ELSE 1 END"
            if next(psql_rows(PG, sql)) == "0":
                return args.members
            count = next(psql_rows(PG, f"SELECT count(*) FROM {schema}.program_members"))
            return args.members - int(count)

        tap = run_tap_to_postgres(work / "tap", tap_config, pg_config, tap_kills, remaining)
        exports = sb.admin.dump("export_jobs")
        warehouse = warehouse_equals_marketo(PG, schema, sb.db_path)
        messages = work / "target-input.jsonl"
        expected, email_to_lead, schema_lines = build_input(
            messages, schema, args.records, args.seed, "c" if chaos else "b"
        )
        target_config = {
            **sb.config,
            "streams": STREAMS,
            "rejects_path": str(work / "rejects.jsonl"),
            "poll_interval_seconds": 60.0 / TIME_SCALE,
            "request_timeout_seconds": 30,
            # Read-backs of accepted Data Ingestion records: the sandbox applies within
            # 120 / TIME_SCALE s, so 30 s leaves room for chaos and a busy machine.
            "verify_timeout_seconds": 30,
            # Import files cut every 2 MB (not 10): STATE then advances every few thousand
            # records, so a killed target run has saved progress for its rerun to start from.
            "max_import_file_mb": 2,
        }
        target = run_target(work / "target", target_config, messages, schema_lines, target_kills)
        wall = time.perf_counter() - started
        failures = sb.admin.wait_ingestion(timeout=600)
        writes = write_outcomes(
            expected, work / "rejects.jsonl", sb.db_path, failures, email_to_lead
        )
        limits = sb.admin.limits()
        faults = sb.admin.chaos()
    finally:
        sb.stop()
        if not args.keep:
            list(psql_rows(PG, f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    statuses: dict[str, int] = {}
    for job in exports:
        statuses[job["status"]] = statuses.get(job["status"], 0) + 1
    return {
        "chaos": chaos,
        "wall_s": round(wall, 1),
        "tap": {
            "kills": tap.kills,
            "failed_runs": tap.failed,
            "runs": len(tap.attempts),
            "seconds": round(tap.seconds, 1),
            "peak_rss_mb": round(tap.peak_rss_mb, 1),
        },
        "target": {
            "kills": target.kills,
            "failed_runs": target.failed,
            "runs": len(target.attempts),
            "seconds": round(target.seconds, 1),
            "peak_rss_mb": round(target.peak_rss_mb, 1),
        },
        "warehouse": warehouse,
        "writes": writes,
        "exports": statuses,
        "limits": limits,
        "faults": faults,
    }


def verdict(run: dict[str, Any], members: int) -> list[str]:
    """The proofs that failed (empty: all hold)."""
    bad = []
    w = run["warehouse"]
    if (w["rows"], w["missing"], w["extra"], w["duplicate"], w["different"]) != (
        members,
        0,
        0,
        0,
        0,
    ):
        bad.append(f"warehouse != Marketo {w}")
    if not run["writes"]["rejected_equals_not_in_marketo"] or run["writes"]["unknown_rejects"]:
        bad.append(f"writes: {run['writes']}")
    if any(run["exports"].get(s) for s in ("Created", "Queued", "Processing")):
        bad.append(f"export jobs left running: {run['exports']}")
    if (
        run["limits"]["refused"]
        or run["limits"]["peakPer20s"] > 100
        or run["limits"]["peakInFlight"] > 10
    ):
        bad.append(f"REST limits exceeded: {run['limits']}")
    return bad


def summary_line(args: argparse.Namespace, run: dict[str, Any], calm: dict[str, Any] | None) -> str:
    """ONE line: every proof and number of a chaos run."""
    w, wr, lim, f = run["warehouse"], run["writes"], run["limits"], run["faults"]
    bad = verdict(run, args.members)
    exports = ", ".join(f"{n} {s}" for s, n in sorted(run["exports"].items()))
    over = (
        f" vs {calm['wall_s']:.0f} s without chaos ({run['wall_s'] / calm['wall_s'] - 1:+.0%})"
        if calm
        else ""
    )
    kinds = " ".join(f"{k}={n}" for k, n in f["counts"].items())
    tap, target = run["tap"], run["target"]
    parts = [
        (
            f"SOAK {'PASS' if not bad else 'FAIL'} N={args.members:,} M={args.records:,}x2 "
            f"chaos={args.rate:.0%} seed={args.seed}"
        ),
        (
            f"warehouse {w['rows']:,}/{args.members:,} rows = Marketo (missing {w['missing']}, "
            f"duplicate {w['duplicate']}, extra {w['extra']}, "
            f"fields differing {w['different']} of {w['fields']})"
        ),
        (
            f"writes {wr['written']:,}: {wr['in_marketo']:,} in Marketo "
            f"+ {wr['rejected']:,} rejected "
            f"({wr['replayed_rejects']} replayed reject lines deduped; {wr['not_applied']} "
            f"not_applied, {wr['post202_objects']} objects failed after 202), lost {wr['lost']}, "
            f"rejected==not-in-Marketo {wr['rejected_equals_not_in_marketo']}"
        ),
        f"export jobs: {exports}",
        (
            f"REST peak {lim['peakPer20s']}/20 s, {lim['peakInFlight']} concurrent, "
            f"refused {lim['refused'] or 0}"
        ),
        f"peak RSS tap {tap['peak_rss_mb']:.0f} MB, target {target['peak_rss_mb']:.0f} MB",
        (
            f"SIGKILLs tap {tap['kills']}, target {target['kills']}; "
            f"failed runs rerun {tap['failed_runs'] + target['failed_runs']}"
        ),
        f"wall {run['wall_s']:.0f} s{over}",
        f"faults {f['injected']} of {f['calls']} calls: {kinds}",
    ]
    return " | ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/soak", description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=1_000_000, help="N program members exported")
    parser.add_argument(
        "--records", type=int, default=200_000, help="M leads and M members written"
    )
    parser.add_argument("--rate", type=float, default=0.05, help="chaos rate (0.05 = 5%%)")
    parser.add_argument(
        "--kills", type=int, default=3, help="SIGKILLs of the tap and of the target"
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="chaos and kill-point seed (default: random)"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the run without chaos")
    parser.add_argument(
        "--work", type=Path, default=None, help="scratch folder (default: a temp dir)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL schemas")
    parser.add_argument("--json", type=Path, default=None, help="write every number here")
    args = parser.parse_args(argv)
    # Stopped with SIGTERM: unwind, so the sandbox stops and the schemas are dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 10**6)
    work = args.work or Path(tempfile.mkdtemp(prefix="marketo-soak-"))
    calm = None if args.no_baseline else run_once(args, work / "calm", chaos=False)
    run = run_once(args, work / "chaos", chaos=True)
    line = summary_line(args, run, calm)
    print(line, flush=True)
    report = {
        "summary": line,
        "chaos": run,
        "calm": calm,
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    (args.json or work / "soak.json").write_text(json.dumps(report, indent=1, default=str))
    if calm is not None and verdict(calm, args.members):
        print(f"the run without chaos failed too: {verdict(calm, args.members)}", file=sys.stderr)
    return 0 if not verdict(run, args.members) else 1


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "benchmarks"))
    sys.exit(main())
