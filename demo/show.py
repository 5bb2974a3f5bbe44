"""What scripts/demo prints between its steps: DuckDB tables, the sandbox's data, the rejects.

Run with the workspace's Python (`uv run --frozen python demo/show.py ...`); it reads the
DuckDB file with SQL and the sandbox through its admin API, so what it shows is what is there.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
from marketo_sandbox.admin_client import AdminClient

ROWS_PER_TABLE = 3
COLUMNS_SHOWN = 7
CELL_WIDTH = 24
# The columns worth a first look, where a table has them (target-duckdb lower-cases names).
PREFERRED = (
    "programid", "leadid", "email", "statusname", "sessionsattended", "vipattendee",
    "id", "name", "channel", "type", "datatype", "length", "iscustom", "updatedat",
)  # fmt: skip


def say(text: str = "") -> None:
    """One line to the terminal (this module exists to print)."""
    sys.stdout.write(text + "\n")


def cell(value: Any) -> str:
    """A value shortened to one readable cell."""
    text = "NULL" if value is None else str(value)
    text = text.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return text if len(text) <= CELL_WIDTH else text[: CELL_WIDTH - 1] + "…"


def table(header: list[str], rows: list[list[Any]]) -> None:
    """A plain text table sized to its content."""
    cells = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]
    say("    " + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in cells:
        say("    " + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def _sandbox_now(client: AdminClient) -> tuple[str | None, str]:
    try:
        return client.now(), ""
    except Exception as exc:
        return None, str(exc)


def wait(args: argparse.Namespace) -> int:
    """Wait until the sandbox answers its admin API."""
    deadline = time.monotonic() + args.timeout
    client = AdminClient(args.base_url, timeout=5)
    now, error = _sandbox_now(client)
    while now is None:
        if time.monotonic() > deadline:
            say(f"    the sandbox at {args.base_url} did not answer in {args.timeout}s: {error}")
            return 1
        time.sleep(0.2)
        now, error = _sandbox_now(client)
    say(f"    sandbox is up at {args.base_url} (sandbox clock: {now})")
    return 0


def show_duckdb(args: argparse.Namespace) -> int:
    """Row counts and a few rows of every table the loader wrote."""
    with duckdb.connect(args.path, read_only=True) as con:
        tables = [
            name
            for (name,) in con.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = ? ORDER BY table_name",
                [args.schema],
            ).fetchall()
        ]
        if not tables:
            say(f"    no tables in schema {args.schema!r} of {args.path}")
            return 1
        empty = []
        for name in tables:
            qualified = f'"{args.schema}"."{name}"'
            (count,) = con.execute(f"SELECT count(*) FROM {qualified}").fetchone()  # noqa: S608
            say(f"  {args.schema}.{name}: {count} rows")
            if count == 0:
                empty.append(name)
                continue
            columns = [
                c
                for (c,) in con.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                    [args.schema, name],
                ).fetchall()
                if not c.startswith("_sdc")
            ]
            preferred = [c for c in PREFERRED if c in columns]
            columns = (preferred or columns)[:COLUMNS_SHOWN]
            select = ", ".join(f'"{c}"' for c in columns)
            rows = con.execute(
                f"SELECT {select} FROM {qualified} LIMIT {ROWS_PER_TABLE}"  # noqa: S608
            ).fetchall()
            table(columns, [list(r) for r in rows])
    if empty:
        say(f"    EMPTY tables (a loader that loads nothing is a failure): {', '.join(empty)}")
        return 1
    return 0


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def show_sandbox(args: argparse.Namespace) -> int:
    """The persons and memberships of the sample files, as the sandbox holds them now."""
    client = AdminClient(args.base_url)
    persons = _read_jsonl(Path(args.persons))
    members = _read_jsonl(Path(args.program_members))
    leads_by_email = {str(lead.get("email") or "").lower(): lead for lead in client.dump("leads")}
    emails = [str(p.get("email") or "").lower() for p in persons]
    found = [leads_by_email[e] for e in emails if e in leads_by_email]
    say(f"  leads: {len(found)} of the {len(persons)} persons in the file are in Marketo now")
    table(
        ["id", "email", "firstName", "lastName", "company", "accountTier", "isPartner"],
        [
            [
                lead.get("id"),
                lead.get("email"),
                lead.get("firstName"),
                lead.get("lastName"),
                lead.get("company"),
                lead.get("accountTier"),
                lead.get("isPartner"),
            ]
            for lead in found
        ],
    )
    ids = {lead["id"]: lead.get("email") for lead in leads_by_email.values()}
    wanted = {
        (m.get("programId"), str(m.get("email") or "").lower())
        for m in members
        if m.get("programId") is not None
    }
    rows = []
    for program_id in sorted({p for p, _ in wanted if isinstance(p, int)}):
        for member in client.dump("program_members", program_id=program_id):
            email = str(ids.get(member.get("leadId")) or "").lower()
            if (program_id, email) in wanted:
                rows.append(
                    [
                        program_id,
                        ids.get(member.get("leadId")),
                        member.get("statusName"),
                        member.get("myCustomField"),
                        member.get("sessionsAttended"),
                        member.get("vipAttendee"),
                    ]
                )
    say(
        f"  program members: {len(rows)} of the {len(members)} memberships in the file "
        "are in Marketo now"
    )
    table(
        ["programId", "email", "statusName", "myCustomField", "sessionsAttended", "vipAttendee"],
        rows,
    )
    return 0 if found and rows else 1


def show_rejects(args: argparse.Namespace) -> int:
    """Every rejected record with the reason the target gave."""
    entries = [e for e in _read_jsonl(Path(args.path)) if e.get("kind", "reject") == "reject"]
    warnings = [e for e in _read_jsonl(Path(args.path)) if e.get("kind") == "warning"]
    say(f"  {len(entries)} records rejected, written to {args.path}:")
    rows = []
    for entry in entries:
        record = entry.get("record") or {}
        who = record.get("email") or "(no email)"
        if record.get("programId") is not None:
            who = f"{who} in program {record.get('programId')}"
        rows.append([entry.get("stream"), who, entry.get("reason"), entry.get("message")])
    for stream, who, reason, message in rows:
        say(f"    - {stream}: {who}: {reason}: {message}")
    if warnings:
        say(f"  and {len(warnings)} warnings (imported, but Marketo had a remark)")
    by_reason = Counter(str(e.get("reason")) for e in entries)
    if by_reason:
        say("  by reason: " + ", ".join(f"{r} {n}" for r, n in by_reason.most_common()))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Dispatch the sub-commands scripts/demo uses."""
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("wait", help="wait for the sandbox")
    p.add_argument("base_url")
    p.add_argument("--timeout", type=float, default=60.0)
    p.set_defaults(fn=wait)
    p = sub.add_parser("duckdb", help="row counts and sample rows of a DuckDB file")
    p.add_argument("path")
    p.add_argument("--schema", default="marketo")
    p.set_defaults(fn=show_duckdb)
    p = sub.add_parser("sandbox", help="the sample files' persons and members in the sandbox")
    p.add_argument("base_url")
    p.add_argument("persons")
    p.add_argument("program_members")
    p.set_defaults(fn=show_sandbox)
    p = sub.add_parser("rejects", help="the rejects file, one line per record")
    p.add_argument("path")
    p.set_defaults(fn=show_rejects)
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
