"""REST calls per 1,000 records verified: the read-back cost of `verify` (issue 17).

    uv run --frozen python benchmarks/verify_cost.py [--records 5000]

Runs the target as a real process (the venv's console script) against a demo sandbox, one
Data Ingestion stream per kind (program members, persons, companies), `verify` on, and counts
the read-back calls in the sandbox's own call log (the query endpoints). Prints, per kind:
records, ingestion requests, read-back calls and read-back calls per 1,000 records, beside the
floor of one polling round (⌈records per request ÷ 300⌉ per request: 4 per full 1,000-object
request); a record not applied at the first read costs another round.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

from marketo_sandbox.server import SandboxServer

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / ".venv" / "bin" / "target-marketo-ingest"
# Query paths (a long query goes as `POST ...?_method=GET`; the streams here make no REST sync).
READS = {
    "program members": ("/rest/v1/programs/", "/members.json"),
    "persons": ("/rest/v1/leads.json", ""),
    "companies": ("/rest/v1/companies.json", ""),
}


def _lines(leads: list[int], records: int) -> list[str]:
    out = []

    def emit(message: dict) -> None:
        out.append(json.dumps(message))

    members = [(lead, program) for program in (1001, 1003, 1004, 1002) for lead in leads][:records]
    status = {1001: "Invited", 1003: "Invited", 1004: "Sent", 1002: "Member"}
    emit(
        {
            "type": "SCHEMA",
            "stream": "members",
            "key_properties": [],
            "schema": {
                "properties": {
                    "leadId": {"type": "integer"},
                    "programId": {"type": "integer"},
                    "statusName": {"type": "string"},
                }
            },
        }
    )
    for lead, program in members:
        emit(
            {
                "type": "RECORD",
                "stream": "members",
                "record": {"leadId": lead, "programId": program, "statusName": status[program]},
            }
        )
    emit(
        {
            "type": "SCHEMA",
            "stream": "persons",
            "key_properties": [],
            "schema": {
                "properties": {
                    "email": {"type": "string"},
                    "firstName": {"type": "string"},
                    "leadScore": {"type": "integer"},
                }
            },
        }
    )
    for i in range(records):
        emit(
            {
                "type": "RECORD",
                "stream": "persons",
                "record": {
                    "email": f"verify.{i}@cost.example",
                    "firstName": f"V{i}",
                    "leadScore": i % 100,
                },
            }
        )
    emit(
        {
            "type": "SCHEMA",
            "stream": "companies",
            "key_properties": [],
            "schema": {
                "properties": {
                    "externalCompanyId": {"type": "string"},
                    "company": {"type": "string"},
                }
            },
        }
    )
    for i in range(records):
        emit(
            {
                "type": "RECORD",
                "stream": "companies",
                "record": {"externalCompanyId": f"cost-{i}", "company": f"Cost {i}"},
            }
        )
    emit({"type": "STATE", "value": {"done": True}})
    return out


def main(argv: list[str] | None = None) -> int:
    """Run and print the table; exit 1 when a record was not verified."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000, help="records per kind")
    parser.add_argument("--poll", type=float, default=1.0, help="poll_interval_seconds")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="verify-cost-") as work:
        sandbox = SandboxServer(db_path=str(Path(work) / "sb.db"), seed="demo", time_scale=60.0)
        with sandbox:
            leads = sorted(lead["id"] for lead in sandbox.admin.dump("leads"))
            config = {
                **sandbox.config,
                "rejects_path": str(Path(work) / "rejects.jsonl"),
                "poll_interval_seconds": args.poll,
                "verify_timeout_seconds": 120,
                "streams": {
                    "members": {"method": "ingest_program_members"},
                    "persons": {"method": "ingest_persons"},
                    "companies": {"method": "ingest_companies"},
                },
            }
            config_path = Path(work) / "config.json"
            config_path.write_text(json.dumps(config))
            before = len(sandbox.admin.dump("calls"))
            data = "\n".join(_lines(leads, args.records)) + "\n"
            proc = subprocess.run(
                [str(TARGET), "--config", str(config_path)],
                input=data.encode(),
                capture_output=True,
                check=False,
            )
            if proc.returncode:
                sys.stderr.write(proc.stderr.decode()[-3000:])
                return 1
            calls = sandbox.admin.dump("calls")[before:]
            metrics = [
                json.loads(line.split("METRIC: ", 1)[1])["value"]
                for line in proc.stderr.decode().splitlines()
                if "target_marketo_ingest.stream" in line and "METRIC: " in line
            ]
    by_stream = {m["stream"]: m for m in metrics}
    print(
        f"{'kind':<16} {'records':>8} {'applied':>8} {'requests':>8} {'reads':>6} "
        f"{'reads/1k':>9} {'floor/1k':>9}"
    )
    failed = False
    for stream, kind in (
        ("members", "program members"),
        ("persons", "persons"),
        ("companies", "companies"),
    ):
        prefix, suffix = READS[kind]
        reads = sum(
            1
            for c in calls
            if str(c.get("path", "")).startswith(prefix) and str(c.get("path", "")).endswith(suffix)
        )
        summary = by_stream[stream]
        applied = summary["applied"]
        failed |= applied != summary["received"]
        per_request = math.ceil(summary["received"] / max(1, summary["requests"]))
        floor = math.ceil(per_request / 300) * summary["requests"] * 1000 / summary["received"]
        print(
            f"{kind:<16} {summary['received']:>8} {applied:>8} {summary['requests']:>8} "
            f"{reads:>6} {reads * 1000 / max(1, applied):>9.1f} {floor:>9.1f}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
