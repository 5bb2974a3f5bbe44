"""Marketo describe output turned into JSON Schema, through marketo-common's dataType table.

A custom field created in Marketo appears here on the next discovery because the schema is built
from `describe` at run time, never from a file. How each dataType is typed (percent as a number,
no maxLength from a describe's `length`, unknown types as text) is decided once, in
`marketo_common.fields`, for the tap and the target alike.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from marketo_common.fields import DATA_TYPES, FieldSpec

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

LOGGER = logging.getLogger(__name__)

MEMBER_KEY_FIELDS = ("programId", "leadId")
MEMBER_REPLICATION_KEY = "updatedAt"


def _spec(field: FieldSpec | Mapping[str, Any]) -> FieldSpec:
    if isinstance(field, FieldSpec):
        return field
    spec = FieldSpec.from_describe(field)
    return spec if spec is not None else FieldSpec(name="", data_type=str(field.get("dataType")))


def property_schema(
    field: FieldSpec | Mapping[str, Any], *, nullable: bool = True
) -> dict[str, Any]:
    """JSON Schema for one describe entry ({name, dataType, length, ...} or its FieldSpec)."""
    spec = _spec(field)
    if spec.data_type not in DATA_TYPES:
        LOGGER.debug(
            "Field %s has unmapped dataType %r: typed as string", spec.name, spec.data_type
        )
    schema = spec.type.json_schema(nullable=nullable)
    if spec.display_name:
        schema["description"] = spec.display_name
    return schema


def program_member_schema(
    member_fields: Iterable[FieldSpec | Mapping[str, Any]],
    lead_fields: Iterable[FieldSpec | Mapping[str, Any]],
) -> dict[str, Any]:
    """Schema for `program_members`: program member fields first, then the chosen lead fields.

    A lead field whose name a program member field already uses is skipped: the export's
    `fields` list is one flat namespace and the member's own value is the one we key on.
    """
    properties: dict[str, Any] = {}
    for field in member_fields:
        name = _spec(field).name
        properties[name] = property_schema(field, nullable=name not in MEMBER_KEY_FIELDS)
    for field in lead_fields:
        name = _spec(field).name
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
    describe: Iterable[FieldSpec | Mapping[str, Any]],
    wanted: list[str],
) -> list[FieldSpec | Mapping[str, Any]]:
    """Pick the configured lead fields from describe; `["*"]` means all of them."""
    fields = list(describe)
    if wanted == ["*"]:
        return fields
    by_name = {_spec(f).name: f for f in fields}
    missing = [name for name in wanted if name not in by_name]
    if missing:
        LOGGER.warning(
            "lead_fields: %s not found in Marketo's lead describe; left out", ", ".join(missing)
        )
    return [by_name[name] for name in wanted if name in by_name]
