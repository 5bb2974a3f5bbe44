"""Setting declarations: one per setting, giving both the JSON Schema and the validation."""

from __future__ import annotations

import datetime as dt

import pytest
from marketo_common import ConfigError
from marketo_common.declarations import Setting, to_jsonschema, validate

DAYS = Setting("window_days", int, default=31, minimum=1, maximum=31, description="Days.")
MODE = Setting("mode", str, default="auto", choices=("auto", "on", "off"))
SECRET = Setting("client_secret", str, required=True, secret=True)
SINCE = Setting("since", dt.datetime, parse=dt.datetime.fromisoformat)
IDS = Setting("ids", list[int])


def test_schema_has_the_sdk_shape():
    schema = to_jsonschema([DAYS, MODE, SECRET, SINCE, IDS])
    props = schema["properties"]
    assert list(props) == ["window_days", "mode", "client_secret", "since", "ids"]
    assert props["window_days"] == {
        "type": ["integer", "null"],
        "default": 31,
        "description": "Days.",
    }
    assert props["mode"]["enum"] == ["auto", "on", "off"]
    assert props["client_secret"] == {"type": ["string"], "secret": True, "writeOnly": True}
    assert props["since"]["format"] == "date-time"
    assert props["ids"]["items"] == {"type": ["integer"]}
    assert schema["required"] == ["client_secret"]


def test_validate_fills_defaults_and_normalises():
    values = validate(
        {"client_secret": " s ", "mode": "ON", "window_days": "7"}, [DAYS, MODE, SECRET]
    )
    assert values == {"window_days": 7, "mode": "on", "client_secret": "s"}
    assert validate({"client_secret": "s"}, [DAYS])["window_days"] == 31


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        (DAYS, 45, "expected an integer from 1 to 31, got 45"),
        (DAYS, 1.5, "expected an integer from 1 to 31, got 1.5"),
        (DAYS, True, "expected an integer from 1 to 31, got True"),
        (DAYS, float("nan"), "expected an integer from 1 to 31"),
        (MODE, "sometimes", "expected one of auto, on, off, got 'sometimes'"),
        (SINCE, "yesterday", "Invalid isoformat"),
    ],
)
def test_bad_value_is_one_line_naming_the_setting(setting, value, expected):
    with pytest.raises(ConfigError) as info:
        validate({setting.name: value}, [setting])
    assert info.value.setting == setting.name
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_secret_is_required_and_never_echoed():
    with pytest.raises(ConfigError, match="client_secret"):
        validate({}, [SECRET])
    with pytest.raises(ConfigError) as info:
        validate({"client_secret": ["hunter2"]}, [SECRET])
    assert "hunter2" not in str(info.value)


def test_unsupported_type_is_refused_when_declared():
    with pytest.raises(TypeError):
        Setting("x", dict)


def _routes(value):
    if not isinstance(value, dict):
        raise ValueError("an object of name -> options")  # noqa: TRY004 (the parse contract)
    for key, options in value.items():
        if "method" not in options:
            raise ConfigError(
                f"routes.{key}.method", "required", message=f"routes.{key}.method: required"
            )
    return value


ROUTES = Setting(
    "routes",
    dict,
    parse=_routes,
    schema_extra={"additionalProperties": {"type": "object"}},
    description="Routes.",
)


def test_object_setting_gives_its_shape_and_its_check():
    prop = to_jsonschema([ROUTES])["properties"]["routes"]
    assert prop == {
        "type": ["object", "null"],
        "description": "Routes.",
        "additionalProperties": {"type": "object"},
    }
    assert validate({"routes": {"a": {"method": "m"}}}, [ROUTES]) == {
        "routes": {"a": {"method": "m"}}
    }
    assert validate({}, [ROUTES]) == {"routes": None}
    with pytest.raises(ConfigError) as info:
        validate({"routes": ["a"]}, [ROUTES])
    assert str(info.value) == "Invalid setting 'routes': expected an object of name -> options"
    # A parse may name a nested setting itself; its line is kept as it is.
    with pytest.raises(ConfigError) as info:
        validate({"routes": {"a": {}}}, [ROUTES])
    assert (info.value.setting, str(info.value)) == ("routes.a.method", "routes.a.method: required")


def test_schema_extra_adds_keywords_and_object_needs_its_shape():
    capped = Setting("mb", float, default=10, schema_extra={"maximum": 10})
    assert to_jsonschema([capped])["properties"]["mb"]["maximum"] == 10
    with pytest.raises(TypeError):
        Setting("x", dict, parse=dict)
