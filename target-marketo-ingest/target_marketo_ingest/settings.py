"""The target's settings, each declared once: the schema `--about` shows, and the options read.

Every setting is a `marketo_common.declarations.Setting` (type, default, bounds, description,
secret): `CONFIG_SCHEMA` (`--about`, meltano-hub.yml through scripts/hub_yaml.py) and
`target_options` (validation, one `ConfigError` line naming the setting) both come from
`TARGET_SETTINGS`. The connection settings are the shared ones of marketo_common.
"""

from __future__ import annotations

import decimal
import typing as t
from dataclasses import dataclass

from marketo_common.declarations import Setting, to_jsonschema, validate
from marketo_common.errors import ConfigError
from marketo_common.settings import (
    BASE_URL,
    CLIENT_ID,
    CLIENT_SECRET,
    INGESTION_BASE_URL,
    MAX_RETRIES,
    MUNCHKIN_ID,
    REQUEST_TIMEOUT_SECONDS,
)
from singer_sdk import typing as th

from target_marketo_ingest.errors import setting_error
from target_marketo_ingest.routing import METHODS, validate_streams_setting


def _number(
    name: str,
    kind: type,
    default: float,
    *,
    above: float | None = None,
    low: float | None = None,
    high: float | None = None,
    description: str,
) -> Setting:
    """A number setting whose bounds go both into the schema and into its check."""
    bounds: dict[str, float] = {}
    if above is not None:
        bounds["exclusiveMinimum"] = above
    if low is not None:
        bounds["minimum"] = low
    if high is not None:
        bounds["maximum"] = high
    noun = "an integer" if kind is int else "a number"
    words = [
        f"above {above:g}" if above is not None else "",
        f">= {low:g}" if low is not None else "",
        f"at most {high:g}" if high is not None else "",
    ]
    expected = f"{noun} {' and '.join(w for w in words if w)}".strip()

    def parse(raw: t.Any) -> float:
        # Config files are read with JSON floats as Decimal; Meltano may pass strings.
        if isinstance(raw, bool) or not isinstance(raw, (int, float, decimal.Decimal, str)):
            raise ValueError(f"{expected}, got {raw!r}")  # noqa: TRY004 (declarations' contract)
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{expected}, got {raw!r}") from None
        if (
            value != value  # noqa: PLR0124 (NaN)
            or (above is not None and value <= above)
            or (low is not None and value < low)
            or (high is not None and value > high)
            or (kind is int and not value.is_integer())
        ):
            raise ValueError(f"{expected}, got {raw!r}")
        return int(value) if kind is int else value

    return Setting(
        name, kind, default=default, description=description, parse=parse, schema_extra=bounds
    )


def _reject_threshold(value: t.Any) -> float:
    """`fail_on_rejects` as a number (Meltano may pass it as a string)."""
    try:
        number = float(value) if not isinstance(value, bool) else -1.0
    except (TypeError, ValueError):
        number = -1.0
    if number < 0:
        raise ValueError(f"a count or a fraction >= 0, got {value!r}")
    return number


def _streams(value: t.Any) -> dict:
    validate_streams_setting(value)  # each entry's error names its exact option
    return t.cast("dict", value)


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

STREAMS = Setting(
    "streams",
    dict,
    parse=_streams,
    schema_extra={"additionalProperties": STREAM_OPTIONS.to_dict()},
    description=(
        "Stream name or glob -> write method and options. Methods: "
        + ", ".join(METHODS)
        + ". Without an entry, leads/persons -> bulk_leads, program_members -> "
        "bulk_program_members, companies -> ingest_companies."
    ),
)
REJECTS_PATH = Setting(
    "rejects_path",
    str,
    description="JSONL file for rejected records and warnings (marketo-rejects.jsonl).",
)
DRY_RUN = Setting(
    "dry_run",
    bool,
    default=False,
    description="Validate and build files and requests; send nothing, emit no STATE.",
)
MAX_IMPORT_FILE_MB = _number(
    "max_import_file_mb",
    float,
    10,
    above=0,
    high=10,
    description="Import files roll just under this size (at most 10).",
)
MAX_CONCURRENT_IMPORTS = _number(
    "max_concurrent_imports",
    int,
    2,
    low=1,
    high=2,
    description="Bulk import jobs in flight (Marketo processes 2 at a time).",
)
FAIL_ON_REJECTS = Setting(
    "fail_on_rejects",
    float,
    parse=_reject_threshold,
    schema_extra={"type": ["number", "string", "null"]},
    description=(
        "Exit non-zero when rejects pass this: a count (>= 1) or a fraction of "
        "received records (< 1); 0 fails on any reject. Unset: never."
    ),
)
UNKNOWN_FIELDS = Setting(
    "unknown_fields",
    str,
    default="error",
    choices=("error", "drop"),
    description="Fields Marketo does not know: error (reject/stop) or drop with a warning.",
)
WARNINGS_AS_REJECTS = Setting(
    "warnings_as_rejects",
    bool,
    default=False,
    description="Count rows Marketo imported with a warning as rejects.",
)
VERIFY_TIMEOUT_SECONDS = _number(
    "verify_timeout_seconds",
    float,
    600,
    above=0,
    description="Data Ingestion read-back: give up on a record after this (not_applied).",
)
POLL_INTERVAL_SECONDS = _number(
    "poll_interval_seconds",
    float,
    5,
    above=0,
    description="First import status poll; grows to 6x (5-30 s by default).",
)

TARGET_SETTINGS = (
    STREAMS,
    REJECTS_PATH,
    DRY_RUN,
    MAX_IMPORT_FILE_MB,
    MAX_CONCURRENT_IMPORTS,
    FAIL_ON_REJECTS,
    UNKNOWN_FIELDS,
    WARNINGS_AS_REJECTS,
    VERIFY_TIMEOUT_SECONDS,
    POLL_INTERVAL_SECONDS,
)
CONNECTION = (
    CLIENT_ID,
    CLIENT_SECRET,
    BASE_URL,
    MUNCHKIN_ID,
    INGESTION_BASE_URL,
    REQUEST_TIMEOUT_SECONDS,
    MAX_RETRIES,
)
CONFIG_SCHEMA = to_jsonschema([*CONNECTION, *TARGET_SETTINGS])

POLL_GROWTH = 6  # the import status poll grows to 6x its first interval


@dataclass
class TargetOptions:
    """Run-wide settings the write methods read (defaults: the declarations above)."""

    dry_run: bool = DRY_RUN.default
    max_import_bytes: int = int(MAX_IMPORT_FILE_MB.default * 1_000_000)
    max_concurrent_imports: int = MAX_CONCURRENT_IMPORTS.default
    import_queue_files: int = 2
    poll_interval_seconds: float = float(POLL_INTERVAL_SECONDS.default)
    poll_max_seconds: float = float(POLL_INTERVAL_SECONDS.default) * POLL_GROWTH
    warnings_as_rejects: bool = WARNINGS_AS_REJECTS.default
    unknown_fields: str = UNKNOWN_FIELDS.default
    ingestion_max_bytes: int = 1_000_000
    ingestion_max_objects: int = 1000
    ingestion_parallel_requests: int = 4
    rest_batch_size: int = 300
    verify_timeout_seconds: float = float(VERIFY_TIMEOUT_SECONDS.default)
    fail_on_rejects: float | None = None
    work_dir: str | None = None


def target_options(config: t.Mapping[str, t.Any]) -> TargetOptions:
    """Run-wide options from the settings; a bad value is one ConfigError naming it."""
    try:
        values = validate(config, TARGET_SETTINGS)
    except ConfigError as exc:
        if exc.message is not None:
            raise
        raise setting_error(exc.setting, f"expected {exc.expected}") from None
    poll = float(values["poll_interval_seconds"])
    return TargetOptions(
        dry_run=values["dry_run"],
        max_import_bytes=int(values["max_import_file_mb"] * 1_000_000),
        max_concurrent_imports=values["max_concurrent_imports"],
        poll_interval_seconds=poll,
        poll_max_seconds=poll * POLL_GROWTH,
        warnings_as_rejects=values["warnings_as_rejects"],
        unknown_fields=values["unknown_fields"],
        verify_timeout_seconds=values["verify_timeout_seconds"],
        fail_on_rejects=values["fail_on_rejects"],
    )
