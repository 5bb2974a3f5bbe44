"""The private singer-sdk names the tap relies on (tap_marketo_members/sdk.py) still exist and
still behave as the tap expects: an SDK upgrade that moves one fails here, not in a sync. And no
other tap module touches a private SDK name."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
import tap_marketo_members
from singer_sdk import Stream, Tap
from singer_sdk.plugin_base import PluginBase
from singer_sdk.streams._state import StreamStateManager
from tap_marketo_members import sdk
from tap_marketo_members.tap import TapMarketoMembers

from .support import config_for

BASE = {"client_id": "id", "client_secret": "s3cr3t-value", "base_url": "http://localhost:1"}
PACKAGE = Path(tap_marketo_members.__file__).parent


def test_batch_config_parses_the_standard_setting(tmp_path):
    config = sdk.BatchConfig.from_dict(
        {
            "encoding": {"format": "jsonl", "compression": "gzip"},
            "storage": {"root": tmp_path.as_uri(), "prefix": "pm-"},
            "batch_size": 7,
        }
    )
    assert config.encoding.format == "jsonl"
    assert config.encoding.compression == "gzip"
    assert config.batch_size == 7
    assert config.storage.prefix == "pm-"
    with config.storage.open("probe.json", "wb") as handle:
        handle.write(b"{}\n")
    url = config.storage.get_url("probe.json")
    assert url.startswith("file://")
    assert url.endswith("/probe.json")
    assert (tmp_path / "probe.json").read_bytes() == b"{}\n"


@pytest.mark.parametrize(
    ("owner", "name", "params"),
    [
        (Stream, "_sync_records", ["self", "context", "write_messages"]),
        (Stream, "_sync_children", ["self", "child_context"]),
        (Stream, "_write_state_message", ["self"]),
        (Stream, "_write_record_message", ["self", "record"]),
        (Stream, "_check_max_record_limit", ["self", "current_record_index"]),
        (Tap, "_validate_config", ["self", "raise_errors"]),
        (Tap, "_handle_termination", ["self", "signum", "frame"]),
        (Tap, "_set_compatible_replication_methods", ["self"]),
    ],
)
def test_overridden_and_called_sdk_methods_keep_their_signature(owner, name, params):
    method = getattr(owner, name)
    assert list(inspect.signature(method).parameters) == params


def test_sdk_calls_the_overridden_hooks():
    """The SDK still calls the private hooks the adapter overrides."""
    assert "_sync_records(" in inspect.getsource(Stream.sync)
    assert "_sync_children(" in inspect.getsource(Stream._process_record)
    assert "self._validate_config(" in inspect.getsource(PluginBase.__init__)
    assert "self._handle_termination" in inspect.getsource(PluginBase)


def test_stream_attributes_the_adapter_reads(sb):
    tap = TapMarketoMembers(config=config_for(sb))
    stream = tap.streams["programs"]
    assert sdk.stream_tap(stream) is tap
    assert stream._stream_version is None  # set by FULL_TABLE syncs, read for RECORD lines
    assert isinstance(stream.state_manager, StreamStateManager)
    stream.state_manager.is_flushed = True
    members = tap.streams["program_members"]
    members.state_changed()
    assert members.state_manager.is_flushed is False
    assert isinstance(tap._config, dict)


def test_validate_config_reports_a_bad_setting_without_raising():
    tap = TapMarketoMembers(
        config={**BASE, "rest_fallback": "always"}, validate_config=False, setup_mapper=False
    )
    assert any("start_date" in e for e in tap._validate_config(raise_errors=False))


def _sdk_private_names(config: dict) -> set[str]:
    """Underscore names of the SDK's classes and of the attributes it sets on a tap and streams.

    The tap's own classes set no underscore attribute on a tap or stream, so every one found on
    those instances is the SDK's.
    """
    tap = TapMarketoMembers(config=config)
    names: set[str] = set()
    for cls in (Stream, Tap, StreamStateManager):
        names.update(dir(cls))
    for obj in (tap, *tap.streams.values()):
        names.update(vars(obj))
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def test_no_private_sdk_name_outside_the_adapter(sb):
    private = _sdk_private_names(config_for(sb))
    assert {"_tap", "_sync_records", "_write_state_message", "_config"} <= private
    offenders = []
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name == "sdk.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in private:
                offenders.append(f"{path.name}:{node.lineno} .{node.attr}")
            module = node.module if isinstance(node, ast.ImportFrom) else None
            if module and module.startswith("singer_sdk") and "._" in module:
                offenders.append(f"{path.name}:{node.lineno} {module}")
    assert offenders == []


def _runtime_imports(path: Path) -> set[str]:
    """Modules a file imports when it runs (not under `if TYPE_CHECKING:`)."""
    found: set[str] = set()
    stack: list[ast.AST] = [ast.parse(path.read_text())]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        stack.extend(ast.iter_child_nodes(node))
    return found


def test_export_engine_knows_nothing_of_the_sdk():
    """engine.py and what it runs use no SDK class: only the SDK's metric log format."""
    seen: set[str] = set()
    todo = ["engine"]
    sdk_uses: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for module in _runtime_imports(PACKAGE / f"{name}.py"):
            if module.startswith("singer_sdk"):
                sdk_uses.add(module)
            local = module.removeprefix("tap_marketo_members.")
            if module.startswith("tap_marketo_members.") and (PACKAGE / f"{local}.py").exists():
                todo.append(local)
    assert not seen & {"sdk", "streams", "tap", "client", "writers"}
    assert {"scheduler", "parsing"} <= seen
    # The export job client and file downloader are shared with the target (marketo-common).
    engine_imports = _runtime_imports(PACKAGE / "engine.py")
    assert "marketo_common.program_member_export.ProgramMemberExports" in engine_imports
    assert "marketo_common.export_files.ExportDownloader" in engine_imports
    assert sdk_uses <= {"singer_sdk", "singer_sdk.metrics"}
