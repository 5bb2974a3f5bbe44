"""The demo's reverse direction as scripts/demo runs it, and what demo/show.py reports of it.

`meltano run tap-jsonl target-marketo-ingest tap-jsonl-program-members target-marketo-ingest`
with the dev environment's routing and the shipped sample files: every good row reaches the
sandbox, every row marked "Bad row" in the file is in the rejects file, and nothing else is.
(The demo's Marketo -> DuckDB step is test_warehouses.py's DuckDB test.)
"""

from __future__ import annotations

import importlib.util
import json
from typing import TYPE_CHECKING

from .support import ROOT, Meltano, read_jsonl, sandbox_env, tail

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from types import ModuleType

    import pytest
    from marketo_sandbox.server import SandboxServer

DATA = ROOT / "demo" / "data"


def is_bad(row: dict) -> bool:
    """The sample files mark their deliberately bad rows."""
    return any("Bad row" in str(v) for v in row.values())


def source_row(reject: dict, rows: list[dict]) -> dict:
    """The sample-file row a reject stands for.

    Validation rejects carry the row as read; Marketo's own failures the row as sent, which the
    email identifies.
    """
    if reject["reason"] == "marketo_failure":
        found = [r for r in rows if r.get("email") == reject["record"].get("email")]
    else:
        as_read = {k: v for k, v in reject["record"].items() if v is not None}
        found = [r for r in rows if {k: v for k, v in r.items() if v is not None} == as_read]
    assert len(found) == 1, reject
    return found[0]


def load_show() -> ModuleType:
    """demo/show.py, loaded from its path (the repository root is not on sys.path)."""
    spec = importlib.util.spec_from_file_location("demo_show", ROOT / "demo" / "show.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_sandbox_and_rejects(sandbox: SandboxServer, tmp_path: Path) -> None:
    """Good sample rows are in the sandbox; the rejects file holds exactly the bad ones."""
    persons = read_jsonl(DATA / "persons.jsonl")
    members = read_jsonl(DATA / "program_members.jsonl")

    leads = {str(lead["email"]).lower(): lead for lead in sandbox.admin.dump("leads")}
    good_persons = [p for p in persons if not is_bad(p)]
    assert sum(p["email"] in leads for p in good_persons) == len(good_persons)
    for person in good_persons:
        lead = leads[person["email"]]
        assert {k: lead[k] for k in person} == person
    assert not [p for p in persons if is_bad(p) and str(p.get("email")).lower() in leads]

    good_members = [m for m in members if not is_bad(m)]
    found = 0
    for member in good_members:
        in_program = {
            m["leadId"]: m
            for m in sandbox.admin.dump("program_members", program_id=member["programId"])
        }
        row = in_program[leads[member["email"]]["id"]]
        assert row["statusName"] == member["statusName"]
        assert row["myCustomField"] == member["myCustomField"]
        assert row["sessionsAttended"] == member["sessionsAttended"]
        assert row["vipAttendee"] == member["vipAttendee"]
        found += 1
    assert found == len(good_members)

    rejects = [r for r in read_jsonl(tmp_path / "rejects.jsonl") if r["kind"] == "reject"]
    sources = {"persons": persons, "program_members": members}
    rejected = sorted(
        (r["stream"], json.dumps(source_row(r, sources[r["stream"]]), sort_keys=True))
        for r in rejects
    )
    expected = sorted(
        (stream, json.dumps(row, sort_keys=True))
        for stream, rows in sources.items()
        for row in rows
        if is_bad(row)
    )
    assert rejected == expected
    assert all(r["reason"] and r["message"] for r in rejects)


def test_sample_files_have_good_and_bad_rows() -> None:
    for name in ("persons.jsonl", "program_members.jsonl"):
        rows = read_jsonl(DATA / name)
        assert sum(is_bad(r) for r in rows) >= 3
        assert sum(not is_bad(r) for r in rows) >= 5


def test_demo_file_to_marketo_imports_good_rows_and_rejects_the_bad(
    meltano: Meltano,
    sandbox_factory: Callable[..., SandboxServer],
    tmp_path: Path,
    meltano_state: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    sandbox = sandbox_factory(seed="demo", time_scale=60.0)
    env = {**sandbox_env(sandbox.config, output=tmp_path), **meltano_state}
    run = meltano(
        "run",
        "--full-refresh",
        "tap-jsonl",
        "target-marketo-ingest",
        "tap-jsonl-program-members",
        "target-marketo-ingest",
        env=env,
    )
    try:
        check_sandbox_and_rejects(sandbox, tmp_path)
    except (AssertionError, KeyError) as exc:
        raise AssertionError(f"{exc!r}\n--- meltano run log ---\n{tail(run.stderr, 60)}") from None
    persons = read_jsonl(DATA / "persons.jsonl")
    members = read_jsonl(DATA / "program_members.jsonl")
    good_persons = [p for p in persons if not is_bad(p)]
    good_members = [m for m in members if not is_bad(m)]
    expected = [r for rows in (persons, members) for r in rows if is_bad(r)]

    # What scripts/demo prints afterwards.
    show = load_show()
    capsys.readouterr()
    assert show.main(["rejects", str(tmp_path / "rejects.jsonl")]) == 0
    out = capsys.readouterr().out
    assert f"{len(expected)} records rejected" in out
    urls = [sandbox.base_url, str(DATA / "persons.jsonl"), str(DATA / "program_members.jsonl")]
    assert show.main(["sandbox", *urls]) == 0
    out = capsys.readouterr().out
    assert f"{len(good_persons)} of the {len(persons)} persons" in out
    assert f"{len(good_members)} of the {len(members)} memberships" in out
