"""One declaration per setting: a connector's `config_jsonschema` and its validation come from it.

The schema gives `--about`, the Meltano Hub file and the SDK's schema check:

    WINDOW_DAYS = Setting("window_days", int, default=31, minimum=1, maximum=31,
                          description="Days per updatedAt export window.")
    config_jsonschema = to_jsonschema([WINDOW_DAYS, ...])
    values = validate(config, [WINDOW_DAYS, ...])   # {"window_days": 31, ...}

A bad value raises `ConfigError` naming the setting, on one line; a secret's value is never
echoed. A setting whose rule is not a type, bounds or choices gives `parse`: a function that
returns the normalised value or raises `ValueError("what is expected")`. Connectors may reuse a
shared declaration with another description through `dataclasses.replace`.

An object-typed setting (`dict`, e.g. the target's per-stream `streams` options) gives its
nested shape as `schema_extra=`: JSON Schema keywords merged over the generated property (they may
also add keywords the fields above do not cover, such as `maximum` for the SDK's own check),
and its rules as `parse=`.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from marketo_common.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

# Python type -> (JSON Schema type, JSON Schema format, item type of an array)
_JSON_TYPES: dict[Any, tuple[str, str | None, str | None]] = {
    str: ("string", None, None),
    int: ("integer", None, None),
    float: ("number", None, None),
    bool: ("boolean", None, None),
    dt.datetime: ("string", "date-time", None),
    list[str]: ("array", None, "string"),
    list[int]: ("array", None, "integer"),
    dict: ("object", None, None),
}


@dataclass(frozen=True)
class Setting:
    """One setting: its type, default, bounds or choices, description, and whether secret."""

    name: str
    type: Any  # str, int, float, bool, datetime.datetime, list[str], list[int] or dict
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    description: str = ""
    secret: bool = False
    required: bool = False
    parse: Callable[[Any], Any] | None = None
    schema_extra: Mapping[str, Any] | None = None  # keywords merged over the generated ones

    def __post_init__(self) -> None:
        if self.type not in _JSON_TYPES:
            raise TypeError(f"setting {self.name}: unsupported type {self.type!r}")
        if self.type is dict and (self.schema_extra is None or self.parse is None):
            # An object says what it holds and how it is checked, or it is not declared.
            raise TypeError(f"setting {self.name}: an object needs schema_extra= and parse=")

    def schema(self) -> dict[str, Any]:
        """This setting as a JSON Schema property (the SDK's shape: optional ones nullable)."""
        kind, fmt, item = _JSON_TYPES[self.type]
        prop: dict[str, Any] = {"type": [kind] if self.required else [kind, "null"]}
        if fmt:
            prop["format"] = fmt
        if item:
            prop["items"] = {"type": [item]}
        if self.choices:
            prop["enum"] = list(self.choices)
        if self.default is not None:
            default = self.default
            prop["default"] = list(default) if isinstance(default, tuple) else default
        if self.description:
            prop["description"] = self.description
        if self.secret:
            prop["secret"] = True
            prop["writeOnly"] = True
        if self.schema_extra:
            prop.update(self.schema_extra)
        return prop

    def value(self, raw: Any) -> Any:
        """The validated, normalised value of `raw` (the default when unset)."""
        if raw is None or (raw == "" and not self.required):
            if self.required:
                raise ConfigError(self.name, self._expected())
            return self.default
        if self.parse is not None:
            try:
                return self.parse(raw)
            except ConfigError:
                raise  # already names the (nested) setting at fault
            except ValueError as exc:
                raise ConfigError(self.name, str(exc)) from None
        if self.choices:
            return self._choice(raw)
        if self.type in (int, float):
            return self._number(raw)
        return self._plain(raw)

    def _plain(self, raw: Any) -> Any:
        if self.type is bool and isinstance(raw, bool):
            return raw
        if self.type is str and isinstance(raw, str) and raw.strip():
            return raw.strip()
        # Other types (dates, lists, objects) declare `parse`.
        raise ConfigError(self.name, self._got(self._expected(), raw))

    def _choice(self, raw: Any) -> str:
        if not isinstance(raw, str) or raw.strip().lower() not in self.choices:
            raise ConfigError(self.name, self._got(self._expected(), raw))
        return raw.strip().lower()

    def _number(self, raw: Any) -> int | float:
        try:
            if isinstance(raw, bool):
                raise TypeError  # noqa: TRY301 - true is not 1 here
            number = float(raw)
        except (TypeError, ValueError):
            raise ConfigError(self.name, self._got(self._expected(), raw)) from None
        if (
            math.isnan(number)
            or (self.minimum is not None and number < self.minimum)
            or (self.maximum is not None and number > self.maximum)
            or (self.type is int and not number.is_integer())
        ):
            raise ConfigError(self.name, self._got(self._expected(), raw))
        return int(number) if self.type is int else number

    def _expected(self) -> str:
        if self.choices:
            return f"one of {', '.join(self.choices)}"
        if self.type in (int, float):
            kind = "an integer" if self.type is int else "a number"
            if self.minimum is not None and self.maximum is not None:
                return f"{kind} from {self.minimum:g} to {self.maximum:g}"
            if self.minimum is not None:
                return f"{kind} >= {self.minimum:g}"
            return kind
        return {bool: "true or false", dt.datetime: "an ISO-8601 date-time"}.get(
            self.type, "a non-empty string"
        )

    def _got(self, expected: str, raw: Any) -> str:
        # A secret's value is never echoed, whatever it is.
        return expected if self.secret else f"{expected}, got {raw!r}"


def to_jsonschema(settings: Iterable[Setting]) -> dict[str, Any]:
    """A connector's `config_jsonschema` (the SDK adds its built-in settings to it)."""
    settings = list(settings)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {s.name: s.schema() for s in settings},
        "required": [s.name for s in settings if s.required],
    }


def validate(config: Mapping[str, Any], settings: Iterable[Setting]) -> dict[str, Any]:
    """Every declared setting's value (default where unset); `ConfigError` on the first bad one.

    Keys not declared here belong to someone else (the SDK, the other connector) and pass.
    """
    return {s.name: s.value(config.get(s.name)) for s in settings}
