"""The target's settings: the schema `--about` shows, and the options write methods read."""

from __future__ import annotations

import decimal
import typing as t

from singer_sdk import typing as th

from target_marketo_ingest.context import TargetOptions
from target_marketo_ingest.errors import SettingError
from target_marketo_ingest.routing import METHODS

STREAM_OPTIONS = th.ObjectType(
    th.Property("method", th.StringType(allowed_values=list(METHODS))),
    th.Property("lookup_field", th.StringType, description="Bulk leads: dedupe field (email)."),
    th.Property("list_id", th.IntegerType, description="Bulk leads: static list to add to."),
    th.Property("partition_name", th.StringType, description="Leads/persons partition."),
    th.Property("program_id", th.IntegerType, description="Program members: fixed program."),
    th.Property("status", th.StringType, description="Program members: fixed status."),
    th.Property("program_id_field", th.StringType, description="Record field with programId."),
    th.Property("status_field", th.StringType, description="Record field with the status."),
    th.Property("dedupe_fields", th.ArrayType(th.StringType)),
    th.Property(
        "dedupe_by",
        th.StringType(allowed_values=["dedupeFields", "idField", "marketoGUID"]),
        description="Companies: dedupeFields or idField (idField only with action "
        "updateOnly); custom objects: dedupeFields or marketoGUID.",
    ),
    th.Property(
        "action", th.StringType(allowed_values=["createOnly", "updateOnly", "createOrUpdate"])
    ),
    th.Property("priority", th.StringType(allowed_values=["normal", "high"])),
    th.Property("custom_object_name", th.StringType),
    th.Property("field_map", th.ObjectType(additional_properties=th.StringType)),
    th.Property(
        "verify",
        th.BooleanType,
        description="Data Ingestion: read each accepted record back until applied (default on).",
    ),
    th.Property(
        "mirror",
        th.BooleanType,
        description="Program members: the input is each named program's whole membership.",
    ),
    th.Property(
        "max_removals",
        th.NumberType,
        description="Mirror: stop before any change when removals pass this count or fraction.",
    ),
    additional_properties=False,
)

CONFIG_SCHEMA = th.PropertiesList(
    th.Property("client_id", th.StringType, required=True, description="API client id."),
    th.Property(
        "client_secret", th.StringType, required=True, secret=True, description="API secret."
    ),
    th.Property(
        "base_url",
        th.StringType,
        required=True,
        description="REST base URL, e.g. https://123-ABC-456.mktorest.com",
    ),
    th.Property("munchkin_id", th.StringType, description="Munchkin id for Data Ingestion."),
    th.Property(
        "ingestion_base_url",
        th.StringType,
        description="Data Ingestion base URL (default https://mkto-ingestion-api.adobe.io).",
    ),
    th.Property("request_timeout_seconds", th.NumberType, description="HTTP read timeout."),
    th.Property("max_retries", th.IntegerType, description="Retries of retryable failures."),
    th.Property(
        "streams",
        th.ObjectType(additional_properties=STREAM_OPTIONS),
        description=(
            "Stream name or glob -> write method and options. Methods: "
            + ", ".join(METHODS)
            + ". Without an entry, leads/persons -> bulk_leads, program_members -> "
            "bulk_program_members, companies -> ingest_companies."
        ),
    ),
    th.Property(
        "rejects_path",
        th.StringType,
        description="JSONL file for rejected records and warnings (marketo-rejects.jsonl).",
    ),
    th.Property(
        "dry_run",
        th.BooleanType,
        default=False,
        description="Validate and build files and requests; send nothing, emit no STATE.",
    ),
    th.Property(
        "max_import_file_mb",
        th.NumberType(exclusive_minimum=0, maximum=10),
        default=10,
        description="Import files roll just under this size (at most 10).",
    ),
    th.Property(
        "max_concurrent_imports",
        th.IntegerType(minimum=1, maximum=2),
        default=2,
        description="Bulk import jobs in flight (Marketo processes 2 at a time).",
    ),
    th.Property(
        "fail_on_rejects",
        th.CustomType({"type": ["number", "string"]}),
        description=(
            "Exit non-zero when rejects pass this: a count (>= 1) or a fraction of "
            "received records (< 1); 0 fails on any reject. Unset: never."
        ),
    ),
    th.Property(
        "unknown_fields",
        th.StringType(allowed_values=["error", "drop"]),
        default="error",
        description="Fields Marketo does not know: error (reject/stop) or drop with a warning.",
    ),
    th.Property(
        "warnings_as_rejects",
        th.BooleanType,
        default=False,
        description="Count rows Marketo imported with a warning as rejects.",
    ),
    th.Property(
        "verify_timeout_seconds",
        th.NumberType(exclusive_minimum=0),
        default=600,
        description="Data Ingestion read-back: give up on a record after this (not_applied).",
    ),
    th.Property(
        "poll_interval_seconds",
        th.NumberType(exclusive_minimum=0),
        default=5,
        description="First import status poll; grows to 6x (5-30 s by default).",
    ),
).to_dict()


def target_options(config: t.Mapping[str, t.Any]) -> TargetOptions:
    """Run-wide options from the settings; a bad value is one SettingError naming it."""

    def number(name: str, default: float, low: float, high: float | None = None) -> float:
        value = config.get(name, default)
        if value is None:
            return default
        # Config files are read with JSON floats as Decimal.
        if isinstance(value, bool) or not isinstance(value, (int, float, decimal.Decimal)):
            raise SettingError(f"{name}: expected a number, got {value!r}")
        value = float(value)
        if value <= low or (high is not None and value > high):
            bounds = f"above {low}" + (f" and at most {high}" if high is not None else "")
            raise SettingError(f"{name}: expected a number {bounds}, got {value!r}")
        return value

    mb = number("max_import_file_mb", 10, 0, 10)
    imports = int(number("max_concurrent_imports", 2, 0, 2))
    poll = number("poll_interval_seconds", 5, 0)
    unknown = config.get("unknown_fields") or "error"
    if unknown not in {"error", "drop"}:
        raise SettingError(f"unknown_fields: expected error or drop, got {unknown!r}")
    return TargetOptions(
        dry_run=bool(config.get("dry_run", False)),
        max_import_bytes=int(mb * 1_000_000),
        max_concurrent_imports=imports,
        poll_interval_seconds=float(poll),
        poll_max_seconds=float(poll) * 6,
        warnings_as_rejects=bool(config.get("warnings_as_rejects", False)),
        unknown_fields=unknown,
        verify_timeout_seconds=number("verify_timeout_seconds", 600, 0),
    )


def reject_threshold(value: t.Any) -> float | None:
    """`fail_on_rejects` as a number (Meltano may pass it as a string)."""
    if value is None or value == "":
        return None
    try:
        number = float(value) if not isinstance(value, bool) else -1.0
    except (TypeError, ValueError):
        number = -1.0
    if number < 0:
        raise SettingError(f"fail_on_rejects: expected a count or a fraction >= 0, got {value!r}")
    return number
