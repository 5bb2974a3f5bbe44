"""Meltano Hub plugin definitions: generated from each connector's `--about`, never stale.

`scripts/hub_yaml.py` writes `<connector>/meltano-hub.yml` and the same definitions into
meltano.yml; these tests regenerate them and compare, so a setting or capability changed in a
connector without rerunning the script fails here.
"""

from __future__ import annotations

import importlib.util

import pytest
import yaml

from .support import ROOT

spec = importlib.util.spec_from_file_location("hub_yaml", ROOT / "scripts" / "hub_yaml.py")
assert spec
assert spec.loader
hub_yaml = importlib.util.module_from_spec(spec)
spec.loader.exec_module(hub_yaml)

CONNECTORS = tuple(hub_yaml.CONNECTORS)


def test_generated_files_are_current():
    for path, text in hub_yaml.expected_files().items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.relative_to(ROOT)} is stale: run `uv run --frozen python scripts/hub_yaml.py`"
        )


def _hub(connector: str) -> dict:
    return yaml.safe_load((ROOT / connector / "meltano-hub.yml").read_text(encoding="utf-8"))


def _meltano_plugin(connector: str) -> dict:
    meltano = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    return next(
        p for p in meltano["plugins"][hub_yaml.CONNECTORS[connector]] if p["name"] == connector
    )


def _settings(plugin: dict) -> list[tuple]:
    return [
        (s["name"], s.get("kind"), s.get("sensitive", False), str(s.get("options")))
        for s in plugin["settings"]
    ]


@pytest.mark.parametrize("connector", CONNECTORS)
def test_meltano_yml_uses_the_hub_definition(connector: str):
    hub, plugin = _hub(connector), _meltano_plugin(connector)
    for key in ("namespace", "executable", "capabilities", "settings_group_validation"):
        assert plugin[key] == hub[key], key
    assert _settings(plugin) == _settings(hub)
    assert plugin["settings"] == hub["settings"]


@pytest.mark.parametrize("connector", CONNECTORS)
def test_hub_definition_is_complete(connector: str):
    hub = _hub(connector)
    info = hub_yaml.about(connector)
    for key in ("name", "namespace", "label", "description", "pip_url", "executable"):
        assert hub[key], key
    assert hub["capabilities"] == sorted(info["capabilities"])
    assert [s["name"] for s in hub["settings"]] == list(info["settings"]["properties"])
    assert hub["settings_group_validation"] == [sorted(info["settings"]["required"])]
    for setting in hub["settings"]:
        assert setting["kind"], setting["name"]
        assert setting["label"], setting["name"]
        assert setting.get("description"), setting["name"]
        prop = info["settings"]["properties"][setting["name"]]
        secret = bool(prop.get("secret") or prop.get("writeOnly"))
        assert (setting["kind"] == "password") == secret, setting["name"]
        assert setting.get("sensitive", False) == secret, setting["name"]
        if setting["kind"] == "options":
            assert [o["value"] for o in setting["options"]] == prop["enum"]
    # Meltano 4.4.1 crashes on a `decimal` setting read from an environment variable.
    assert "decimal" not in {s["kind"] for s in hub["settings"]}


def test_kinds_from_the_schema():
    assert hub_yaml.setting("a", {"type": ["number", "null"]})["kind"] == "integer"
    assert hub_yaml.setting("a", {"type": ["number", "string", "null"]})["kind"] == "string"
    assert hub_yaml.setting("a", {"type": ["string"], "format": "date-time"})["kind"] == (
        "date_iso8601"
    )
    secret = hub_yaml.setting("client_secret", {"type": ["string"], "writeOnly": True})
    assert (secret["kind"], secret["sensitive"], secret["label"]) == (
        "password",
        True,
        "Client secret",
    )
    options = hub_yaml.setting("x", {"type": ["string", "null"], "enum": ["pause", "norm"]})
    assert options["options"] == [
        {"label": "Pause", "value": "pause"},
        {"label": "Normal", "value": "norm"},
    ]
    assert hub_yaml.label("daily_export_quota_mb") == "Daily export quota MB"
