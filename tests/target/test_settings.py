"""The target's settings are declared once: schema, defaults and checks from TARGET_SETTINGS."""

from __future__ import annotations

import pytest
from marketo_common import ConfigError
from marketo_common.settings import CONNECTION_SETTINGS
from target_marketo_ingest.settings import (
    CONFIG_SCHEMA,
    TARGET_SETTINGS,
    TargetOptions,
    target_options,
)
from target_marketo_ingest.target import TargetMarketoIngest


def test_schema_is_the_declarations():
    props = CONFIG_SCHEMA["properties"]
    own = [s.name for s in TARGET_SETTINGS]
    shared = {s.name for s in CONNECTION_SETTINGS}
    # (the SDK appends its built-in settings to the class's schema once a target is built)
    declared = [name for name in props if name in shared or name in own]
    assert declared[-len(own) :] == own
    assert {"client_id", "client_secret", "base_url"} <= set(declared)
    assert props["max_import_file_mb"]["exclusiveMinimum"] == 0
    assert props["max_import_file_mb"]["maximum"] == 10
    assert props["max_concurrent_imports"]["maximum"] == 2
    assert props["verify_timeout_seconds"]["default"] == 600
    assert props["client_secret"]["secret"] is True
    stream = props["streams"]["additionalProperties"]
    assert {"verify", "mirror", "max_removals"} <= set(stream["properties"])
    assert stream["additionalProperties"] is False
    assert TargetMarketoIngest.config_jsonschema is CONFIG_SCHEMA


def test_defaults_are_written_once():
    assert target_options({}) == TargetOptions()
    options = target_options({"poll_interval_seconds": "2", "max_import_file_mb": 0.5})
    assert (options.poll_interval_seconds, options.poll_max_seconds) == (2.0, 12.0)
    assert options.max_import_bytes == 500_000
    assert target_options({"fail_on_rejects": "0.25"}).fail_on_rejects == 0.25


@pytest.mark.parametrize(
    ("config", "setting", "line"),
    [
        (
            {"poll_interval_seconds": 0},
            "poll_interval_seconds",
            "poll_interval_seconds: expected a number above 0, got 0",
        ),
        (
            {"max_concurrent_imports": 1.5},
            "max_concurrent_imports",
            "max_concurrent_imports: expected an integer >= 1 and at most 2, got 1.5",
        ),
        (
            {"unknown_fields": "ignore"},
            "unknown_fields",
            "unknown_fields: expected one of error, drop, got 'ignore'",
        ),
        (
            {"fail_on_rejects": "lots"},
            "fail_on_rejects",
            "fail_on_rejects: expected a count or a fraction >= 0, got 'lots'",
        ),
        (
            {"streams": {"x": {"method": "bulk_leads", "verify": True}}},
            "streams.x.verify",
            "streams.x.verify: only Data Ingestion methods (ingest_*) are verified",
        ),
    ],
)
def test_a_bad_setting_is_one_config_error_naming_it(config, setting, line):
    with pytest.raises(ConfigError) as info:
        target_options(config)
    assert (info.value.setting, str(info.value)) == (setting, line)
