"""Settings: defaults, normalisation and one-line errors naming the setting."""

import datetime as dt
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from marketo_common import ConfigError
from tap_marketo_members.settings import TapSettings
from tap_marketo_members.tap import TapMarketoMembers

BASE = {"client_id": "id", "client_secret": "s3cr3t-value", "base_url": "http://localhost:1"}


def test_defaults():
    s = TapSettings.from_config({})
    assert s.window_days == 31
    assert s.max_concurrent_exports == 2
    assert s.poll_interval_seconds == 60
    assert s.lead_fields == ("email", "firstName", "lastName", "company")
    assert s.updated_at_filter == "auto"
    assert s.rest_fallback == "auto"
    assert s.plan_only is False


def test_normalises():
    s = TapSettings.from_config(
        {
            "start_date": "2024-01-02T03:04:05.678+02:00",
            "program_ids": ["1001", 1002, 1001],
            "lead_fields": "email, firstName",
            "poll_interval_seconds": 0.5,
            "updated_at_filter": "OFF",
        }
    )
    assert s.start_date == dt.datetime(2024, 1, 2, 1, 4, 5, tzinfo=dt.timezone.utc)
    assert s.program_ids == (1001, 1002)
    assert s.lead_fields == ("email", "firstName")
    assert s.poll_interval_seconds == 0.5
    assert s.updated_at_filter == "off"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("window_days", 45),
        ("window_days", 1.5),
        ("max_concurrent_exports", 3),
        ("poll_interval_seconds", 0),
        ("poll_interval_seconds", "fast"),
        ("updated_at_filter", "sometimes"),
        ("rest_fallback", True),
        ("program_ids", ["abc"]),
        ("program_ids", 1001),
        ("lead_fields", ["*", "email"]),
        ("start_date", "yesterday"),
        ("job_timeout_minutes", -1),
        ("daily_export_quota_mb", 0),
        ("status_names", "Registered"),
        ("status_names", ["Registered", ""]),
        ("is_exhausted", "yes"),
        ("nurture_cadence", "fast"),
        ("plan_only", "yes"),
    ],
)
def test_bad_setting_names_itself(key, value):
    with pytest.raises(ConfigError) as info:
        TapSettings.from_config({key: value})
    assert key in str(info.value)
    assert "\n" not in str(info.value)


def test_member_filters_normalised_and_fingerprinted():
    s = TapSettings.from_config(
        {"status_names": ["Registered", " attended ", "registered"], "nurture_cadence": "PAUSE"}
    )
    assert s.member_filter.export_filter() == {
        "statusNames": ["Registered", "attended"],
        "nurtureCadence": "pause",
    }
    assert s.member_filter.fingerprint == "statusNames=attended|registered;nurtureCadence=pause"
    other = TapSettings.from_config(
        {"status_names": ["attended", "Registered"], "is_exhausted": False}
    )
    assert other.member_filter.export_filter()["isExhausted"] is False
    assert other.member_filter.fingerprint != s.member_filter.fingerprint
    assert TapSettings.from_config({}).member_filter.fingerprint is None


def test_cli_bad_setting_one_line_no_traceback(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**BASE, "window_days": 45}))
    proc = subprocess.run(
        [sys.executable, "-m", "tap_marketo_members.tap", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    assert "window_days" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "s3cr3t-value" not in proc.stderr + proc.stdout


def test_rest_always_needs_start_date():
    tap = TapMarketoMembers(
        config={**BASE, "rest_fallback": "always"}, validate_config=False, setup_mapper=False
    )
    with pytest.raises(ConfigError, match="start_date"):
        tap.validate_settings(dict(tap.config))


def test_about_documents_every_setting():
    result = CliRunner().invoke(TapMarketoMembers.cli, ["--about", "--format=json"])
    assert result.exit_code == 0, result.output
    about = json.loads(result.stdout)
    props = about["settings"]["properties"]
    for name in (
        "client_id",
        "client_secret",
        "base_url",
        "start_date",
        "program_ids",
        "lead_fields",
        "updated_at_filter",
        "window_days",
        "max_concurrent_exports",
        "poll_interval_seconds",
        "job_timeout_minutes",
        "daily_export_quota_mb",
        "rest_fallback",
        "rest_fallback_max_members",
        "status_names",
        "is_exhausted",
        "nurture_cadence",
        "plan_only",
    ):
        assert props[name].get("description"), name
    # the extract filters carry Marketo's names and values
    assert "statusNames" in props["status_names"]["description"]
    assert "isExhausted" in props["is_exhausted"]["description"]
    assert "nurtureCadence" in props["nurture_cadence"]["description"]
    assert props["nurture_cadence"]["enum"] == ["pause", "norm"]
    assert props["client_secret"].get("secret") is True
    assert "1035" in props["updated_at_filter"]["description"]
