"""Which write method a stream goes to, from the `streams` setting or the stream's name."""

from __future__ import annotations

import fnmatch
import typing as t
from dataclasses import dataclass, field, fields, replace

from target_marketo_ingest.errors import setting_error
from target_marketo_ingest.methods import (
    BULK_LEADS,
    BULK_PROGRAM_MEMBERS,
    INGEST_COMPANIES,
    INGEST_CUSTOM_OBJECT,
    INGEST_PERSONS,
    INGEST_PROGRAM_MEMBERS,
    REGISTRY,
)

METHODS = tuple(REGISTRY)
# Route options a method must allow (methods.py): verify on Data Ingestion, mirror on members
# by leadId.
MIRROR_METHODS = tuple(name for name, m in REGISTRY.items() if m.mirrors)

# A plain pipeline (tap-marketo-members, tap-postgres tables named after Marketo objects)
# works without a mapping: these names pick a method on their own.
DEFAULT_METHODS: dict[str, str] = {
    "leads": BULK_LEADS,
    "lead": BULK_LEADS,
    "persons": BULK_LEADS,
    "person": BULK_LEADS,
    "program_members": BULK_PROGRAM_MEMBERS,
    "programmembers": BULK_PROGRAM_MEMBERS,
    "program_member": BULK_PROGRAM_MEMBERS,
    "members": BULK_PROGRAM_MEMBERS,
    "companies": INGEST_COMPANIES,
    "company": INGEST_COMPANIES,
}

PRIORITIES = ("normal", "high")
ACTIONS = ("createOnly", "updateOnly", "createOrUpdate")


@dataclass(frozen=True)
class StreamRoute:
    """How one stream is written; every field has the default a plain pipeline needs."""

    stream: str
    method: str
    lookup_field: str = "email"
    list_id: int | None = None
    partition_name: str | None = None
    program_id: int | None = None
    status: str | None = None
    program_id_field: str = "programId"
    status_field: str = "statusName"
    dedupe_fields: tuple[str, ...] = ()
    dedupe_by: str | None = None
    action: str | None = None
    priority: str | None = None
    custom_object_name: str | None = None
    field_map: dict[str, str] = field(default_factory=dict)
    # Read-back verification (None: on for Data Ingestion, verify.py) and membership mirror
    # (mirror.py).
    verify: bool | None = None
    mirror: bool = False
    max_removals: float | None = None
    setting_key: str | None = None

    def setting(self, name: str) -> str:
        """The setting path used in error messages, e.g. `streams.leads.lookup_field`."""
        return f"streams.{self.setting_key or self.stream}.{name}"


_ROUTE_KEYS = {f.name for f in fields(StreamRoute)} - {"stream", "setting_key"}


def _as_int(value: t.Any, path: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise setting_error(path, f"expected an integer, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise setting_error(path, f"expected an integer, got {value!r}") from None


def _as_str(value: t.Any, path: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise setting_error(path, f"expected a non-empty string, got {value!r}")
    return value


def _as_bool(value: t.Any, path: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise setting_error(path, f"expected true or false, got {value!r}")


def _as_removals(value: t.Any, path: str) -> float | None:
    """A count (an integer >= 0) or a fraction 0 < x < 1 of current members."""
    if value is None:
        return None
    try:
        number = float(value) if not isinstance(value, bool) else -1.0
    except (TypeError, ValueError):
        number = -1.0
    if number < 0 or (number >= 1 and not number.is_integer()):
        raise setting_error(
            path, f"expected a count (integer >= 0) or a fraction between 0 and 1, got {value!r}"
        )
    return number


def _choice(value: t.Any, path: str, choices: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    if value not in choices:
        raise setting_error(path, f"expected one of {', '.join(choices)}, got {value!r}")
    return value


def parse_route(stream: str, key: str, raw: t.Any) -> StreamRoute:
    """Validate one `streams` entry; errors name the exact setting."""
    base = f"streams.{key}"
    if not isinstance(raw, dict):
        raise setting_error(base, f"expected an object with at least 'method', got {raw!r}")
    unknown = sorted(set(raw) - _ROUTE_KEYS)
    if unknown:
        raise setting_error(
            f"{base}.{unknown[0]}", f"unknown option (known: {', '.join(sorted(_ROUTE_KEYS))})"
        )
    method = raw.get("method") or DEFAULT_METHODS.get(stream.lower())
    if method is None:
        raise setting_error(f"{base}.method", f"required (one of {', '.join(METHODS)})")
    _choice(method, f"{base}.method", METHODS)
    dedupe_fields = raw.get("dedupe_fields") or ()
    if isinstance(dedupe_fields, str):
        dedupe_fields = (dedupe_fields,)
    if not isinstance(dedupe_fields, (list, tuple)) or not all(
        isinstance(f, str) and f for f in dedupe_fields
    ):
        raise setting_error(f"{base}.dedupe_fields", "expected a list of field names")
    if len(dedupe_fields) > 2 and method == INGEST_PERSONS:  # noqa: PLR2004
        raise setting_error(f"{base}.dedupe_fields", "persons take at most 2 dedupe fields")
    field_map = raw.get("field_map") or {}
    if not isinstance(field_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in field_map.items()
    ):
        raise setting_error(f"{base}.field_map", "expected an object of input name -> Marketo name")
    route = StreamRoute(
        stream=stream,
        method=method,
        lookup_field=_as_str(raw.get("lookup_field"), f"{base}.lookup_field") or "email",
        list_id=_as_int(raw.get("list_id"), f"{base}.list_id"),
        partition_name=_as_str(raw.get("partition_name"), f"{base}.partition_name"),
        program_id=_as_int(raw.get("program_id"), f"{base}.program_id"),
        status=_as_str(raw.get("status"), f"{base}.status"),
        program_id_field=_as_str(raw.get("program_id_field"), f"{base}.program_id_field")
        or "programId",
        status_field=_as_str(raw.get("status_field"), f"{base}.status_field") or "statusName",
        dedupe_fields=tuple(dedupe_fields),
        dedupe_by=_choice(raw.get("dedupe_by"), f"{base}.dedupe_by", REGISTRY[method].dedupe_by),
        action=_choice(raw.get("action"), f"{base}.action", ACTIONS),
        priority=_choice(raw.get("priority"), f"{base}.priority", PRIORITIES),
        custom_object_name=_as_str(raw.get("custom_object_name"), f"{base}.custom_object_name"),
        field_map=dict(field_map),
        verify=_as_bool(raw.get("verify"), f"{base}.verify"),
        mirror=bool(_as_bool(raw.get("mirror"), f"{base}.mirror")),
        max_removals=_as_removals(raw.get("max_removals"), f"{base}.max_removals"),
        setting_key=key,
    )
    _check_combinations(route, base)
    return route


def _check_combinations(route: StreamRoute, base: str) -> None:
    """Options that are valid alone but not together, as Marketo would refuse the request."""
    method = route.method
    if method == INGEST_COMPANIES and route.dedupe_by == "idField" and route.action != "updateOnly":
        # data-ingestion.md, companies: idField only updates; Marketo refuses the request.
        raise setting_error(
            f"{base}.dedupe_by",
            "idField is only allowed with action updateOnly "
            f"(action is {route.action or 'createOrUpdate'}); use dedupeFields with "
            "externalCompanyId to create companies",
        )
    if route.verify and REGISTRY[method].endpoint is None:
        raise setting_error(f"{base}.verify", "only Data Ingestion methods (ingest_*) are verified")
    if (route.mirror or route.max_removals is not None) and not REGISTRY[method].mirrors:
        raise setting_error(
            f"{base}.mirror", f"only {' and '.join(MIRROR_METHODS)} (members by leadId) can mirror"
        )
    if method == INGEST_CUSTOM_OBJECT and not route.custom_object_name:
        raise setting_error(f"{base}.custom_object_name", f"required for method {method}")
    if (
        route.status is not None
        and route.status.lower() == "not in program"
        and method == INGEST_PROGRAM_MEMBERS
    ):
        raise setting_error(
            f"{base}.status", "'Not in Program' cannot be synced; send deletes instead"
        )


def validate_streams_setting(streams: t.Any) -> None:
    """Check every entry of `streams` up front so a bad setting fails before any input."""
    if streams is None:
        return
    if not isinstance(streams, dict):
        raise setting_error("streams", "expected an object of stream name or glob -> options")
    for key, raw in streams.items():
        parse_route(key if not _is_glob(key) else "*", key, raw)


def _is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def resolve_route(stream: str, streams: dict | None) -> StreamRoute | None:
    """Exact name first, then globs in the order given, then defaults by stream name."""
    streams = streams or {}
    if stream in streams:
        return parse_route(stream, stream, streams[stream])
    for key, raw in streams.items():
        if _is_glob(key) and fnmatch.fnmatchcase(stream, key):
            return parse_route(stream, key, raw)
    method = DEFAULT_METHODS.get(stream.lower())
    if method is None:
        return None
    return replace(StreamRoute(stream=stream, method=method), setting_key=stream)
