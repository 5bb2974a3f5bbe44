"""REST reads of companies and custom objects: what a client uses to check what Data Ingestion
applied (companies.md and custom-objects.md, "Query")."""

from __future__ import annotations

import orjson
import pytest
from sandbox_helpers import error, result
from test_bulk_support import Api

SUB = "/subscriptions/123-ABC-456"


@pytest.fixture(scope="module")
def api(fast_sandbox) -> Api:
    api = Api(fast_sandbox)
    headers = {"X-Mkto-User-Token": api.token, "Content-Type": "application/json"}

    def ingest(path: str, body: dict) -> None:
        reply = api.http.post(api.base + SUB + path, data=orjson.dumps(body), headers=headers)
        assert reply.status_code == 202, reply.text

    people = [{"email": f"owner{i}@example.com"} for i in range(3)]
    ingest("/persons", {"persons": people})
    fast_sandbox.admin.wait_ingestion()
    companies = [
        {"externalCompanyId": f"q-{i}", "company": f"Query Co {i}", "industry": "Tools"}
        for i in range(5)
    ]
    ingest("/companies", {"input": companies})
    cars = [
        {"email": f"owner{i}@example.com", "vin": f"VIN-{i}", "make": "Volvo", "year": 2000 + i}
        for i in range(3)
    ]
    ingest("/customobjects/purchases", {"customObjects": cars})
    fast_sandbox.admin.wait_ingestion()
    return api


def test_companies_by_dedupe_field_with_default_fields(api):
    rows = api.ok(
        "get", "/rest/v1/companies.json?filterType=externalCompanyId&filterValues=q-1,q-3"
    )
    assert [r["externalCompanyId"] for r in rows] == ["q-1", "q-3"]
    assert [r["seq"] for r in rows] == [0, 1]
    assert set(rows[0]) == {"seq", "id", "externalCompanyId", "createdAt", "updatedAt"}
    ids = ",".join(str(r["id"]) for r in rows)
    by_id = api.ok(
        "get", f"/rest/v1/companies.json?filterType=id&filterValues={ids}&fields=company"
    )
    assert [r["company"] for r in by_id] == ["Query Co 1", "Query Co 3"]
    assert set(by_id[0]) == {"seq", "id", "company"}


def test_companies_paging_and_refusals(api):
    values = ",".join(f"q-{i}" for i in range(5))
    first = api.get(
        f"/rest/v1/companies.json?filterType=externalCompanyId&filterValues={values}&batchSize=3"
    ).json()
    assert len(first["result"]) == 3
    assert first["moreResult"] is True
    rest = api.ok(
        "get",
        f"/rest/v1/companies.json?filterType=externalCompanyId&filterValues={values}"
        f"&batchSize=3&nextPageToken={first['nextPageToken']}",
    )
    assert [r["externalCompanyId"] for r in rest] == ["q-3", "q-4"]
    not_searchable = "/rest/v1/companies.json?filterType=industry&filterValues=Tools"
    assert error(api.get(not_searchable))[0] == "1003"
    assert error(api.get("/rest/v1/companies.json?filterValues=q-1"))[0] == "1002"
    bad_field = "/rest/v1/companies.json?filterType=id&filterValues=1&fields=shoeSize"
    assert error(api.get(bad_field))[0] == "1006"


def test_custom_objects_by_dedupe_field_and_id_field(api):
    rows = api.ok("get", "/rest/v1/customobjects/purchases.json?filterType=vin&filterValues=VIN-2")
    assert [(r["vin"], r["seq"]) for r in rows] == [("VIN-2", 0)]
    assert set(rows[0]) == {"seq", "marketoGUID", "vin", "createdAt", "updatedAt"}
    guid = rows[0]["marketoGUID"]
    by_guid = api.ok(
        "get",
        f"/rest/v1/customobjects/purchases.json?filterType=idField&filterValues={guid}"
        "&fields=marketoGUID,make,year,email",
    )
    assert by_guid == [
        {
            "seq": 0,
            "marketoGUID": guid,
            "make": "Volvo",
            "year": 2002,
            "email": "owner2@example.com",
        }
    ]


def test_custom_objects_compound_query_by_post(api):
    body = {"filterType": "dedupeFields", "fields": ["vin", "year"], "input": [{"vin": "VIN-0"}]}
    reply = api.post(
        "/rest/v1/customobjects/purchases.json?_method=GET",
        data=orjson.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    assert result(reply) == [{"seq": 0, "vin": "VIN-0", "year": 2000}]


def test_custom_object_refusals(api):
    unknown = api.get("/rest/v1/customobjects/boats.json?filterType=vin&filterValues=x")
    assert error(unknown)[0] == "1013"
    not_searchable = "/rest/v1/customobjects/purchases.json?filterType=make&filterValues=x"
    assert error(api.get(not_searchable))[0] == "1003"
