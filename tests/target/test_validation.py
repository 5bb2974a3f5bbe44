"""Per-field checks: schema types, Marketo types, lengths, key fields, unknown fields."""

from __future__ import annotations

import csv
import decimal
import io

import pytest
from target_marketo_ingest.bulk_import import CsvRenderer
from target_marketo_ingest.errors import InputError
from target_marketo_ingest.validation import (
    FieldSpec,
    RecordRejected,
    build_validator,
    parse_describe,
)

DESCRIBE = {
    "email": FieldSpec("email", "email", 255),
    "firstName": FieldSpec("firstName", "string", 10),
    "score": FieldSpec("score", "integer"),
    "revenue": FieldSpec("revenue", "currency"),
    "vip": FieldSpec("vip", "boolean"),
    "seen": FieldSpec("seen", "datetime"),
    "id": FieldSpec("id", "integer", updateable=False),
}
SCHEMA = {
    "properties": {
        "email": {"type": ["string", "null"]},
        "firstName": {"type": ["string", "null"]},
        "score": {"type": ["integer", "string", "null"]},
        "revenue": {"type": ["number", "null"]},
        "vip": {"anyOf": [{"type": "boolean"}, {"type": "string"}, {"type": "null"}]},
        "seen": {"type": ["string", "null"], "format": "date-time"},
        "id": {"type": ["integer", "null"]},
        "_sdc_extracted_at": {"type": ["string", "null"]},
    }
}


def _validator(csv_mode=True, **kw):
    args = {
        "stream": "leads",
        "schema": SCHEMA,
        "describe": DESCRIBE,
        "field_map": {},
        "control": set(),
        "required": ["email"],
        "unknown_fields": "error",
        "csv": csv_mode,
    }
    args.update(kw)
    return build_validator(**args)


def test_columns_skip_read_only_and_metadata():
    assert _validator().header == ["email", "firstName", "score", "revenue", "vip", "seen"]


def test_row_conversion_and_coercion():
    row = _validator().to_row(
        {
            "email": "a@b.c",
            "firstName": None,
            "score": "12",
            "revenue": decimal.Decimal("10.50"),
            "vip": "FALSE",
            "seen": "2026-01-01T00:00:00Z",
            "id": 5,
            "_sdc_extracted_at": "x",
        }
    )
    assert row == ["a@b.c", "", "12", "10.50", "false", "2026-01-01T00:00:00Z"]


def test_decimal_numbers_take_the_converter_free_row_path():
    """The SDK's decoder reads `10.50` as a Decimal: such rows must not need the converters."""
    validator = _validator()
    record = {
        "email": "a@b.c",
        "firstName": "Ann",
        "score": 3,
        "revenue": decimal.Decimal("10.50"),
        "vip": True,
        "seen": None,
    }
    converted = validator._convert_each(tuple(record.values()))

    def no_converters(values):
        raise AssertionError("a plain row went through the per-field converters")

    validator._convert_each = no_converters
    assert validator.to_row(record) == converted == ["a@b.c", "Ann", "3", "10.50", "true", ""]


def test_json_objects_keep_types_and_only_present_keys():
    obj = _validator(csv_mode=False).to_object({"email": "a@b.c", "score": "7", "vip": True})
    assert obj == {"email": "a@b.c", "score": 7, "vip": True}


@pytest.mark.parametrize(
    ("change", "reason", "field"),
    [
        ({"firstName": "x" * 11}, "too_long", "firstName"),
        ({"score": "seven"}, "type", "score"),
        ({"score": 1.5}, "schema_mismatch", "score"),
        ({"revenue": "cheap"}, "schema_mismatch", "revenue"),
        ({"vip": "maybe"}, "type", "vip"),
        ({"seen": 20260101}, "schema_mismatch", "seen"),
        ({"email": ""}, "missing_key_field", "email"),
        ({"email": None}, "missing_key_field", "email"),
        ({"nickname": "Bo"}, "unknown_field", "nickname"),
    ],
)
def test_bad_values_are_rejected_with_reason_and_field(change, reason, field):
    record = {"email": "a@b.c", **change}
    for convert in (_validator().to_row, _validator(csv_mode=False).to_object):
        with pytest.raises(RecordRejected) as info:
            convert(record)
        assert info.value.reason == reason
        assert info.value.field == field


def test_unknown_record_keys_dropped_when_asked():
    validator = _validator(unknown_fields="drop")
    assert validator.to_row({"email": "a@b.c", "nickname": "Bo"})[0] == "a@b.c"
    assert validator.dropped_unknown == {"nickname"}


def test_unknown_schema_field_is_an_error_naming_stream_and_field():
    schema = {"properties": {**SCHEMA["properties"], "shoeSize": {"type": "integer"}}}
    with pytest.raises(InputError, match="stream 'leads', field 'shoeSize'"):
        _validator(schema=schema)
    assert "shoeSize" not in _validator(schema=schema, unknown_fields="drop").header


def test_missing_key_field_in_schema_is_an_error():
    schema = {"properties": {"firstName": {"type": "string"}}}
    with pytest.raises(InputError, match="stream 'leads', field 'email'"):
        _validator(schema=schema, describe=None)


def test_field_map_renames():
    schema = {"properties": {"mail": {"type": "string"}}}
    validator = _validator(schema=schema, field_map={"mail": "email"})
    assert validator.header == ["email"]
    assert validator.to_row({"mail": "x@y.z"}) == ["x@y.z"]


def test_describe_shapes():
    nested = parse_describe([{"fields": [{"name": "a", "dataType": "string", "length": 5}]}])
    flat = parse_describe([{"name": "a", "dataType": "String", "length": "5"}])
    rest = parse_describe([{"rest": {"name": "a", "readOnly": True}, "dataType": "string"}])
    assert nested["a"] == flat["a"] == FieldSpec("a", "string", 5)
    assert rest["a"].updateable is False


def test_csv_escaping_round_trip():
    values = [
        "plain",
        "comma, inside",
        'quote " inside',
        "new\nline",
        "carriage\r\nreturn",
        "unicodé ✓ 😀",
        "",
        " leading space",
        "line\u2028separator",
    ]
    renderer = CsvRenderer()
    text = renderer.render(["h"]) + "".join(renderer.render([v]) for v in values)
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert [r[0] if r else "" for r in rows[1:]] == values


@pytest.mark.parametrize("csv_mode", [True, False])
@pytest.mark.parametrize("bad", ["soak-bad-7", "@example.com", "nobody@"])
def test_an_email_field_refuses_text_that_cannot_be_an_address(csv_mode, bad):
    """Caught here, not by Marketo: in Data Ingestion one such object fails its whole request."""
    validator = _validator(csv_mode)
    convert = validator.to_row if csv_mode else validator.to_object
    with pytest.raises(RecordRejected) as info:
        convert({"email": bad, "firstName": "A"})
    assert info.value.reason == "type"
    assert info.value.field == "email"
    assert repr(bad) in info.value.message
    assert convert({"email": "a@b", "firstName": "A"})  # anything with text around an @ passes
