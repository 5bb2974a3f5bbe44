"""Marketo's field values: what the sandbox keeps for a JSON value or CSV text of each dataType."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

from marketo_sandbox.clock import Clock, parse_datetime

if TYPE_CHECKING:
    from collections.abc import Mapping

STRING_TYPES = frozenset({"string", "text", "email", "phone", "url", "reference"})
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f"})


def coerce(data_type: str, value: Any, length: int | None = None) -> Any:  # noqa: C901, PLR0911, PLR0912
    """Convert `value` (a JSON value or CSV text) to what the store keeps; ValueError if invalid.

    None and "" clear the value (None). Booleans stay bool, integer/score int, float/currency
    float, datetime an ISO-8601 `Z` string, date `YYYY-MM-DD`, everything else str.
    """
    if value is None or (isinstance(value, str) and value == ""):
        return None
    if data_type in STRING_TYPES:
        if isinstance(value, (dict, list)):
            raise ValueError("a text value was expected")
        text = value if isinstance(value, str) else str(value)
        if length and len(text) > length:
            raise ValueError(f"value longer than {length} characters")
        if data_type == "email" and not _EMAIL.match(text):
            raise ValueError("Invalid email address")
        return text
    if data_type in ("integer", "score"):
        if isinstance(value, bool):
            raise ValueError("an integer was expected")
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError("an integer was expected")
            return int(value)
        return int(str(value).strip())
    if data_type in ("float", "currency"):
        if isinstance(value, bool):
            raise ValueError("a number was expected")
        return float(str(value).strip()) if isinstance(value, str) else float(value)
    if data_type == "percent":
        # field-types.md: "expressed as an integer"; real instances hold decimals, kept as given
        # (a documented deviation): 30 stays 30, 12.5 stays 12.5.
        if isinstance(value, bool):
            raise ValueError("a number was expected")
        number = float(str(value).strip()) if isinstance(value, str) else float(value)
        return int(number) if number.is_integer() else number
    if data_type == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError("a boolean (true/false) was expected")
    if data_type == "datetime":
        if isinstance(value, datetime):
            moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        else:
            moment = parse_datetime(str(value))
        return Clock.iso(moment)
    if data_type == "date":
        if isinstance(value, datetime):
            return value.date().isoformat()
        if isinstance(value, date):
            return value.isoformat()
        text = str(value).strip()
        return (
            parse_datetime(text).date() if "T" in text else date.fromisoformat(text)
        ).isoformat()
    raise ValueError(f"unsupported data type {data_type}")


def check_value(field: Mapping[str, Any], value: Any) -> Any:
    """`coerce` for a describe dict; the ValueError names the field, as Marketo's reasons do."""
    try:
        return coerce(field["dataType"], value, field.get("length"))
    except (ValueError, TypeError) as exc:
        detail = str(exc) if str(exc) and "invalid literal" not in str(exc) else "invalid value"
        raise ValueError(f"Invalid value '{value}' for field '{field['name']}': {detail}") from None


def iso(value: datetime | str) -> str:
    """A datetime or its text as Marketo writes it (`2024-01-02T03:04:05Z`)."""
    if isinstance(value, datetime):
        return Clock.iso(value)
    return Clock.iso(parse_datetime(value))
