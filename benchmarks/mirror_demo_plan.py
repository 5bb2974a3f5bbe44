"""The membership mirror's plan for the demo (issue 17): `dry_run`, then the `max_removals` guard.

    uv run --frozen python benchmarks/mirror_demo_plan.py [--max-removals 0.1]

Starts a demo sandbox, loads `demo/data/persons.jsonl` as the demo does (Bulk Lead Import through
the target), then takes `demo/data/program_members.jsonl` as the whole desired membership of the
programs it names: each row's email becomes the leadId Marketo gave that person (a row without a
known email goes without a leadId and is rejected, as in the demo) and the rows go to an
`ingest_program_members` route with `mirror: true`:

1. with `dry_run: true`: prints the plan lines the target logs, and its summary line;
2. without `dry_run`, with `max_removals`: prints the guard's line, and checks through the sandbox
   that no program's membership changed.

Exits 1 when the target does not behave so (no plan lines, the guard did not stop the run, or
a membership changed).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from marketo_sandbox.server import SandboxServer

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / ".venv" / "bin" / "target-marketo-ingest"
DATA = ROOT / "demo" / "data"
MEMBER_FIELDS = ("programId", "statusName", "myCustomField", "sessionsAttended", "vipAttendee")


def _messages(stream: str, schema: dict, rows: list[dict]) -> str:
    lines = [{"type": "SCHEMA", "stream": stream, "key_properties": [], "schema": schema}]
    lines += [{"type": "RECORD", "stream": stream, "record": row} for row in rows]
    return "\n".join(json.dumps(line) for line in lines) + "\n"


def _run(config: dict, work: Path, name: str, data: str) -> subprocess.CompletedProcess:
    path = work / f"{name}.json"
    path.write_text(json.dumps(config))
    return subprocess.run(
        [str(TARGET), "--config", str(path)],
        input=data.encode(),
        capture_output=True,
        check=False,
    )


def _message(line: str) -> str:
    """A log line without its time, level and logger columns."""
    return line.rsplit(" | ", 1)[-1]


def _membership(sandbox: SandboxServer, programs: list[int]) -> dict[int, int]:
    return {pid: len(sandbox.admin.dump("program_members", program_id=pid)) for pid in programs}


def main(argv: list[str] | None = None) -> int:
    """Print the dry-run plan and the guard line; exit 1 when either is missing."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-removals", type=float, default=0.1, help="the guard's limit")
    args = parser.parse_args(argv)
    persons = [json.loads(line) for line in (DATA / "persons.jsonl").read_text().splitlines()]
    wanted = [
        json.loads(line) for line in (DATA / "program_members.jsonl").read_text().splitlines()
    ]
    with (
        tempfile.TemporaryDirectory(prefix="mirror-demo-") as tmp,
        SandboxServer(db_path=str(Path(tmp) / "sb.db"), seed="demo", time_scale=60.0) as sandbox,
    ):
        work = Path(tmp)
        base = {**sandbox.config, "rejects_path": str(work / "rejects.jsonl")}
        person_schema = {"properties": {k: {} for row in persons for k in row}}
        loaded = _run(base, work, "persons", _messages("persons", person_schema, persons))
        if loaded.returncode:
            sys.stderr.write(loaded.stderr.decode()[-3000:])
            return 1
        ids = {str(lead.get("email")).lower(): lead["id"] for lead in sandbox.admin.dump("leads")}
        rows = []
        for row in wanted:
            member = {k: row[k] for k in MEMBER_FIELDS if k in row}
            lead_id = ids.get(str(row.get("email", "")).lower())
            if lead_id is not None:
                member["leadId"] = lead_id
            rows.append(member)
        schema = {
            "properties": {
                "leadId": {"type": ["integer", "null"]},
                "programId": {"type": ["integer", "null"]},
                "statusName": {"type": ["string", "null"]},
                "myCustomField": {"type": ["string", "null"]},
                "sessionsAttended": {"type": ["integer", "null"]},
                "vipAttendee": {"type": ["boolean", "null"]},
            }
        }
        data = _messages("program_members", schema, rows)
        programs = sorted({int(r["programId"]) for r in wanted} - {9999})
        before = _membership(sandbox, programs)
        route = {"method": "ingest_program_members", "mirror": True}
        dry = _run(
            {**base, "dry_run": True, "streams": {"program_members": route}}, work, "dry", data
        )
        log = dry.stderr.decode().splitlines()
        plan = [_message(line) for line in log if "mirror plan for program" in line]
        summary = [_message(line) for line in log if "mirror: adds" in line]
        print("dry run (mirror: true, dry_run: true), exit", dry.returncode)
        print("\n".join([*plan, *summary]))
        guarded = {**route, "max_removals": args.max_removals}
        real = _run({**base, "streams": {"program_members": guarded}}, work, "guard", data)
        guard = [line for line in real.stderr.decode().splitlines() if "max_removals" in line]
        print(f"\nreal run with max_removals: {args.max_removals:g}, exit", real.returncode)
        print("\n".join(_message(line) for line in guard[-1:]))
        after = _membership(sandbox, programs)
        print(f"\nmembers per program before {before}, after {after}")
    return 0 if plan and real.returncode and guard and before == after else 1


if __name__ == "__main__":
    sys.exit(main())
