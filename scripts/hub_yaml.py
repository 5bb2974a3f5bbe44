"""Meltano Hub plugin definitions, generated from each connector's own `--about --format=json`.

    uv run --frozen python scripts/hub_yaml.py          # rewrite the files
    uv run --frozen python scripts/hub_yaml.py --check  # exit 1 when a file is out of date

Writes `<connector>/meltano-hub.yml` (the YAML a Meltano Hub entry needs) and the same
definition into meltano.yml, between the `# BEGIN generated` and `# END generated` lines of
each connector (meltano.yml installs from the local folders instead of the published package;
everything else is equal). tests/e2e/test_hub_yaml.py fails when either is stale.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CONNECTORS = {
    "tap-marketo-members": "extractors",
    "target-marketo-ingest": "loaders",
}
# meltano.yml installs the workspace folders; the Hub entry the published package.
LOCAL_PIP_URL = {
    "tap-marketo-members": "-e ./marketo-common -e ./tap-marketo-members",
    "target-marketo-ingest": "-e ./marketo-common -e ./target-marketo-ingest",
}
# Words written in capitals in labels.
ACRONYMS = {
    "rest": "REST",
    "id": "ID",
    "ids": "IDs",
    "url": "URL",
    "mb": "MB",
    "api": "API",
    "jsonl": "JSONL",
}
PLUGIN_LABELS = {
    "tap-marketo-members": "Marketo Program Members",
    "target-marketo-ingest": "Marketo Ingest",
}
OPTION_LABELS = {"norm": "Normal"}
# JSON schema type -> Meltano setting kind. `number` is `integer`: Meltano 4.4.1 casts a
# `decimal` setting read from an environment variable to Decimal, which it then cannot write to
# the connector's config JSON (the run crashes); whole numbers cover every documented use, and a
# fraction written in meltano.yml itself still reaches the connector as a number.
KINDS = {
    "string": "string",
    "integer": "integer",
    "number": "integer",
    "boolean": "boolean",
    "array": "array",
    "object": "object",
}


def about(connector: str) -> dict[str, Any]:
    """The installed connector's `--about --format=json`."""
    proc = subprocess.run(  # noqa: S603 - our own executable in the workspace venv
        [str(ROOT / ".venv" / "bin" / connector), "--about", "--format=json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(proc.stdout)


def label(name: str) -> str:
    """`daily_export_quota_mb` -> `Daily export quota MB`."""
    words = [ACRONYMS.get(word, word) for word in name.split("_")]
    words[0] = words[0][:1].upper() + words[0][1:]
    return " ".join(words)


def setting(name: str, prop: dict[str, Any]) -> dict[str, Any]:
    """One Meltano setting definition from one JSON schema property."""
    types = prop.get("type", [])
    types = [types] if isinstance(types, str) else [t for t in types if t != "null"]
    entry: dict[str, Any] = {"name": name, "label": prop.get("title") or label(name)}
    if prop.get("secret") or prop.get("writeOnly"):
        entry |= {"kind": "password", "sensitive": True}
    elif prop.get("enum"):
        entry["kind"] = "options"
        entry["options"] = [
            {"label": OPTION_LABELS.get(value, str(value).capitalize()), "value": value}
            for value in prop["enum"]
            if value is not None
        ]
    elif types == ["string"] and prop.get("format") == "date-time":
        entry["kind"] = "date_iso8601"
    elif len(types) == 1 and types[0] in KINDS:
        entry["kind"] = KINDS[types[0]]
    else:
        # Several types (e.g. a count or a fraction or text): the connector parses the text.
        entry["kind"] = "string"
    if prop.get("description"):
        entry["description"] = prop["description"]
    return entry


def definition(info: dict[str, Any]) -> dict[str, Any]:
    """The Meltano Hub plugin definition of one connector."""
    name = info["name"]
    schema = info["settings"]
    return {
        "name": name,
        "namespace": name.replace("-", "_"),
        "label": PLUGIN_LABELS[name],
        "description": info["description"],
        "pip_url": name,
        "executable": name,
        "capabilities": sorted(info["capabilities"]),
        "settings_group_validation": [sorted(schema.get("required", []))],
        "settings": [setting(key, prop) for key, prop in schema["properties"].items()],
    }


def meltano_definition(hub: dict[str, Any]) -> dict[str, Any]:
    """The meltano.yml plugin entry: the Hub definition installed from the local folders."""
    keep = ("name", "namespace", "pip_url", "executable", "capabilities")
    entry = {key: hub[key] for key in keep}
    entry["pip_url"] = LOCAL_PIP_URL[hub["name"]]
    entry["settings_group_validation"] = hub["settings_group_validation"]
    entry["settings"] = hub["settings"]
    return entry


class _IndentedDumper(yaml.SafeDumper):
    """Indents list items under their key, as meltano.yml is written."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:  # noqa: ARG002
        super().increase_indent(flow, indentless=False)


def dump(data: Any) -> str:
    """Stable YAML text."""
    return yaml.dump(data, Dumper=_IndentedDumper, sort_keys=False, width=96, allow_unicode=True)


def hub_text(hub: dict[str, Any]) -> str:
    """The content of `<connector>/meltano-hub.yml`."""
    header = (
        f"# Generated by scripts/hub_yaml.py from `{hub['name']} --about --format=json`;"
        " do not edit.\n"
    )
    return header + dump(hub)


def meltano_block(hub: dict[str, Any]) -> list[str]:
    """The marked lines of meltano.yml for one connector (list item under extractors/loaders)."""
    name = hub["name"]
    body = dump([meltano_definition(hub)]).splitlines()
    return [
        f"    # BEGIN generated {name} by scripts/hub_yaml.py (= {name}/meltano-hub.yml)",
        *(f"    {line}" for line in body),
        f"    # END generated {name}",
    ]


def with_block(text: str, hub: dict[str, Any]) -> str:
    """meltano.yml text with the connector's marked block replaced."""
    lines = text.splitlines()
    name = hub["name"]
    begin = next(
        i for i, line in enumerate(lines) if line.strip().startswith(f"# BEGIN generated {name}")
    )
    end = next(i for i, line in enumerate(lines) if line.strip() == f"# END generated {name}")
    return "\n".join([*lines[:begin], *meltano_block(hub), *lines[end + 1 :]]) + "\n"


def expected_files() -> dict[Path, str]:
    """Every generated file and the text it should have."""
    meltano_yml = ROOT / "meltano.yml"
    meltano_text = meltano_yml.read_text(encoding="utf-8")
    files = {}
    for connector in CONNECTORS:
        hub = definition(about(connector))
        files[ROOT / connector / "meltano-hub.yml"] = hub_text(hub)
        meltano_text = with_block(meltano_text, hub)
    files[meltano_yml] = meltano_text
    return files


def main(argv: list[str]) -> int:
    """Rewrite the generated files, or with --check report the stale ones."""
    check = "--check" in argv
    stale = []
    for path, text in expected_files().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path.relative_to(ROOT))
        if not check:
            path.write_text(text, encoding="utf-8")
    for path in stale:
        sys.stdout.write(f"{'stale' if check else 'wrote'}: {path}\n")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
