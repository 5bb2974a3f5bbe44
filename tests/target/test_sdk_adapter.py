"""Pins every private singer-sdk name the target uses (all in target_marketo_ingest/sdk.py).

An SDK upgrade that renames or moves one of them fails here, not silently in a user's run.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import target_marketo_ingest
from singer_sdk.plugin_base import BaseSingerReader
from singer_sdk.target_base import Target
from target_marketo_ingest import sdk
from target_marketo_ingest.target import TargetMarketoIngest

PACKAGE = Path(target_marketo_ingest.__file__).parent


def test_each_pinned_name_exists_in_the_sdk():
    for name in sdk.SDK_NAMES:
        owner, _, attr = name.rpartition(".")
        if owner == "Target":
            if attr.startswith("_sinks"):
                # instance attributes the SDK's Target.__init__ sets
                assert f"self.{attr}" in inspect.getsource(Target.__init__), name
            else:
                assert hasattr(Target, attr), name
        else:
            assert hasattr(importlib.import_module(owner), attr), name


def test_the_sdk_reader_dispatches_through_the_hooks_the_adapter_binds():
    listen = inspect.getsource(BaseSingerReader.process_lines)
    for private, public in sdk.MESSAGE_HOOKS.items():
        assert f"self.{private}" in listen, private
        assert getattr(TargetMarketoIngest, private) is vars(TargetMarketoIngest)[public]
    assert TargetMarketoIngest._handle_termination is TargetMarketoIngest.on_termination


def test_no_other_module_names_a_private_sdk_symbol():
    offenders = []
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name == "sdk.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("singer_sdk"):
                names = [node.module, *(alias.name for alias in node.names)]
                if any(part.startswith("_") for n in names for part in n.split(".")):
                    offenders.append(f"{path.name}: from {node.module} import ...")
            if isinstance(node, ast.Attribute) and node.attr in {
                "_sinks_active",
                "_sinks_to_clear",
                "_MAX_RECORD_AGE_IN_MINUTES",
                *sdk.MESSAGE_HOOKS,
            }:
                offenders.append(f"{path.name}: .{node.attr}")
    assert offenders == []
