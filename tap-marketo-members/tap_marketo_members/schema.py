"""Marketo describe output turned into JSON Schema: the one place that maps Marketo's dataTypes.

A custom field created in Marketo appears here on the next discovery because the schema is built
from `describe` at run time, never from a file.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

LOGGER = logging.getLogger(__name__)

# Marketo dataType -> (JSON Schema type, format or None, is text). No maxLength comes from a
# describe's `length`: Marketo's own describe gives nurtureCadence length 4 while its documented
# values include "pause" (program-members.md, bulk-program-member-extract.md), so a loader that
# validated or sized columns by it would refuse real rows.
# Choices where Marketo is vague (documented in the README):
# - reference: the id of another Marketo record, sent as text in exports -> string.
# - score: Marketo scores are whole numbers -> integer.
# - percent: documented as an integer, but real instances hold decimals -> number.
# - anything unknown (formula, textarea variants Marketo may add) -> string, with a debug log.
TYPE_MAP: dict[str, tuple[str, str | None, bool]] = {
    "string": ("string", None, True),
    "text": ("string", None, True),
    "textarea": ("string", None, True),
    "email": ("string", None, True),
    "phone": ("string", None, True),
    "url": ("string", None, True),
    "picklist": ("string", None, True),
    "integer": ("integer", None, False),
    "score": ("integer", None, False),
    "percent": ("number", None, False),
    "float": ("number", None, False),
    "currency": ("number", None, False),
    "boolean": ("boolean", None, False),
    "datetime": ("string", "date-time", False),
    "date": ("string", "date", False),
    "reference": ("string", None, True),
}
FALLBACK_TYPE: tuple[str, str | None, bool] = ("string", None, False)

MEMBER_KEY_FIELDS = ("programId", "leadId")
MEMBER_REPLICATION_KEY = "updatedAt"


def property_schema(field: Mapping[str, Any], *, nullable: bool = True) -> dict[str, Any]:
    """JSON Schema for one describe entry ({name, dataType, length, ...})."""
    data_type = str(field.get("dataType") or "").lower()
    json_type, fmt, _ = TYPE_MAP.get(data_type, FALLBACK_TYPE)
    if data_type not in TYPE_MAP:
        LOGGER.debug(
            "Field %s has unmapped dataType %r: typed as string", field.get("name"), data_type
        )
    schema: dict[str, Any] = {"type": [json_type, "null"] if nullable else json_type}
    if fmt:
        schema["format"] = fmt
    if field.get("displayName"):
        schema["description"] = str(field["displayName"])
    return schema


def program_member_schema(
    member_fields: Iterable[Mapping[str, Any]],
    lead_fields: Iterable[Mapping[str, Any]],
) -> dict[str, Any]:
    """Schema for `program_members`: program member fields first, then the chosen lead fields.

    A lead field whose name a program member field already uses is skipped: the export's
    `fields` list is one flat namespace and the member's own value is the one we key on.
    """
    properties: dict[str, Any] = {}
    for field in member_fields:
        name = field["name"]
        properties[name] = property_schema(field, nullable=name not in MEMBER_KEY_FIELDS)
    for field in lead_fields:
        name = field["name"]
        if name in properties:
            LOGGER.debug("Lead field %s shadows a program member field; keeping the member's", name)
            continue
        properties[name] = property_schema(field)
    for key in MEMBER_KEY_FIELDS:
        # Marketo always has these; keep the schema valid even if a describe omits one.
        properties.setdefault(key, {"type": "integer"})
    properties.setdefault(
        MEMBER_REPLICATION_KEY, {"type": ["string", "null"], "format": "date-time"}
    )
    return {"type": "object", "properties": properties}


def select_lead_fields(
    describe: Iterable[Mapping[str, Any]],
    wanted: list[str],
) -> list[Mapping[str, Any]]:
    """Pick the configured lead fields from describe; `["*"]` means all of them."""
    fields = list(describe)
    if wanted == ["*"]:
        return fields
    by_name = {f["name"]: f for f in fields}
    missing = [name for name in wanted if name not in by_name]
    if missing:
        LOGGER.warning(
            "lead_fields: %s not found in Marketo's lead describe; left out", ", ".join(missing)
        )
    return [by_name[name] for name in wanted if name in by_name]
