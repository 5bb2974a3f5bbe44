"""Run-time options (`/_sandbox/options`): the core's, checked; families read their own keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from marketo_sandbox.limits import RELAXED
from marketo_sandbox.repos.fields import MAX_CUSTOM_PM_FIELDS

if TYPE_CHECKING:
    from collections.abc import Mapping

    from marketo_sandbox.repos.database import Database

CORE_OPTIONS: dict[str, Any] = {
    "token_ttl_seconds": 3600,
    "rest_member_filter_limit": 100_000,
    # "total": refuse a non-leadId filter when the program has more members than the limit;
    # "matching": only when the matching members do (both exist, per subscription).
    "rest_member_limit_mode": "total",
    "rest_max_body_bytes": 1_048_576,
    "max_custom_program_member_fields": MAX_CUSTOM_PM_FIELDS,
    "updated_at_filter_supported": True,
    "log_calls": True,
}


def check_options(changes: Mapping[str, Any]) -> None:
    """Refuse core options of the wrong type (ValueError naming the option).

    A number stays a non-negative number, a flag a bool: a typo must not turn every later call
    into an error.
    """
    for key, value in changes.items():
        default = {**CORE_OPTIONS, **RELAXED}.get(key)
        if key == "rest_member_limit_mode":
            ok = value in ("total", "matching")
        elif isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, (int, float)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
        else:
            ok = True
        if not ok:
            raise ValueError(f"option {key!r}: invalid value {value!r}")


class Options(dict):
    """Run-time settings (`/_sandbox/options`); admin changes are kept in the db across restarts.

    Families read their own keys with `options.get(key, default)`.
    """

    def __init__(self, db: Database, base: Mapping[str, Any]) -> None:
        super().__init__(base)
        self.db = db

    def apply(self, changes: Mapping[str, Any], persist: bool = True) -> None:
        """Set options; persisted ones come back after a restart.

        Core options are checked (`check_options`); other keys belong to families.
        """
        check_options(changes)
        self.update(changes)
        if persist:
            saved = orjson.loads(self.db.get_meta("options") or "{}")
            saved.update(changes)
            self.db.set_meta("options", orjson.dumps(saved).decode())
