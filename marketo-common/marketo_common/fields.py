"""Marketo's field types, read once for both connectors: describe output and one dataType table.

`parse_describe` turns any of Marketo's field listings into `FieldSpec`s: leads `describe2`
and `describe` (the older shape names the field under `rest`), program members, companies and
custom objects `describe` (one object holding `fields`), and the Field API's paged
`/schema/fields` output. `DATA_TYPES` maps each Marketo `dataType` (field-types.md) to one
`FieldType`: its JSON Schema type (the tap's catalog), the export-CSV text converter (the tap's
parser) and the value coercion for import files and Data Ingestion (the target's validation).

Choices where Marketo is vague (also in the README):
- percent: documented as "a percentage expressed as an integer", but real instances hold
  decimals (marketo-field-notes.md) -> a number everywhere.
- reference: the id of another Marketo record, sent as text in exports -> text.
- score: an integer field (field-types.md) -> integer.
- formula and any dataType Marketo may add -> `OTHER`: text in a schema, passed through as is.
- No maxLength from a describe's `length` in a schema: Marketo's describe gives nurtureCadence
  length 4 while its documented values include "pause"; the target checks lengths itself.
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

NULL_TEXT = "null"  # what Marketo's export CSV holds for an empty field
_CSV_BOOLS = {"true": True, "false": False, "True": True, "False": False}
_CSV_BOOLS.update({"TRUE": True, "FALSE": False})
CANONICAL_TS_LEN = len("2024-01-01T00:00:00Z")


# -- export CSV text -> Python value (tap) ------------------------------------------------------


def csv_int(text: str) -> int:
    """Integers; tolerate `12.0`, which some Marketo exports write for whole numbers."""
    try:
        return int(text)
    except ValueError:
        number = float(text)
        if not number.is_integer():
            raise
        return int(number)


def csv_bool(text: str) -> bool:
    """Exactly true/false in any case: `bool("false")` is True in Python."""
    result = _CSV_BOOLS.get(text)
    if result is None:
        result = _CSV_BOOLS.get(text.strip().lower())
        if result is None:
            raise ValueError(f"not a boolean: {text!r}")
    return result


# -- Python/JSON value -> Marketo value (target) ------------------------------------------------


def value_int(value: Any) -> int:
    """An integer for Marketo: ints, integral floats/Decimals and numeric text; never a bool."""
    kind = type(value)
    if kind is int:
        return value
    if kind is str:
        try:
            return int(value.strip())
        except ValueError:
            pass
    elif kind in (float, decimal.Decimal) and value == int(value):
        return int(value)
    raise ValueError(f"expected an integer, got {value!r}")


def value_number(value: Any) -> int | float | decimal.Decimal:
    """A number for Marketo; text is read as a Decimal so `10.50` keeps its digits."""
    kind = type(value)
    if kind in (int, float, decimal.Decimal):
        return value
    if kind is str:
        try:
            return decimal.Decimal(value.strip())
        except decimal.InvalidOperation:
            pass
    raise ValueError(f"expected a number, got {value!r}")


def value_bool(value: Any) -> bool | None:
    """A boolean for Marketo: bools, 0/1 and the words Marketo's own UI and files use."""
    kind = type(value)
    if kind is bool:
        return value
    if kind is str:
        low = value.strip().lower()
        if low in {"true", "1", "yes"}:
            return True
        if low in {"false", "0", "no"}:
            return False
        if low in {"null", ""}:
            return None
    if kind is int and value in (0, 1):
        return bool(value)
    raise ValueError(f"expected a boolean, got {value!r}")


def csv_text(value: Any) -> str:
    """A value as import-file text: booleans as Marketo writes them, the rest as `str`."""
    kind = type(value)
    if kind is str:
        return value
    if kind is bool:
        return "true" if value else "false"
    return str(value)


def value_email(value: Any) -> Any:
    """An email field's text, refused when it cannot be an address (no `@` inside it).

    field-types.md: an Email field "accepts email addresses". Only what no address can be is
    refused here (Marketo's own rules are stricter and unpublished): enough to keep such a
    record out of a Data Ingestion request, where one bad object fails the whole request
    (4000802) and finding it costs a split per level. Empty text is left to Marketo.
    """
    if type(value) is str and value:
        at = value.find("@")
        if at <= 0 or at == len(value) - 1:
            raise ValueError(f"{value!r} is not an email address")
    return value


def json_number(value: Any) -> Any:
    """A Decimal as the JSON number it stands for (orjson does not write Decimal)."""
    if type(value) is decimal.Decimal:
        return int(value) if value == value.to_integral_value() else float(value)
    return value


# -- the table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldType:
    """How one family of Marketo dataTypes is typed and converted, in both directions.

    kind: text, integer, number, boolean, datetime, date or other.
    json_type/json_format: the JSON Schema the tap declares (without "null").
    from_csv: export text -> value, tolerant (`12.0`, ` True `); None keeps the text.
    from_csv_strict: the C-implemented common case of `from_csv`, for the hot loop; a value it
      refuses is retried with `from_csv`, which accepts or names the cell.
    to_value: a record's value -> the value Marketo takes; raises ValueError saying why (for
      text kinds, a check run after the value is text: EMAIL).
    native: the Python type `to_value` returns unchanged (no call needed in a hot loop).
    """

    kind: str
    json_type: str
    json_format: str | None = None
    from_csv: Callable[[str], Any] | None = None
    from_csv_strict: Callable[[str], Any] | None = None
    to_value: Callable[[Any], Any] | None = None
    native: type | None = None

    @property
    def is_text(self) -> bool:
        """Text-like in import files and records (dates are ISO strings, kept as written)."""
        return self.kind in {"text", "datetime", "date"}

    def json_schema(self, *, nullable: bool = True) -> dict[str, Any]:
        """The JSON Schema property for a field of this type (no maxLength, see the module)."""
        schema: dict[str, Any] = {"type": [self.json_type, "null"] if nullable else self.json_type}
        if self.json_format:
            schema["format"] = self.json_format
        return schema


TEXT = FieldType("text", "string", native=str)
EMAIL = FieldType("text", "string", to_value=value_email, native=str)
INTEGER = FieldType("integer", "integer", None, csv_int, int, value_int, int)
NUMBER = FieldType("number", "number", None, float, float, value_number, None)
BOOLEAN = FieldType("boolean", "boolean", None, csv_bool, _CSV_BOOLS.__getitem__, value_bool, bool)
DATETIME = FieldType("datetime", "string", "date-time", native=str)
DATE = FieldType("date", "string", "date", native=str)
OTHER = FieldType("other", "string")

DATA_TYPES: dict[str, FieldType] = {
    "string": TEXT,
    "text": TEXT,
    "textarea": TEXT,
    "email": EMAIL,
    "phone": TEXT,
    "url": TEXT,
    "link": TEXT,
    "picklist": TEXT,
    "reference": TEXT,
    "integer": INTEGER,
    "score": INTEGER,
    "lead_function": INTEGER,
    "percent": NUMBER,
    "float": NUMBER,
    "currency": NUMBER,
    "double": NUMBER,
    "decimal": NUMBER,
    "boolean": BOOLEAN,
    "datetime": DATETIME,
    "date": DATE,
}


def field_type(data_type: str | None) -> FieldType:
    """The row for a Marketo dataType (any case); `OTHER` for formula and unknown names."""
    return DATA_TYPES.get(str(data_type or "").lower(), OTHER)


def type_of_schema(prop: Mapping[str, Any]) -> FieldType:
    """The row a JSON Schema property (a catalog the user may have edited) reads as.

    The reverse of `FieldType.json_schema`: integer, number and boolean win over string in a
    union; a string with format date-time/date is a datetime/date; anything else is text.
    """
    raw = prop.get("type", "string")
    types = [raw] if isinstance(raw, str) else list(raw or [])
    for row in (INTEGER, NUMBER, BOOLEAN):
        if row.json_type in types:
            return row
    if "string" in types:
        return {"date-time": DATETIME, "date": DATE}.get(prop.get("format") or "", TEXT)
    return TEXT


# -- describe output ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    """One field of Marketo's describe output (or of the Field API's `/schema/fields`)."""

    name: str
    data_type: str
    length: int | None = None
    updateable: bool = True
    display_name: str | None = None
    is_custom: bool | None = None  # only the Field API says; None when unknown

    @property
    def type(self) -> FieldType:
        """This field's row of `DATA_TYPES`."""
        return field_type(self.data_type)

    @classmethod
    def from_describe(cls, raw: Mapping[str, Any]) -> FieldSpec | None:
        """One describe entry; None when it names no field."""
        name = raw.get("name")
        updateable = raw.get("updateable", True)
        rest = raw.get("rest")
        if not name and isinstance(rest, dict):  # leads describe (v1): the API name is `rest`
            name = rest.get("name")
            updateable = not rest.get("readOnly", False)
        if not name:
            return None
        length = raw.get("length")
        custom = raw.get("isCustom")
        return cls(
            name=str(name),
            data_type=str(raw.get("dataType") or "string").lower(),
            length=int(length)
            if isinstance(length, (int, str)) and str(length).isdigit()
            else None,
            updateable=bool(updateable),
            display_name=str(raw["displayName"]) if raw.get("displayName") else None,
            is_custom=None if custom is None else bool(custom),
        )


def describe_entries(result: Iterable[Any]) -> list[Mapping[str, Any]]:
    """The raw field entries of a describe `result`, whichever shape Marketo used."""
    entries: list[Mapping[str, Any]] = []
    for item in result or []:
        if isinstance(item, dict) and isinstance(item.get("fields"), list):
            entries.extend(f for f in item["fields"] if isinstance(f, dict))
        elif isinstance(item, dict):
            entries.append(item)
    return entries


def parse_describe(result: Iterable[Any]) -> dict[str, FieldSpec]:
    """Field specs by API name from a describe or `/schema/fields` result, in Marketo's order."""
    specs: dict[str, FieldSpec] = {}
    for raw in describe_entries(result):
        spec = FieldSpec.from_describe(raw)
        if spec is not None:
            specs[spec.name] = spec
    return specs
