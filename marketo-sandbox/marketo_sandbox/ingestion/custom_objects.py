"""Data Ingestion Custom Objects: `POST /subscriptions/{munchkinId}/customobjects/{apiName}`.

The sandbox knows the custom object types of option `custom_object_types` (apiName →
{"dedupeFields": [...], "fields": {name: dataType}, "linkField"?: name}), by default the seed's
`purchases` example (dedupe on `vin`, linked to a person by `email`; a type with an `email`
field links by it unless `linkField` says otherwise). The body takes `priority`, `dedupeBy` and
`customObjects` only (the page's table); `dedupeBy` is dedupeFields (default) or marketoGUID
(case-insensitive, assumed); with marketoGUID each record needs `marketoGUID` and updates that
record. Unknown apiName → 404 404040.

After the 202 (the page): a record whose linked person does not exist is retried on the
service's retry intervals (5, then 15, 20, 20 minutes) and fails once the 65-minute window is
over; an unknown marketoGUID fails at once (assumed). Failures are recorded with the request id.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import orjson

from marketo_sandbox.ingestion.common import (
    IngestionError,
    bad_request,
    check_keys,
    check_priority,
    coerce_record,
    dedupe_by,
    dumps,
    invalid_data,
    merge_data,
    object_list,
)
from marketo_sandbox.ingestion.tables import dump_rows
from marketo_sandbox.jobs import fetch_all
from marketo_sandbox.state import state_of

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


_SELECT = "SELECT rowid AS seq_key, * FROM custom_objects WHERE api_name = ? AND "
_PAGE = " IN (SELECT value FROM json_each(?)) AND rowid > ? ORDER BY rowid LIMIT ?"
_QUERY_GUID = _SELECT + "marketo_guid" + _PAGE
_QUERY_DATA = _SELECT + "json_extract(data, ?)" + _PAGE


def object_types(request: Request) -> dict[str, dict[str, Any]]:
    """Known custom object types: the defaults plus option `custom_object_types`."""
    extra = state_of(request).options.get("custom_object_types") or {}
    return {**DEFAULT_TYPES, **extra}


def validate(request: Request, body: dict) -> tuple[str, dict, int]:
    """Check dedupeBy and each record against the type's fields."""
    api_name = request.path_params["apiName"]
    spec = object_types(request).get(api_name)
    if spec is None:
        raise IngestionError(404, "404040", f"Custom object '{api_name}' not found")
    check_keys(body, ("priority", "dedupeBy", "customObjects"))
    check_priority(body)
    by_id = dedupe_by(body, ("dedupeFields", "marketoGUID")) == "marketoGUID"
    if "customObjects" not in body:
        raise bad_request("customObjects is required")
    records = object_list(body["customObjects"], "customObjects")
    fields: dict[str, str] = {**spec["fields"], "marketoGUID": "string"}
    keys: list[str] = ["marketoGUID"] if by_id else list(spec["dedupeFields"])
    clean = []
    for index, record in enumerate(records):
        row = coerce_record(
            index, record, fields, "a custom object", f" for custom object {api_name}"
        )
        missing = [k for k in keys if row.get(k) in (None, "")]
        if missing:
            raise invalid_data(index, f"missing dedupe field '{missing[0]}'")
        clean.append(row)
    plan = {
        "apiName": api_name,
        "byId": by_id,
        "keys": keys,
        "link": link_field(spec),
        "records": clean,
        "indices": list(range(len(clean))),
    }
    return "custom_objects", plan, len(clean)


def link_field(spec: dict[str, Any]) -> str | None:
    """The field linking a record to a person by email, if the type has one."""
    if "linkField" in spec:
        return spec["linkField"]
    return "email" if "email" in (spec.get("fields") or {}) else None


def apply(store: Any, plan: dict) -> tuple[list[tuple[int, str]], list[int]]:
    """Insert or update by dedupe key (or update by marketoGUID).

    Returns (failed (index, reason), indices of records waiting for their linked person).
    """
    now = store.clock.now_iso()
    api_name, keys, link = plan["apiName"], plan["keys"], plan.get("link")
    problems: list[tuple[int, str]] = []
    waiting: list[int] = []
    with store.db.tx() as conn:
        for index, row in zip(plan["indices"], plan["records"], strict=True):
            person = row.get(link) if link else None
            if (
                person
                and not conn.execute(
                    "SELECT 1 FROM leads WHERE email = ? LIMIT 1", (person,)
                ).fetchone()
            ):
                waiting.append(index)
                continue
            values = {k: v for k, v in row.items() if k != "marketoGUID"}
            if plan["byId"]:
                found = conn.execute(
                    "SELECT marketo_guid, data FROM custom_objects "
                    "WHERE api_name = ? AND marketo_guid = ?",
                    (api_name, row["marketoGUID"]),
                ).fetchone()
                if found is None:
                    problems.append((index, f"{api_name} {row['marketoGUID']} not found"))
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
            merge_data(conn, "custom_objects", found, values, now=now)
    return problems, waiting


def dump(store: Any) -> list[dict]:
    """Admin dump `custom_objects`."""
    return dump_rows(
        store,
        "SELECT * FROM custom_objects ORDER BY api_name, created_at",
        lambda r: {"apiName": r["api_name"], "marketoGUID": r["marketo_guid"]},
    )


def query(
    store: Any, api_name: str, field: str, values: list, *, after: int, limit: int
) -> list[dict]:
    """Records of `api_name` whose `field` is one of `values`, in rowid order after `after`."""
    listed = orjson.dumps(list(values)).decode()
    if field == "marketoGUID":
        sql, params = _QUERY_GUID, (api_name, listed, after, limit)
    else:  # field: a known type field
        sql, params = _QUERY_DATA, (api_name, f"$.{field}", listed, after, limit)
    with store.db.tx() as conn:
        rows = fetch_all(conn, sql, params)
    return [
        {
            "rowid": r["seq_key"],
            "marketoGUID": r["marketo_guid"],
            **orjson.loads(r["data"]),
            "createdAt": r["created_at"],
            "updatedAt": r["updated_at"],
        }
        for r in rows
    ]
