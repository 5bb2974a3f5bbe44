"""What a program member export may ask for: its filter and fields, checked as Marketo does."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import orjson

from marketo_sandbox.bulk import files
from marketo_sandbox.bulk.common import option
from marketo_sandbox.clock import parse_filter_datetime
from marketo_sandbox.envelope import MarketoHTTPError
from marketo_sandbox.repos.fields import LEAD, PROGRAM_MEMBER
from marketo_sandbox.state import state_of

if TYPE_CHECKING:
    from starlette.requests import Request

    from marketo_sandbox.storage import Store

MAX_PROGRAM_IDS = 10
MAX_RANGE_DAYS = 31
FILTERS = ("programId", "programIds", "updatedAt", "statusNames", "isExhausted", "nurtureCadence")
NURTURE_CADENCES = ("pause", "norm")


def _field_names(store: Store) -> set[str]:
    """Exportable fields: formula fields "are not exported" (field-types.md)."""
    described = [*store.fields.describe(PROGRAM_MEMBER), *store.fields.describe(LEAD)]
    return {f["name"] for f in described if f["dataType"] != "formula"}


def _program_ids(flt: dict) -> list:
    """The raw ids of programId / programIds (exactly one of them, at most 10 ids)."""
    if "programId" in flt and "programIds" in flt:
        raise MarketoHTTPError(1003, "Specify only one of programId or programIds")
    if "programId" in flt:
        return [flt["programId"]]
    if "programIds" not in flt:
        raise MarketoHTTPError(1003, "filter requires programId or programIds")
    ids = flt["programIds"]
    if not isinstance(ids, list) or not ids:
        raise MarketoHTTPError(1003, "programIds must be a non-empty array")
    if len(ids) > MAX_PROGRAM_IDS:
        raise MarketoHTTPError(
            1003, f"programIds filter accepts at most {MAX_PROGRAM_IDS} values, got {len(ids)}"
        )
    return ids


def _validate_filter(request: Request, flt: Any) -> dict:
    store = state_of(request).store
    if not isinstance(flt, dict) or not flt:
        raise MarketoHTTPError(1003, "filter is required: programId or programIds")
    unknown = [k for k in flt if k not in FILTERS]
    if unknown:
        raise MarketoHTTPError(1003, f"Invalid filter type: {unknown[0]}")
    clean: list[int] = []
    for value in _program_ids(flt):
        try:
            pid = int(value)
        except (TypeError, ValueError):
            raise MarketoHTTPError(1003, f"Invalid programId: {value!r}") from None
        if store.programs.get(pid) is None:
            raise MarketoHTTPError(1003, f"Program not found: {pid}")
        clean.append(pid)
    out: dict[str, Any] = (
        {"programId": clean[0]} if "programId" in flt else {"programIds": sorted(set(clean))}
    )
    if "updatedAt" in flt:
        if not option(request, "updated_at_filter_supported"):
            raise MarketoHTTPError(1035, "Unsupported filter type for target subscription")
        out["updatedAt"] = _validate_range(flt["updatedAt"])
    _validate_member_filters(store, flt, out)
    return out


def _validate_member_filters(store: Store, flt: dict, out: dict) -> None:
    """The extract's member filters, ANDed: isExhausted, nurtureCadence, statusNames (ORed)."""
    if "isExhausted" in flt:
        if not isinstance(flt["isExhausted"], bool):
            raise MarketoHTTPError(1003, "isExhausted filter must be a boolean")
        out["isExhausted"] = flt["isExhausted"]
    if "nurtureCadence" in flt:
        if flt["nurtureCadence"] not in NURTURE_CADENCES:
            raise MarketoHTTPError(1003, "nurtureCadence filter must be 'pause' or 'norm'")
        out["nurtureCadence"] = flt["nurtureCadence"]
    if "statusNames" in flt:
        out["statusNames"] = _validate_status_names(store, flt["statusNames"], out)


def _validate_status_names(store: Store, names: Any, flt: dict) -> list[str]:
    """A non-empty array of names; with programIds each must match a member of some program.

    The page: "If a status name is not found in any of the programs, 1003, Invalid Data".
    """
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise MarketoHTTPError(1003, "statusNames filter must be a non-empty array of strings")
    if "programIds" in flt:
        ids = flt["programIds"]
        found = {
            row[0]
            for row in store.db.conn().execute(
                "SELECT DISTINCT lower(status_name) FROM program_members "
                "WHERE program_id IN (SELECT value FROM json_each(?))",
                (orjson.dumps(list(ids)).decode(),),
            )
        }
        missing = [n for n in names if n.lower() not in found]
        if missing:
            raise MarketoHTTPError(1003, f"Invalid Data: status name not found: {missing[0]}")
    return names


def _validate_range(rng: Any) -> dict:
    if not isinstance(rng, dict) or "startAt" not in rng or "endAt" not in rng:
        raise MarketoHTTPError(1003, "updatedAt filter requires startAt and endAt")
    try:
        start = parse_filter_datetime(str(rng["startAt"]))
        end = parse_filter_datetime(str(rng["endAt"]))
    except ValueError:
        raise MarketoHTTPError(
            1003, "Invalid updatedAt date: ISO-8601 without milliseconds expected"
        ) from None
    if end < start:
        raise MarketoHTTPError(1003, "updatedAt endAt is before startAt")
    if end - start > dt.timedelta(days=MAX_RANGE_DAYS):
        raise MarketoHTTPError(
            1003, f"updatedAt filter date range exceeds maximum of {MAX_RANGE_DAYS} days"
        )
    return {"startAt": rng["startAt"], "endAt": rng["endAt"]}


def validate_spec(request: Request, body: dict) -> tuple[str, dict]:
    """A create call's (format, job spec), or Marketo's 1003 naming what is wrong."""
    fmt = files.normalise_format(body.get("format"))
    if fmt is None:
        raise MarketoHTTPError(1003, f"Invalid format: {body.get('format')!r} (CSV, TSV or SSV)")
    fields = body.get("fields")
    if not isinstance(fields, list) or not fields or not all(isinstance(f, str) for f in fields):
        raise MarketoHTTPError(1003, "fields is required: a non-empty array of field names")
    known = _field_names(state_of(request).store)
    unknown = [f for f in fields if f not in known]
    if unknown:
        raise MarketoHTTPError(1003, f"Invalid fields: {', '.join(unknown)}")
    headers = body.get("columnHeaderNames") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise MarketoHTTPError(1003, "columnHeaderNames must map field names to header names")
    stray = [k for k in headers if k not in fields]
    if stray:
        raise MarketoHTTPError(1003, f"columnHeaderNames names fields not exported: {stray[0]}")
    flt = _validate_filter(request, body.get("filter"))
    columns, header_row = _columns(request, fields, headers, flt)
    spec = {
        "fields": fields,
        "headers": headers,
        "filter": flt,
        "columns": columns,
        "header_row": header_row,
    }
    return fmt, spec


def _columns(
    request: Request, fields: list[str], headers: dict, flt: dict
) -> tuple[list[str], list[str]]:
    """The file's columns: a programIds export adds programId as the first field (the page).

    When `fields` names programId too (the page is silent), option `export_program_id_column`
    decides: "once" moves it to the front, "repeated" keeps it where asked as well.
    """
    if "programIds" not in flt:
        return fields, [headers.get(f, f) for f in fields]
    if option(request, "export_program_id_column") == "repeated":
        return ["programId", *fields], ["programId", *(headers.get(f, f) for f in fields)]
    columns = ["programId", *(f for f in fields if f != "programId")]
    return columns, [headers.get(f, f) for f in columns]
