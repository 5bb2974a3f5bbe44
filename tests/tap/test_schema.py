"""The describe -> JSON Schema type map, row by row."""

import pytest
from marketo_common.fields import DATA_TYPES, OTHER
from tap_marketo_members.schema import (
    program_member_schema,
    property_schema,
    select_lead_fields,
)

ROWS = [
    # dataType, length, expected schema
    ("string", 255, {"type": ["string", "null"]}),
    ("text", 2000, {"type": ["string", "null"]}),
    ("textarea", 10, {"type": ["string", "null"]}),
    ("email", 255, {"type": ["string", "null"]}),
    ("phone", 40, {"type": ["string", "null"]}),
    ("url", 2000, {"type": ["string", "null"]}),
    ("picklist", 64, {"type": ["string", "null"]}),
    ("integer", None, {"type": ["integer", "null"]}),
    ("score", None, {"type": ["integer", "null"]}),
    ("percent", None, {"type": ["number", "null"]}),  # real instances hold decimals
    ("float", None, {"type": ["number", "null"]}),
    ("currency", None, {"type": ["number", "null"]}),
    ("boolean", None, {"type": ["boolean", "null"]}),
    ("datetime", None, {"type": ["string", "null"], "format": "date-time"}),
    ("date", None, {"type": ["string", "null"], "format": "date"}),
    ("reference", 36, {"type": ["string", "null"]}),
    ("formula_of_the_future", 12, {"type": ["string", "null"]}),
]


@pytest.mark.parametrize(("data_type", "length", "expected"), ROWS, ids=[r[0] for r in ROWS])
def test_type_map_row(data_type, length, expected):
    field = {"name": "f", "dataType": data_type}
    if length is not None:
        field["length"] = length
    assert property_schema(field) == expected


def test_every_table_row_is_covered_by_a_test():
    tested = {row[0] for row in ROWS} | {"link", "lead_function", "double", "decimal"}
    assert set(DATA_TYPES) <= tested
    assert OTHER.json_schema() == {"type": ["string", "null"]}


def test_case_insensitive_and_length_only_for_strings():
    assert property_schema({"name": "x", "dataType": "Integer", "length": 10}) == {
        "type": ["integer", "null"]
    }


def test_member_schema_keys_not_nullable_and_lead_fields_do_not_shadow():
    members = [
        {"name": "programId", "dataType": "integer"},
        {"name": "leadId", "dataType": "integer"},
        {"name": "updatedAt", "dataType": "datetime"},
        {"name": "statusName", "dataType": "string", "length": 255},
    ]
    leads = [
        {"name": "email", "dataType": "email", "length": 255},
        {"name": "updatedAt", "dataType": "string"},
    ]
    schema = program_member_schema(members, leads)
    props = schema["properties"]
    assert props["programId"]["type"] == "integer"
    assert props["leadId"]["type"] == "integer"
    assert props["updatedAt"] == {"type": ["string", "null"], "format": "date-time"}
    assert "maxLength" not in props["email"]
    assert list(props) == ["programId", "leadId", "updatedAt", "statusName", "email"]


def test_select_lead_fields_star_and_missing(caplog):
    describe = [{"name": "email"}, {"name": "firstName"}, {"name": "x"}]
    assert select_lead_fields(describe, ["*"]) == describe
    assert [f["name"] for f in select_lead_fields(describe, ["x", "nope"])] == ["x"]
    assert "nope" in caplog.text


def test_no_length_limit_from_describe_refuses_a_documented_value():
    """Marketo's describe says nurtureCadence has length 4; its documented values include
    "pause". A schema carrying maxLength 4 made target-postgres refuse every paused member."""
    field = {"name": "nurtureCadence", "dataType": "string", "length": 4}
    schema = property_schema(field)
    assert "maxLength" not in schema
