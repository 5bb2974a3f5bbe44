"""Marketo -> Meltano -> file: every member with the right types, then exactly the changed ones.

`meltano run tap-marketo-members target-jsonl` against a demo-seeded sandbox; the output is
compared with the sandbox's own dump, field by field, and each value's JSON type with the type
discovery gave it (itself derived from the sandbox's describe output).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING

from .support import Meltano, read_jsonl, sandbox_env

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from marketo_sandbox.server import SandboxServer

# Marketo dataType -> JSON Schema type the tap must give the field (issue 5's type map).
EXPECTED_TYPES = {
    "string": "string",
    "text": "string",
    "email": "string",
    "phone": "string",
    "url": "string",
    "integer": "integer",
    "float": "number",
    "currency": "number",
    "boolean": "boolean",
    "datetime": "string",
    "date": "string",
}
PY_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool}


def tap_env(sandbox: SandboxServer, output: Path, state: dict[str, str]) -> dict[str, str]:
    """Both connectors on this sandbox, loaders into `output`, start date before the seed."""
    start = dt.datetime.fromisoformat(sandbox.admin.now().replace("Z", "+00:00"))
    return {
        **sandbox_env(sandbox.config, output=output),
        **state,
        "TAP_MARKETO_MEMBERS_START_DATE": (start - dt.timedelta(days=65)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        ),
        "TAP_MARKETO_MEMBERS_POLL_INTERVAL_SECONDS": "1",
    }


def discover(meltano: Meltano, env: dict[str, str]) -> dict:
    """`meltano invoke tap-marketo-members --discover`, parsed."""
    out = meltano("invoke", "tap-marketo-members", "--discover", env=env).stdout
    return json.loads(out[out.index("{") :])


def json_type(prop: dict) -> str:
    """The non-null JSON type of a property."""
    types = prop.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    real = [t for t in types if t != "null"]
    assert len(real) == 1, prop
    return real[0]


def test_discovery_lists_program_members_with_custom_fields_typed(
    meltano: Meltano,
    sandbox_factory: Callable[..., SandboxServer],
    tmp_path: Path,
    meltano_state: dict[str, str],
) -> None:
    sandbox = sandbox_factory(seed="demo", time_scale=60.0)
    catalog = discover(meltano, tap_env(sandbox, tmp_path, meltano_state))
    streams = {s["tap_stream_id"]: s for s in catalog["streams"]}
    assert {"programs", "program_members", "program_member_fields", "lead_fields"} <= set(streams)
    members = streams["program_members"]
    assert members["key_properties"] == ["programId", "leadId"]
    props = members["schema"]["properties"]
    custom = [
        f for f in sandbox.admin.dump("fields") if f["object"] == "programMember" and f["isCustom"]
    ]
    assert len(custom) >= 4
    for spec in custom:
        assert spec["name"] in props, f"custom field {spec['name']} missing from discovery"
        expected = EXPECTED_TYPES.get(spec["dataType"])
        if expected is not None:
            assert json_type(props[spec["name"]]) == expected, spec
        if spec["dataType"] == "datetime":
            assert props[spec["name"]].get("format") == "date-time"


def test_round_trip_every_member_then_incremental_exactly_the_changed(
    meltano: Meltano,
    sandbox_factory: Callable[..., SandboxServer],
    tmp_path: Path,
    meltano_state: dict[str, str],
) -> None:
    sandbox = sandbox_factory(seed="demo", time_scale=60.0)
    env = tap_env(sandbox, tmp_path / "run1", meltano_state)
    props = {
        s["tap_stream_id"]: s["schema"]["properties"] for s in discover(meltano, env)["streams"]
    }["program_members"]

    meltano("run", "tap-marketo-members", "target-jsonl", env=env)
    records = read_jsonl(tmp_path / "run1" / "jsonl" / "program_members.jsonl")
    dump = sandbox.admin.dump("program_members")
    assert len(dump) > 1000
    keys = [(r["programId"], r["leadId"]) for r in records]
    assert len(keys) == len(set(keys)), "duplicate members in a full run"
    by_key = {(m["programId"], m["leadId"]): m for m in dump}
    assert set(keys) == set(by_key)

    leads = {lead["id"]: lead for lead in sandbox.admin.dump("leads")}
    typed = 0
    for record in records:
        member = by_key[(record["programId"], record["leadId"])]
        for name, value in record.items():
            if name in member:
                expected = member[name]
            elif name in leads[record["leadId"]]:
                expected = leads[record["leadId"]][name]
            else:
                continue
            if value is None:
                assert expected in (None, ""), (name, record, member)
                continue
            kind = json_type(props[name])
            assert isinstance(value, PY_TYPES[kind]), (name, value, kind)
            assert not (kind in ("integer", "number") and isinstance(value, bool)), (name, value)
            if props[name].get("format") == "date-time":
                assert dt.datetime.fromisoformat(value.replace("Z", "+00:00")) == (
                    dt.datetime.fromisoformat(str(expected).replace("Z", "+00:00"))
                ), (name, value, expected)
            else:
                assert value == expected, (name, value, expected)
            typed += 1
    assert typed > len(records) * 10

    # target-jsonl keeps a STATE only when it is the last message, as it should be: a STATE
    # followed by RECORDs would commit bookmarks past rows the loader has not seen.
    saved = meltano("state", "get", "dev:tap-marketo-members-to-target-jsonl", env=env).stdout
    bookmarks = json.loads(saved[saved.index("{") :]).get("singer_state", {}).get("bookmarks", {})
    assert bookmarks.get("program_members"), (
        "Meltano saved no program_members bookmark: the tap's last message was not a STATE "
        "(RECORD lines written after the final STATE)"
    )

    # Change a few members in Marketo; the next run (same state) returns exactly those.
    changed = {1002: sorted(m["leadId"] for m in dump if m["programId"] == 1002)[3:9]}
    changed[1004] = sorted(m["leadId"] for m in dump if m["programId"] == 1004)[-4:]
    for program_id, lead_ids in changed.items():
        assert sandbox.admin.touch_members(program_id, lead_ids, sessionsAttended=42) == len(
            lead_ids
        )
    env2 = {**env, **sandbox_env(sandbox.config, output=tmp_path / "run2")}
    meltano("run", "tap-marketo-members", "target-jsonl", env=env2)
    second = read_jsonl(tmp_path / "run2" / "jsonl" / "program_members.jsonl")
    expected_keys = {(pid, lead) for pid, ids in changed.items() for lead in ids}
    assert len(second) == len(expected_keys)
    assert {(r["programId"], r["leadId"]) for r in second} == expected_keys
    assert all(r["sessionsAttended"] == 42 for r in second)
