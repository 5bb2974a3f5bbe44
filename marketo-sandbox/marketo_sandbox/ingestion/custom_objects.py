"""Data Ingestion Custom Objects: `POST /subscriptions/{munchkinId}/customobjects/{apiName}`.

The sandbox knows the custom object types of option `custom_object_types` (apiName →
{"dedupeFields": [...], "fields": {name: dataType}}), by default the seed's `purchases` example
(dedupe on `vin`, linked to a person by `email`). `dedupeBy` dedupeFields (default) | idField
(case-insensitive); with idField each record needs `marketoGUID`. Unknown apiName → 404 404040.
A record whose linked person does not exist is still stored (Marketo retries the link for
65 minutes; the sandbox does not model that window).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import orjson

from marketo_sandbox.bulk.jobs import fetch_all
from marketo_sandbox.ingestion.apply import ensure_schema
from marketo_sandbox.ingestion.common import (
    IngestionError,
    bad_request,
    check_keys,
    check_priority,
    dumps,
    invalid_data,
    object_list,
)
from marketo_sandbox.storage import coerce

if TYPE_CHECKING:
    from starlette.requests import Request

DEFAULT_TYPES: dict[str, dict[str, Any]] = {
    "purchases": {
        "dedupeFields": ["vin"],
        "fields": {
            "email": "email",
            "vin": "string",
            "make": "string",
            "model": "string",
            "year": "integer",
            "purchaseDate": "date",
            "price": "currency",
        },
    }
}


def object_types(request: Request) -> dict[str, dict[str, Any]]:
    """Known custom object types: the defaults plus option `custom_object_types`."""
    extra = request.app.state.options.get("custom_object_types") or {}
    return {**DEFAULT_TYPES, **extra}


def validate(request: Request, body: dict) -> tuple[str, dict, int]:
    """Check dedupeBy and each record against the type's fields."""
    api_name = request.path_params["apiName"]
    spec = object_types(request).get(api_name)
    if spec is None:
        raise IngestionError(404, "404040", f"Custom object '{api_name}' not found")
    check_keys(body, ("priority", "dedupeBy", "customObjects", "input"))
    check_priority(body)
    dedupe_by = body.get("dedupeBy", "dedupeFields")
    if not isinstance(dedupe_by, str) or dedupe_by.lower() not in ("dedupefields", "idfield"):
        raise bad_request(f"Invalid dedupeBy '{dedupe_by}': dedupeFields or idField")
    by_id = dedupe_by.lower() == "idfield"
    if "customObjects" in body and "input" in body:
        raise bad_request("Give only one of customObjects, input")
    records = object_list(body.get("customObjects", body.get("input")), "customObjects")
    fields: dict[str, str] = {**spec["fields"], "marketoGUID": "string"}
    keys: list[str] = ["marketoGUID"] if by_id else list(spec["dedupeFields"])
    clean = []
    for index, record in enumerate(records):
        if not isinstance(record, dict) or not record:
            raise invalid_data(index, "a custom object must be a non-empty object")
        row = {}
        for name, value in record.items():
            kind = fields.get(name)
            if kind is None:
                raise invalid_data(index, f"unknown field '{name}' for custom object {api_name}")
            try:
                row[name] = coerce(kind, value)
            except (ValueError, TypeError):
                raise invalid_data(index, f"invalid value for field '{name}' ({kind})") from None
        missing = [k for k in keys if row.get(k) in (None, "")]
        if missing:
            raise invalid_data(index, f"missing dedupe field '{missing[0]}'")
        clean.append(row)
    plan = {"apiName": api_name, "byId": by_id, "keys": keys, "records": clean}
    return "custom_objects", plan, len(clean)


def apply(store: Any, plan: dict) -> list[str]:
    """Insert or update by dedupe key (or update by marketoGUID)."""
    now = store.clock.now_iso()
    api_name, keys = plan["apiName"], plan["keys"]
    problems = []
    with store.tx() as conn:
        for row in plan["records"]:
            values = {k: v for k, v in row.items() if k != "marketoGUID"}
            if plan["byId"]:
                found = conn.execute(
                    "SELECT marketo_guid, data FROM custom_objects "
                    "WHERE api_name = ? AND marketo_guid = ?",
                    (api_name, row["marketoGUID"]),
                ).fetchone()
                if found is None:
                    problems.append(f"{api_name} {row['marketoGUID']} not found")
                    continue
            else:
                dedupe_key = dumps([row[k] for k in keys])
                found = conn.execute(
                    "SELECT marketo_guid, data FROM custom_objects "
                    "WHERE api_name = ? AND dedupe_key = ?",
                    (api_name, dedupe_key),
                ).fetchone()
                if found is None:
                    conn.execute(
                        "INSERT INTO custom_objects VALUES (?, ?, ?, ?, ?, ?)",
                        (str(uuid.uuid4()), api_name, dedupe_key, dumps(values), now, now),
                    )
                    continue
            data = orjson.loads(found[1])
            data.update(values)
            conn.execute(
                "UPDATE custom_objects SET data = ?, updated_at = ? WHERE marketo_guid = ?",
                (dumps(data), now, found[0]),
            )
    return problems


def dump(store: Any) -> list[dict]:
    """Admin dump `custom_objects`."""
    ensure_schema(store)
    with store.tx() as conn:
        rows = fetch_all(conn, "SELECT * FROM custom_objects ORDER BY api_name, created_at")
    return [
        {
            "apiName": r["api_name"],
            "marketoGUID": r["marketo_guid"],
            **orjson.loads(r["data"]),
            "createdAt": r["created_at"],
            "updatedAt": r["updated_at"],
        }
        for r in rows
    ]
