"""The one dataType table and describe parser both connectors read (marketo_common.fields)."""

from __future__ import annotations

import decimal

import pytest
from marketo_common.fields import (
    BOOLEAN,
    DATA_TYPES,
    DATE,
    DATETIME,
    EMAIL,
    INTEGER,
    NUMBER,
    OTHER,
    TEXT,
    FieldSpec,
    csv_bool,
    csv_int,
    field_type,
    json_number,
    parse_describe,
    type_of_schema,
    value_bool,
    value_email,
    value_int,
    value_number,
)

# Every dataType in field-types.md (and the ones Marketo's describes also use), row by row.
TABLE = {
    "string": TEXT,
    "text": TEXT,
    "textarea": TEXT,
    "email": EMAIL,
    "phone": TEXT,
    "url": TEXT,
    "link": TEXT,
    "picklist": TEXT,
    "reference": TEXT,
    "integer": INTEGER,
    "score": INTEGER,
    "lead_function": INTEGER,
    "percent": NUMBER,
    "float": NUMBER,
    "currency": NUMBER,
    "double": NUMBER,
    "decimal": NUMBER,
    "boolean": BOOLEAN,
    "datetime": DATETIME,
    "date": DATE,
}


def test_table_rows():
    assert DATA_TYPES == TABLE
    assert field_type("Currency") is NUMBER
    assert field_type("formula") is OTHER
    assert field_type(None) is OTHER


def test_email_is_text_that_must_hold_an_at_inside():
    assert EMAIL.json_schema() == TEXT.json_schema()  # the tap's catalog is unchanged
    assert EMAIL.is_text
    assert value_email("a@b") == "a@b"
    assert value_email("") == ""  # empty is Marketo's to judge
    for bad in ("plain", "@b", "a@"):
        with pytest.raises(ValueError, match="not an email address"):
            value_email(bad)


def test_percent_is_a_number_with_decimals_everywhere():
    row = field_type("percent")
    assert row.json_schema() == {"type": ["number", "null"]}
    assert row.from_csv("12.5") == 12.5
    assert row.from_csv_strict("12.5") == 12.5
    assert row.to_value("12.5") == decimal.Decimal("12.5")
    assert json_number(row.to_value("12.5")) == 12.5


@pytest.mark.parametrize(
    ("row", "schema"),
    [
        (TEXT, {"type": ["string", "null"]}),
        (INTEGER, {"type": ["integer", "null"]}),
        (NUMBER, {"type": ["number", "null"]}),
        (BOOLEAN, {"type": ["boolean", "null"]}),
        (DATETIME, {"type": ["string", "null"], "format": "date-time"}),
        (DATE, {"type": ["string", "null"], "format": "date"}),
        (OTHER, {"type": ["string", "null"]}),
    ],
)
def test_json_schema_and_its_reverse(row, schema):
    assert row.json_schema() == schema
    assert row.json_schema(nullable=False)["type"] == schema["type"][0]
    assert "maxLength" not in row.json_schema()
    expected = TEXT if row is OTHER else row
    assert type_of_schema(schema) is expected


def test_reverse_prefers_the_typed_member_of_a_union():
    assert type_of_schema({"type": ["string", "integer", "null"]}) is INTEGER
    assert type_of_schema({"type": "boolean"}) is BOOLEAN
    assert type_of_schema({}) is TEXT


def test_csv_text_to_values():
    assert INTEGER.from_csv("12") == 12
    assert INTEGER.from_csv("12.0") == 12  # some exports write whole numbers so
    with pytest.raises(ValueError):
        csv_int("1.5")
    with pytest.raises(ValueError):
        INTEGER.from_csv_strict("12.0")  # the strict one sends the row to the tolerant path
    assert csv_bool(" TRUE ") is True
    assert BOOLEAN.from_csv_strict("false") is False
    with pytest.raises(KeyError):
        BOOLEAN.from_csv_strict("yes")
    with pytest.raises(ValueError):
        csv_bool("yes")
    for row in (TEXT, DATETIME, DATE, OTHER):
        assert row.from_csv is None  # kept as Marketo wrote it


def test_values_to_marketo():
    assert value_int(" 7 ") == 7
    assert value_int(decimal.Decimal(3)) == 3
    for bad in (True, 1.5, "seven", None):
        with pytest.raises(ValueError, match="expected an integer"):
            value_int(bad)
    assert value_number("10.50") == decimal.Decimal("10.50")
    assert value_number(3) == 3
    with pytest.raises(ValueError, match="expected a number"):
        value_number("cheap")
    assert value_bool("Yes") is True
    assert value_bool(0) is False
    assert value_bool("null") is None
    with pytest.raises(ValueError, match="expected a boolean"):
        value_bool("maybe")
    assert json_number(decimal.Decimal("4.0")) == 4
    assert type(json_number(decimal.Decimal("4.0"))) is int
    assert (INTEGER.native, BOOLEAN.native, TEXT.native, NUMBER.native) == (int, bool, str, None)


def test_every_describe_shape_reads_the_same():
    field = {"name": "a", "displayName": "A", "dataType": "String", "length": "5"}
    describe2 = [{"name": "API Lead", "fields": [field]}]  # leads describe2, members, companies
    flat = [field]  # /schema/fields pages and custom objects flattened
    assert parse_describe(describe2) == parse_describe(flat)
    assert parse_describe(flat)["a"] == FieldSpec("a", "string", 5, True, "A")
    v1 = [{"displayName": "A", "dataType": "string", "rest": {"name": "a", "readOnly": True}}]
    assert parse_describe(v1)["a"].updateable is False
    fields_api = [{"name": "c", "dataType": "percent", "isCustom": True, "length": None}]
    spec = parse_describe(fields_api)["c"]
    assert (spec.is_custom, spec.length, spec.type) == (True, None, NUMBER)
    assert parse_describe([{"dataType": "string"}, "junk", None]) == {}
    assert list(parse_describe([{"name": "b"}, {"name": "a"}])) == ["b", "a"]
