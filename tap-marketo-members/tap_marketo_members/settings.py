"""The tap's own settings, validated once with one-line errors that name the setting."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from marketo_common import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_LEAD_FIELDS = ("email", "firstName", "lastName", "company")
MAX_WINDOW_DAYS = 31  # Marketo caps bulk date-range filters at 31 days.
MAX_PROGRAM_IDS_PER_JOB = 10  # Marketo's limit for the `programIds` filter.
MAX_EXPORT_SLOTS = 2  # Marketo processes at most 2 bulk exports at once per subscription.
NURTURE_CADENCES = ("pause", "norm")  # the extract's nurtureCadence values
# Export files are kept seven days (bulk-extract.md, "Limits"): a removal check must come while
# the previous snapshot's file can still be downloaded, so at most six days apart.
MAX_REMOVAL_INTERVAL_HOURS = 6 * 24


@dataclass(frozen=True)
class MemberFilter:
    """The extract's optional member filters (statusNames, isExhausted, nurtureCadence).

    Bookmarks are kept per filter set (`fingerprint`): a change of filters starts a new
    partition of state from start_date instead of silently skipping what the old set left out.
    """

    status_names: tuple[str, ...] = ()
    is_exhausted: bool | None = None
    nurture_cadence: str | None = None

    def __bool__(self) -> bool:
        return (
            bool(self.status_names) or self.is_exhausted is not None or bool(self.nurture_cadence)
        )

    def export_filter(self) -> dict[str, Any]:
        """The filter keys as Marketo's extract names them (status names as given)."""
        out: dict[str, Any] = {}
        if self.status_names:
            out["statusNames"] = list(self.status_names)
        if self.is_exhausted is not None:
            out["isExhausted"] = self.is_exhausted
        if self.nurture_cadence:
            out["nurtureCadence"] = self.nurture_cadence
        return out

    @property
    def fingerprint(self) -> str | None:
        """A stable, readable key of the filter set (status names compare case-insensitively)."""
        if not self:
            return None
        parts = []
        if self.status_names:
            names = sorted({name.lower() for name in self.status_names})
            parts.append("statusNames=" + "|".join(names))
        if self.is_exhausted is not None:
            parts.append(f"isExhausted={str(self.is_exhausted).lower()}")
        if self.nurture_cadence:
            parts.append(f"nurtureCadence={self.nurture_cadence}")
        return ";".join(parts)

    def keeps(self, member: Mapping[str, Any]) -> bool:
        """Whether a REST row passes the filters (the REST query has no such filters)."""
        if self.status_names:
            status = str(member.get("statusName") or "").lower()
            if status not in {name.lower() for name in self.status_names}:
                return False
        if self.is_exhausted is not None and member.get("isExhausted") is not self.is_exhausted:
            return False
        return not self.nurture_cadence or member.get("nurtureCadence") == self.nurture_cadence


@dataclass(frozen=True)
class TapSettings:
    """Export behaviour; connection settings are validated by `marketo_common.MarketoSettings`."""

    start_date: dt.datetime | None = None
    program_ids: tuple[int, ...] | None = None
    lead_fields: tuple[str, ...] = DEFAULT_LEAD_FIELDS
    updated_at_filter: str = "auto"
    window_days: int = MAX_WINDOW_DAYS
    max_concurrent_exports: int = MAX_EXPORT_SLOTS
    poll_interval_seconds: float = 60.0
    job_timeout_minutes: float = 180.0
    daily_export_quota_mb: float = 500.0
    rest_fallback: str = "auto"
    rest_fallback_max_members: int = 0
    member_filter: MemberFilter = MemberFilter()
    plan_only: bool = False
    # issue 20 (removals.py): keys-only membership snapshots diffed run to run.
    detect_removals: bool = False
    removal_check_interval_hours: float = 0.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TapSettings:
        """Validate a Singer config's tap settings; raise ConfigError on the first bad one."""
        defaults = cls()
        return cls(
            start_date=_start_date(config.get("start_date")),
            program_ids=_program_ids(config.get("program_ids")),
            lead_fields=_lead_fields(config.get("lead_fields")),
            updated_at_filter=_choice(config, "updated_at_filter", ("auto", "on", "off")),
            window_days=int(
                _number(config, "window_days", defaults, 1, MAX_WINDOW_DAYS, integer=True)
            ),
            max_concurrent_exports=int(
                _number(
                    config, "max_concurrent_exports", defaults, 1, MAX_EXPORT_SLOTS, integer=True
                )
            ),
            poll_interval_seconds=_number(config, "poll_interval_seconds", defaults, 0.01, 3600),
            job_timeout_minutes=_number(config, "job_timeout_minutes", defaults, 0.01, 7 * 24 * 60),
            daily_export_quota_mb=_number(config, "daily_export_quota_mb", defaults, 0.001, 10**7),
            rest_fallback=_choice(config, "rest_fallback", ("auto", "always", "never")),
            rest_fallback_max_members=int(
                _number(config, "rest_fallback_max_members", defaults, 0, 100_000, integer=True)
            ),
            member_filter=MemberFilter(
                status_names=_status_names(config.get("status_names")),
                is_exhausted=_is_exhausted(config.get("is_exhausted")),
                nurture_cadence=_nurture_cadence(config.get("nurture_cadence")),
            ),
            plan_only=_flag(config, "plan_only"),
            detect_removals=_flag(config, "detect_removals"),
            removal_check_interval_hours=_number(
                config, "removal_check_interval_hours", defaults, 0, MAX_REMOVAL_INTERVAL_HOURS
            ),
        )


def _flag(config: Mapping[str, Any], name: str) -> bool:
    value = config.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ConfigError(name, f"true or false, got {value!r}")
    return value


def _start_date(value: Any) -> dt.datetime | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ConfigError("start_date", "an ISO-8601 date-time like 2024-01-01T00:00:00Z")
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            "start_date", f"an ISO-8601 date-time like 2024-01-01T00:00:00Z, got {value!r}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc).replace(microsecond=0)


def _program_ids(value: Any) -> tuple[int, ...] | None:
    if value in (None, []):
        return None
    if not isinstance(value, (list, tuple)):
        raise ConfigError("program_ids", "a list of Marketo program ids (integers)")
    ids: list[int] = []
    for item in value:
        text = str(item).strip()
        if isinstance(item, bool) or not text.isdigit() or int(text) <= 0:
            raise ConfigError("program_ids", f"positive integer program ids, got {item!r}")
        if int(text) not in ids:
            ids.append(int(text))
    return tuple(ids)


def _status_names(value: Any) -> tuple[str, ...]:
    if value in (None, []):
        return ()
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, str) and v.strip() for v in value
    ):
        raise ConfigError(
            "status_names", 'a list of program member status names, e.g. ["Registered"]'
        )
    names: list[str] = []
    for item in value:
        if item.strip().lower() not in (n.lower() for n in names):
            names.append(item.strip())
    return tuple(names)


def _is_exhausted(value: Any) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ConfigError("is_exhausted", f"true or false, got {value!r}")
    return value


def _nurture_cadence(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or value.strip().lower() not in NURTURE_CADENCES:
        raise ConfigError("nurture_cadence", f"one of {', '.join(NURTURE_CADENCES)}, got {value!r}")
    return value.strip().lower()


def _lead_fields(value: Any) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_LEAD_FIELDS
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, str) and v.strip() for v in value
    ):
        raise ConfigError("lead_fields", 'a list of lead field API names, or ["*"] for all')
    names = tuple(v.strip() for v in value)
    if "*" in names and names != ("*",):
        raise ConfigError("lead_fields", '["*"] alone (all fields) or a list of API names')
    return names


def _choice(config: Mapping[str, Any], name: str, choices: tuple[str, ...]) -> str:
    value = config.get(name)
    if value is None:
        return choices[0]
    if not isinstance(value, str) or value.strip().lower() not in choices:
        raise ConfigError(name, f"one of {', '.join(choices)}, got {value!r}")
    return value.strip().lower()


def _number(
    config: Mapping[str, Any],
    name: str,
    defaults: TapSettings,
    minimum: float,
    maximum: float,
    *,
    integer: bool = False,
) -> float:
    value = config.get(name)
    if value is None:
        return getattr(defaults, name)
    kind = "an integer" if integer else "a number"
    try:
        if isinstance(value, bool):
            raise TypeError  # noqa: TRY301
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(name, f"{kind} from {minimum:g} to {maximum:g}, got {value!r}") from None
    if (
        math.isnan(number)
        or not minimum <= number <= maximum
        or (integer and not number.is_integer())
    ):
        raise ConfigError(name, f"{kind} from {minimum:g} to {maximum:g}, got {value!r}")
    return number
