"""The tap declares exactly the capabilities it has.

ACTIVATE_VERSION: singer-sdk 0.54.9 writes the message only for FULL_TABLE streams that run
through the SDK's own sync loop and only when `emit_activate_version_messages` is set, a setting
the SDK offers only to taps that add it. program_members runs its own export loop and never
writes one, so the tap neither declares `activate-version` nor offers the setting.
"""

from __future__ import annotations

from tap_marketo_members.tap import TapMarketoMembers

from .support import config_for, run_tap


def test_activate_version_is_declared_only_with_its_setting():
    capabilities = {str(c.value) for c in TapMarketoMembers.capabilities}
    settings = set(TapMarketoMembers.config_jsonschema["properties"])
    assert "activate-version" not in capabilities
    assert "emit_activate_version_messages" not in settings


def test_a_full_run_emits_no_activate_version(sb):
    run = run_tap(config_for(sb, program_ids=[1001]))
    types = {message["type"] for message in run.raw}
    assert "RECORD" in types
    assert "ACTIVATE_VERSION" not in types
