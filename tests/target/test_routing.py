"""Routing: stream names and globs to write methods, defaults by name, errors naming settings."""

from __future__ import annotations

import pytest
from marketo_common import ConfigError
from target_marketo_ingest.routing import resolve_route, validate_streams_setting


@pytest.mark.parametrize(
    ("stream", "method"),
    [
        ("leads", "bulk_leads"),
        ("persons", "bulk_leads"),
        ("program_members", "bulk_program_members"),
        ("companies", "ingest_companies"),
    ],
)
def test_defaults_by_stream_name(stream, method):
    route = resolve_route(stream, None)
    assert route.method == method
    assert route.lookup_field == "email"
    assert route.program_id_field == "programId"
    assert route.status_field == "statusName"


def test_unknown_stream_has_no_route():
    assert resolve_route("widgets", {"leads": {}}) is None


def test_exact_name_wins_over_globs_and_globs_keep_order():
    streams = {
        "public-*": {"method": "ingest_persons", "dedupe_fields": ["email", "firstName"]},
        "public-members": {"method": "rest_program_members", "program_id": "1002"},
        "public-m*": {"method": "bulk_leads"},
    }
    assert resolve_route("public-members", streams).method == "rest_program_members"
    assert resolve_route("public-members", streams).program_id == 1002
    people = resolve_route("public-people", streams)
    assert people.method == "ingest_persons"
    assert people.dedupe_fields == ("email", "firstName")
    assert people.setting("priority") == "streams.public-*.priority"
    assert resolve_route("public-misc", streams).method == "ingest_persons"


def test_named_default_fills_a_mapping_without_method():
    route = resolve_route("program_members", {"program_members": {"status": "Registered"}})
    assert route.method == "bulk_program_members"
    assert route.status == "Registered"


@pytest.mark.parametrize(
    ("streams", "message"),
    [
        ({"x": {"method": "nope"}}, "streams.x.method: expected one of"),
        ({"x": {}}, "streams.x.method: required"),
        ({"x": {"method": "ingest_custom_object"}}, "streams.x.custom_object_name: required"),
        ({"x": {"method": "bulk_leads", "program": 1}}, "streams.x.program: unknown option"),
        ({"x": {"method": "bulk_leads", "list_id": "ten"}}, "streams.x.list_id: expected an"),
        ({"x": {"method": "ingest_persons", "dedupe_fields": ["a", "b", "c"]}}, "at most 2"),
        ({"x": {"method": "ingest_companies", "action": "upsert"}}, "streams.x.action"),
        (  # data-ingestion.md: custom objects dedupe by dedupeFields or marketoGUID
            {
                "x": {
                    "method": "ingest_custom_object",
                    "custom_object_name": "c",
                    "dedupe_by": "idField",
                }
            },
            "streams.x.dedupe_by",
        ),
        ({"x": {"method": "ingest_companies", "dedupe_by": "marketoGUID"}}, "streams.x.dedupe_by"),
        (  # data-ingestion.md: companies take idField only with action updateOnly
            {"x": {"method": "ingest_companies", "dedupe_by": "idField"}},
            "streams.x.dedupe_by: idField is only allowed with action updateOnly",
        ),
        (
            {"companies": {"dedupe_by": "idField", "action": "createOrUpdate"}},
            "streams.companies.dedupe_by: idField",
        ),
        (
            {"co*": {"method": "ingest_companies", "dedupe_by": "idField", "action": "createOnly"}},
            "streams.co*.dedupe_by",
        ),
        ({"x": {"method": "bulk_leads", "field_map": {"a": 1}}}, "streams.x.field_map"),
        (
            {"x": {"method": "ingest_program_members", "status": "Not in Program"}},
            "streams.x.status",
        ),
        (["leads"], "streams: expected an object"),
    ],
)
def test_bad_routes_name_the_setting(streams, message):
    with pytest.raises(ConfigError, match=None) as info:
        validate_streams_setting(streams)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_companies_by_id_field_with_update_only_is_a_valid_route():
    streams = {"companies": {"dedupe_by": "idField", "action": "updateOnly"}}
    validate_streams_setting(streams)
    route = resolve_route("companies", streams)
    assert (route.method, route.dedupe_by, route.action) == (
        "ingest_companies",
        "idField",
        "updateOnly",
    )
