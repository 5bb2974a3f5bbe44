"""meltano.yml: inline plugins, pinned versions, no secret in the file, and loaders that load.

The third-party plugins are checked by running them here, because a pin that installs but
silently loads nothing (target-duckdb 0.8.0 with duckdb 2.x) looks fine until rows are counted.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import duckdb
import pytest
import yaml

from .support import ROOT, Meltano, read_jsonl

if TYPE_CHECKING:
    from pathlib import Path

MELTANO_YML = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
PLUGINS = [plugin for kind in ("extractors", "loaders") for plugin in MELTANO_YML["plugins"][kind]]
BY_NAME = {plugin["name"]: plugin for plugin in PLUGINS}
SECRET_SETTINGS = {"client_secret", "password", "sqlalchemy_url"}


def test_every_plugin_is_inline_with_no_hub_lookup() -> None:
    expected = {
        "tap-marketo-members",
        "target-marketo-ingest",
        "target-duckdb",
        "target-jsonl",
        "target-postgres",
        "tap-postgres",
        "tap-jsonl",
    }
    assert expected <= set(BY_NAME)
    for plugin in PLUGINS:
        assert "variant" not in plugin, plugin["name"]
        if "inherit_from" in plugin:
            assert plugin["inherit_from"] in BY_NAME
            continue
        for key in ("namespace", "pip_url", "executable"):
            assert plugin.get(key), f"{plugin['name']} has no {key}"


def test_third_party_plugins_are_pinned() -> None:
    for plugin in PLUGINS:
        pip_url = plugin.get("pip_url", "")
        for requirement in pip_url.split():
            if requirement.startswith(("-e", "./")):
                continue
            assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][\w.]*", requirement), (
                f"{plugin['name']}: {requirement!r} is not pinned with =="
            )
    # duckdb 2.x makes target-duckdb 0.8.0 load zero rows without an error.
    assert "duckdb==1.1.3" in BY_NAME["target-duckdb"]["pip_url"].split()
    assert BY_NAME["target-postgres"]["pip_url"].startswith("meltanolabs-target-postgres==")
    assert BY_NAME["tap-postgres"]["pip_url"].startswith("meltanolabs-tap-postgres==")


def test_our_connectors_install_from_the_local_paths_with_marketo_common() -> None:
    for name, path in (
        ("tap-marketo-members", "./tap-marketo-members"),
        ("target-marketo-ingest", "./target-marketo-ingest"),
    ):
        parts = BY_NAME[name]["pip_url"].split()
        assert path in parts
        assert "./marketo-common" in parts
        assert (ROOT / path / "pyproject.toml").exists()


def test_secret_settings_are_passwords() -> None:
    seen = 0
    for plugin in PLUGINS:
        for setting in plugin.get("settings", []):
            if setting["name"] in SECRET_SETTINGS:
                seen += 1
                assert setting.get("kind") == "password", f"{plugin['name']}.{setting['name']}"
                assert setting.get("sensitive") is True, f"{plugin['name']}.{setting['name']}"
    assert seen >= 4


def _environment(name: str) -> dict:
    return next(env for env in MELTANO_YML["environments"] if env["name"] == name)


def test_prod_takes_every_credential_from_the_environment() -> None:
    prod = _environment("prod")["config"]["plugins"]
    # A plugin that inherits (tap-marketo-members-batch) takes its parent's credentials.
    inheriting = {p["name"] for p in PLUGINS if p.get("inherit_from")}
    configs = [p["config"] for kind in prod.values() for p in kind if p["name"] not in inheriting]
    assert configs
    for config in configs:
        for key in ("base_url", "client_id", "client_secret", "munchkin_id"):
            assert re.fullmatch(r"\$\{?[A-Z_]+\}?", str(config[key])), (key, config[key])
    for plugin in (p for kind in prod.values() for p in kind if p["name"] in inheriting):
        assert not {"client_id", "client_secret"} & set(plugin["config"]), plugin["name"]


def test_dev_is_the_default_and_points_at_localhost() -> None:
    assert MELTANO_YML["default_environment"] == "dev"
    dev = _environment("dev")["config"]["plugins"]
    for kind in dev.values():
        for plugin in kind:
            url = plugin["config"].get("base_url")
            if url is not None:
                assert url.startswith(("http://127.0.0.1:", "http://localhost:")), url


def test_prod_config_resolves_from_environment_variables(meltano: Meltano) -> None:
    env = {
        "MARKETO_BASE_URL": "https://123-ABC-456.mktorest.com",
        "MARKETO_CLIENT_ID": "prod-client-id",
        "MARKETO_CLIENT_SECRET": "prod-secret-value",
        "MARKETO_MUNCHKIN_ID": "123-ABC-456",
    }
    unsafe = meltano(
        "--environment", "prod", "config", "--unsafe", "print", "tap-marketo-members", env=env
    ).stdout
    config = json.loads(unsafe[unsafe.index("{") :])
    assert config["base_url"] == env["MARKETO_BASE_URL"]
    assert config["client_id"] == env["MARKETO_CLIENT_ID"]
    assert config["client_secret"] == env["MARKETO_CLIENT_SECRET"]
    assert config["munchkin_id"] == env["MARKETO_MUNCHKIN_ID"]
    safe = meltano("--environment", "prod", "config", "print", "target-marketo-ingest", env=env)
    config = json.loads(safe.stdout[safe.stdout.index("{") :])
    assert config["base_url"] == env["MARKETO_BASE_URL"]
    assert config["client_secret"]  # set, but masked:
    assert "prod-secret-value" not in safe.stdout + safe.stderr


def _singer_lines(stream: str, rows: list[dict], key: str) -> str:
    schema = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "email": {"type": ["string", "null"]},
            "score": {"type": ["integer", "null"]},
            "active": {"type": ["boolean", "null"]},
            "updatedAt": {"type": ["string", "null"], "format": "date-time"},
        },
    }
    lines = [{"type": "SCHEMA", "stream": stream, "schema": schema, "key_properties": [key]}]
    lines += [{"type": "RECORD", "stream": stream, "record": row} for row in rows]
    lines.append({"type": "STATE", "value": {"bookmarks": {stream: {"done": True}}}})
    return "".join(json.dumps(line) + "\n" for line in lines)


def _rows(count: int) -> list[dict]:
    return [
        {
            "id": i,
            "email": f"person{i}@example.com",
            "score": i * 3 if i % 4 else None,
            "active": i % 2 == 0,
            "updatedAt": f"2024-03-{1 + i % 28:02d}T10:00:00+00:00",
        }
        for i in range(1, count + 1)
    ]


def test_target_duckdb_really_loads_rows(meltano: Meltano, tmp_path: Path) -> None:
    db = tmp_path / "check.duckdb"
    rows = _rows(250)
    proc = meltano(
        "invoke",
        "target-duckdb",
        env={"TARGET_DUCKDB_FILEPATH": str(db)},
        input_text=_singer_lines("people", rows, "id"),
    )
    assert '"done": true' in proc.stdout  # the target passed the final STATE on
    with duckdb.connect(str(db), read_only=True) as con:
        count, nulls, active = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE score IS NULL), "
            "count(*) FILTER (WHERE active) FROM marketo.people"
        ).fetchone()
        types = dict(
            con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'marketo' AND table_name = 'people'"
            ).fetchall()
        )
    assert count == len(rows)
    assert nulls == sum(1 for r in rows if r["score"] is None)
    assert active == sum(1 for r in rows if r["active"])
    assert types["active"] == "BOOLEAN"
    assert types["updatedat"].startswith("TIMESTAMP")  # target-duckdb lowercases names


def test_target_jsonl_writes_every_record(meltano: Meltano, tmp_path: Path) -> None:
    rows = _rows(40)
    meltano(
        "invoke",
        "target-jsonl",
        env={"TARGET_JSONL_DESTINATION_PATH": str(tmp_path)},
        input_text=_singer_lines("people", rows, "id"),
    )
    assert read_jsonl(tmp_path / "people.jsonl") == rows


@pytest.mark.parametrize(
    ("plugin", "data_file"),
    [("tap-jsonl", "persons.jsonl"), ("tap-jsonl-program-members", "program_members.jsonl")],
)
def test_tap_jsonl_reads_the_demo_files_without_file_columns(
    meltano: Meltano, plugin: str, data_file: str
) -> None:
    expected = read_jsonl(ROOT / "demo" / "data" / data_file)
    assert expected
    proc = meltano("invoke", plugin)
    records = [
        json.loads(line)["record"]
        for line in proc.stdout.splitlines()
        if line.startswith("{") and json.loads(line).get("type") == "RECORD"
    ]
    assert len(records) == len(expected)
    for record, source in zip(records, expected, strict=True):
        assert not [key for key in record if key.startswith("_sdc_")]
        assert {k: v for k, v in record.items() if v is not None} == {
            k: v for k, v in source.items() if v is not None
        }
