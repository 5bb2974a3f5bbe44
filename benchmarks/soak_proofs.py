"""What the chaos soak proves, each from the sandbox's own data (never from the connectors' logs).

- `warehouse_equals_marketo`: PostgreSQL's program_members against the sandbox's members, merged
  in (programId, leadId) order, streamed: no gap, no duplicate, every shared field equal.
- `write_outcomes`: every record given to the target is in Marketo (its written value is what the
  sandbox holds) or rejected (rejects file, deduped by record key), and the rejected set is
  exactly the set not in Marketo. A Data Ingestion record that fails after its 202 must be in the
  rejects file too: the target reads every accepted record back (`verify`, on by default) and
  rejects it `not_applied`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def psql_rows(pg: dict, sql: str) -> Iterator[str]:
    """Lines of a query's text output, streamed (FETCH_COUNT: psql never holds the whole set)."""
    env = {
        **os.environ,
        "PGHOST": pg["host"],
        "PGPORT": str(pg["port"]),
        "PGUSER": pg["user"],
        "PGPASSWORD": pg["password"],
        "PGDATABASE": pg["database"],
    }
    proc = subprocess.Popen(
        [
            "psql",
            "-X",
            "-At",
            "-F",
            "\t",
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
            "FETCH_COUNT=20000",
            "-c",
            sql,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert proc.stdout is not None
    yield from (line.rstrip("\n") for line in proc.stdout)
    if proc.wait() != 0:
        raise RuntimeError(
            f"psql failed on {sql[:80]!r}: {proc.stderr.read() if proc.stderr else ''}"
        )


def sandbox_dump(db: Path, kind: str) -> Iterator[dict]:
    """`marketo-sandbox dump KIND --db` rows, streamed (reads the db file beside the server)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "marketo_sandbox.cli", "dump", kind, "--db", str(db)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    yield from (json.loads(line) for line in proc.stdout)
    proc.wait()


def _norm(value: Any) -> Any:  # noqa: PLR0911 - one return per kind of value
    """A warehouse or Marketo value in one comparable form (instants, numbers, empty = None)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if len(text) >= 19 and text[4] == "-" and text[10] in "T ":
            try:
                stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                return value
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=dt.timezone.utc)
            return stamp.timestamp()
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
    return value


def warehouse_equals_marketo(pg: dict, schema: str, db: Path) -> dict[str, Any]:
    """Merge the warehouse and the sandbox in key order; count gaps, extras, dupes, diffs."""
    sql = (
        f"SELECT row_to_json(t)::text FROM {schema}.program_members t "
        'ORDER BY "programId", "leadId"'
    )
    house = (json.loads(line) for line in psql_rows(pg, sql) if line)
    marketo = sandbox_dump(db, "program_members")
    out = Counter()
    examples: list[str] = []
    fields: set[str] = set()

    def note(kind: str, detail: str) -> None:
        out[kind] += 1
        if len(examples) < 5:
            examples.append(f"{kind} {detail}")

    want = next(marketo, None)
    have = next(house, None)
    last_key = None
    while want is not None or have is not None:
        wkey = (want["programId"], want["leadId"]) if want else None
        hkey = (have["programId"], have["leadId"]) if have else None
        if hkey is not None and hkey == last_key:
            note("duplicate", str(hkey))
            have = next(house, None)
            continue
        if wkey is not None and (hkey is None or wkey < hkey):
            note("missing", str(wkey))
            want = next(marketo, None)
            continue
        if hkey is not None and (wkey is None or hkey < wkey):
            note("extra", str(hkey))
            last_key = hkey
            have = next(house, None)
            continue
        out["rows"] += 1
        for name, value in want.items():
            if name in have:
                fields.add(name)
                if _norm(have[name]) != _norm(value):
                    note("different", f"{wkey} {name}: warehouse {have[name]!r} marketo {value!r}")
        last_key = hkey
        want, have = next(marketo, None), next(house, None)
    return {
        **{k: out[k] for k in ("rows", "missing", "extra", "duplicate", "different")},
        "fields": len(fields),
        "examples": examples,
    }


def reject_key(entry: dict, email_to_lead: dict[str, int]) -> tuple | None:
    """The input record a rejects line is about: ("lead", email) or ("member", program, lead)."""
    record = entry.get("record") or {}
    stream = entry.get("stream", "")
    if stream.startswith("pm_"):
        lead = record.get("leadId") or email_to_lead.get(str(record.get("email", "")).lower())
        program = record.get("programId")
        if lead is None or program is None:
            return None
        return ("member", int(program), int(lead))
    email = record.get("email")
    return None if email is None else ("lead", str(email).lower())


def write_outcomes(
    expected: dict[tuple, tuple[str, str]],
    rejects_path: Path,
    db: Path,
    failures: list[dict],
    email_to_lead: dict[str, int],
) -> dict[str, Any]:
    """Outcome of every written record; `expected[key]` = (stream, value Marketo must hold).

    `failures` (the sandbox's `ingestion_failures`: objects of accepted requests that failed
    later) are counted for the summary only: with verification on, each such record must be a
    `not_applied` reject, so nothing is excused by them.
    """
    in_marketo: set[tuple] = set()
    for lead in sandbox_dump(db, "leads"):
        key = ("lead", str(lead.get("email") or "").lower())
        if key in expected and lead.get("lastName") == expected[key][1]:
            in_marketo.add(key)
    for member in sandbox_dump(db, "program_members"):
        key = ("member", member["programId"], member["leadId"])
        if key in expected and member.get("statusName") == expected[key][1]:
            in_marketo.add(key)
    lines = Counter()
    reasons = Counter()
    unknown = 0
    if rejects_path.exists():
        with rejects_path.open(encoding="utf-8") as fh:
            for raw in fh:
                entry = json.loads(raw)
                if entry.get("kind") != "reject":
                    continue
                key = reject_key(entry, email_to_lead)
                if key is None or key not in expected:
                    unknown += 1
                    continue
                if key not in lines:
                    reasons[entry.get("reason")] += 1
                lines[key] += 1
    rejected = set(lines)
    not_in = set(expected) - in_marketo
    unexplained = not_in - rejected
    lost = len(unexplained)
    return {
        "written": len(expected),
        "in_marketo": len(in_marketo),
        "rejected": len(rejected),
        "reject_lines": sum(lines.values()),
        "replayed_rejects": sum(c - 1 for c in lines.values()),
        "reasons": dict(reasons.most_common()),
        "post202_objects": len(failures),
        "not_applied": reasons.get("not_applied", 0),
        "lost": lost,
        "rejected_but_in_marketo": len(rejected & in_marketo),
        "unknown_rejects": unknown,
        "rejected_equals_not_in_marketo": not (rejected & in_marketo) and lost == 0,
        "lost_examples": [(expected[k][0], *k) for k in sorted(unexplained)[:5]],
    }
