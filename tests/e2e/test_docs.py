"""Generated documentation stays generated: README settings tables and meltano.yml settings.

Each connector README carries the settings table that `--about --format=markdown` prints; the
Meltano plugin definitions declare exactly the connector's own settings (so Meltano maps an
environment variable to each) and no capability the connector lacks.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from .support import ROOT

CONNECTORS = ("tap-marketo-members", "target-marketo-ingest")
# Settings every singer-sdk connector gets; Meltano passes them through without a declaration.
SDK_BUILTIN = {
    "stream_maps",
    "stream_map_config",
    "faker_config",
    "flattening_enabled",
    "flattening_max_depth",
    "flattening_max_key_length",
    "flattening_separator",
    "batch_config",
}


def about(connector: str, fmt: str) -> str:
    """What the installed connector says about itself."""
    proc = subprocess.run(
        [str(ROOT / ".venv" / "bin" / connector), "--about", f"--format={fmt}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return proc.stdout


def settings_table(markdown: str) -> list[str]:
    """The lines of the first table under `## Settings`."""
    lines = markdown.splitlines()
    start = lines.index("## Settings")
    table = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            table.append(line.rstrip())
        elif table:
            break
    assert table, "no settings table"
    return table


@pytest.mark.parametrize("connector", CONNECTORS)
def test_readme_settings_table_is_the_generated_one(connector: str) -> None:
    generated = settings_table(about(connector, "markdown"))
    readme = (ROOT / connector / "README.md").read_text(encoding="utf-8")
    documented = settings_table(readme)
    assert documented == generated, (
        f"{connector}/README.md's settings table differs from "
        f"`{connector} --about --format=markdown`; replace it with:\n" + "\n".join(generated)
    )


@pytest.mark.parametrize("connector", CONNECTORS)
def test_meltano_yml_declares_exactly_the_connector_settings(connector: str) -> None:
    info = json.loads(about(connector, "json"))
    own = set(info["settings"]["properties"]) - SDK_BUILTIN
    meltano = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    plugin = next(
        p
        for kind in ("extractors", "loaders")
        for p in meltano["plugins"][kind]
        if p["name"] == connector
    )
    declared = {s["name"] for s in plugin["settings"]}
    every = set(info["settings"]["properties"])
    # An SDK setting may be declared too (batch_config is, so Meltano maps its variable).
    assert own <= declared <= every, {"missing": own - declared, "not a setting": declared - every}
    assert set(plugin["capabilities"]) <= set(info["capabilities"])
    secret = {
        name
        for name, prop in info["settings"]["properties"].items()
        if prop.get("secret") or prop.get("writeOnly")
    }
    kinds = {s["name"]: s.get("kind") for s in plugin["settings"]}
    assert secret, "the connector marks no setting secret"
    assert all(kinds[name] == "password" for name in secret), secret
