"""The tap's own settings: declared once (`TAP_SETTINGS`), validated with one-line errors."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from marketo_common.declarations import Setting, validate

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


def _start_date(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise ValueError("an ISO-8601 date-time like 2024-01-01T00:00:00Z")  # noqa: TRY004
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        msg = f"an ISO-8601 date-time like 2024-01-01T00:00:00Z, got {value!r}"
        raise ValueError(msg) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc).replace(microsecond=0)


def _program_ids(value: Any) -> tuple[int, ...] | None:
    if value == []:
        return None
    if not isinstance(value, (list, tuple)):
        raise ValueError("a list of Marketo program ids (integers)")  # noqa: TRY004
    ids: list[int] = []
    for item in value:
        text = str(item).strip()
        if isinstance(item, bool) or not text.isdigit() or int(text) <= 0:
            raise ValueError(f"positive integer program ids, got {item!r}")
        if int(text) not in ids:
            ids.append(int(text))
    return tuple(ids)


def _status_names(value: Any) -> tuple[str, ...]:
    if value == []:
        return ()
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, str) and v.strip() for v in value
    ):
        raise ValueError('a list of program member status names, e.g. ["Registered"]')
    names: list[str] = []
    for item in value:
        if item.strip().lower() not in (n.lower() for n in names):
            names.append(item.strip())
    return tuple(names)


def _lead_fields(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, str) and v.strip() for v in value
    ):
        raise ValueError('a list of lead field API names, or ["*"] for all')
    names = tuple(v.strip() for v in value)
    if "*" in names and names != ("*",):
        raise ValueError('["*"] alone (all fields) or a list of API names')
    return names


# The tap's own settings, declared once: `tap.py` builds `config_jsonschema` from them.
START_DATE = Setting(
    "start_date",
    dt.datetime,
    parse=_start_date,
    description=(
        "Read members updated since this time on the first run. Unset: the first run "
        "exports every member in full, later runs read changes only."
    ),
)
PROGRAM_IDS = Setting(
    "program_ids",
    list[int],
    parse=_program_ids,
    description="Programs to read; unset means every program the Asset API lists.",
)
LEAD_FIELDS = Setting(
    "lead_fields",
    list[str],
    default=DEFAULT_LEAD_FIELDS,
    parse=_lead_fields,
    description='Lead fields carried on each member row; ["*"] for all lead fields.',
)
UPDATED_AT_FILTER = Setting(
    "updated_at_filter",
    str,
    default="auto",
    choices=("auto", "on", "off"),
    description=(
        "Use Marketo's updatedAt export filter for incremental runs. auto: use it, and "
        "where the subscription answers 1035 (filter not available) export each program "
        "in full and keep only changed rows, with one warning. on: fail on 1035. "
        "off: always full exports, filtered locally."
    ),
)
WINDOW_DAYS = Setting(
    "window_days",
    int,
    default=MAX_WINDOW_DAYS,
    minimum=1,
    maximum=MAX_WINDOW_DAYS,
    description="Days per updatedAt export window (1-31; Marketo caps ranges at 31 days).",
)
MAX_CONCURRENT_EXPORTS = Setting(
    "max_concurrent_exports",
    int,
    default=MAX_EXPORT_SLOTS,
    minimum=1,
    maximum=MAX_EXPORT_SLOTS,
    description=(
        "Export jobs processing at once (1-2; 2 is Marketo's limit per subscription). "
        "With 2, two more jobs wait in Marketo's queue so both slots stay busy."
    ),
)
POLL_INTERVAL_SECONDS = Setting(
    "poll_interval_seconds",
    float,
    default=60,
    minimum=0.01,
    maximum=3600,
    description=(
        "Seconds between status polls of a job; Marketo updates status once a minute, "
        "so lower values only make sense against the sandbox's scaled clock."
    ),
)
JOB_TIMEOUT_MINUTES = Setting(
    "job_timeout_minutes",
    float,
    default=180,
    minimum=0.01,
    maximum=7 * 24 * 60,
    description="Cancel and fail a job not Completed this long after it was enqueued.",
)
DAILY_EXPORT_QUOTA_MB = Setting(
    "daily_export_quota_mb",
    float,
    default=500,
    minimum=0.001,
    maximum=10**7,
    description=(
        "Stop cleanly (state saved) before this many MB are exported today (US Central "
        "day); Marketo's default daily quota is 500 MB, shared by every export type. "
        "Counted before the first job and again as each file finishes from Marketo's "
        "lead, activity and program member export job lists (this API user's jobs "
        "finished today; 3 list calls each time); other API users' exports show only as "
        "Marketo's 1029, which also stops the run cleanly."
    ),
)
REST_FALLBACK = Setting(
    "rest_fallback",
    str,
    default="auto",
    choices=("auto", "always", "never"),
    description=(
        "When to read members through the REST query instead of bulk export. auto: "
        "programs whose last full export had at most rest_fallback_max_members rows, "
        "and every program when bulk export is not available (603/610). always: every "
        "program with a bookmark or start_date. never: bulk only."
    ),
)
REST_FALLBACK_MAX_MEMBERS = Setting(
    "rest_fallback_max_members",
    int,
    default=0,
    minimum=0,
    maximum=100_000,
    description="Program size (members) up to which auto reads through REST; 0 = never.",
)
STATUS_NAMES = Setting(
    "status_names",
    list[str],
    parse=_status_names,
    description=(
        "Marketo's extract filter statusNames: export only members whose program member "
        "status is one of these (ORed, any case; default and user-defined statuses). "
        "A name found in no program of a job is Marketo's 1003: that job exports "
        "nothing. Unset: every status."
    ),
)
IS_EXHAUSTED = Setting(
    "is_exhausted",
    bool,
    description=(
        "Marketo's extract filter isExhausted: true exports only members who have "
        "exhausted an engagement program's content, false only those who have not. "
        "Unset: both."
    ),
)
NURTURE_CADENCE = Setting(
    "nurture_cadence",
    str,
    choices=NURTURE_CADENCES,
    description=(
        "Marketo's extract filter nurtureCadence: pause (paused) or norm (normal "
        "cadence) engagement program members only. Unset: both. A change of "
        "status_names, is_exhausted or nurture_cadence keeps separate bookmarks: the "
        "new filter set starts from start_date."
    ),
)
PLAN_ONLY = Setting(
    "plan_only",
    bool,
    default=False,
    description=(
        "Print the plan of the next run to stderr and stop: program groups, windows, "
        "export jobs, expected bytes (from the last run's bytes per member and member "
        "counts in state, else unknown), the quota left today, and the quota days and "
        "wall time the backfill needs. Creates no export job (the local clock stands in "
        "for Marketo's), emits no RECORD and no STATE. Costs a few reads and no quota: the "
        "programs, the two field describes, and the lead, activity and program member export job "
        "lists (for the quota used today)."
    ),
)
# issue 20 (removals.py): keys-only membership snapshots diffed run to run.
DETECT_REMOVALS = Setting(
    "detect_removals",
    bool,
    default=False,
    description=(
        "Emit members who left a program (REST delete, Data Ingestion delete, a deleted "
        "lead) as program_members records with only programId, leadId and "
        "_sdc_deleted_at (a loader that upserts every column, like target-postgres, "
        "keeps the row with _sdc_deleted_at set and its other columns null). Each check "
        "is one keys-only export of the full membership per 10 programs, about 10 bytes "
        "of the daily export quota per member (9.5 measured; some 16 with 9-digit lead "
        "ids), diffed on disk against the previous check's file, which Marketo keeps "
        "seven days. State keeps only that job's id: about 130 bytes per 10 programs, "
        "whatever the member count. The first check takes a baseline; a previous file "
        "gone (checks over seven days apart) means a warning and a new baseline."
    ),
)
REMOVAL_CHECK_INTERVAL_HOURS = Setting(
    "removal_check_interval_hours",
    float,
    default=0,
    minimum=0,
    maximum=MAX_REMOVAL_INTERVAL_HOURS,
    description=(
        "With detect_removals, check a program at most this often (0: every run; 24: "
        "at most once a day), judged from the last snapshot's finishedAt. At most 144 "
        "(six days), so the previous file is still within Marketo's seven-day retention."
    ),
)
TAP_SETTINGS = (
    START_DATE,
    PROGRAM_IDS,
    LEAD_FIELDS,
    UPDATED_AT_FILTER,
    WINDOW_DAYS,
    MAX_CONCURRENT_EXPORTS,
    POLL_INTERVAL_SECONDS,
    JOB_TIMEOUT_MINUTES,
    DAILY_EXPORT_QUOTA_MB,
    REST_FALLBACK,
    REST_FALLBACK_MAX_MEMBERS,
    STATUS_NAMES,
    IS_EXHAUSTED,
    NURTURE_CADENCE,
    PLAN_ONLY,
    DETECT_REMOVALS,
    REMOVAL_CHECK_INTERVAL_HOURS,
)


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
    detect_removals: bool = False
    removal_check_interval_hours: float = 0.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TapSettings:
        """Validate a Singer config's tap settings; raise ConfigError on the first bad one."""
        values = validate(config, TAP_SETTINGS)
        return cls(
            start_date=values["start_date"],
            program_ids=values["program_ids"],
            lead_fields=values["lead_fields"],
            updated_at_filter=values["updated_at_filter"],
            window_days=values["window_days"],
            max_concurrent_exports=values["max_concurrent_exports"],
            poll_interval_seconds=float(values["poll_interval_seconds"]),
            job_timeout_minutes=float(values["job_timeout_minutes"]),
            daily_export_quota_mb=float(values["daily_export_quota_mb"]),
            rest_fallback=values["rest_fallback"],
            rest_fallback_max_members=values["rest_fallback_max_members"],
            member_filter=MemberFilter(
                status_names=values["status_names"] or (),
                is_exhausted=values["is_exhausted"],
                nurture_cadence=values["nurture_cadence"],
            ),
            plan_only=values["plan_only"],
            detect_removals=values["detect_removals"],
            removal_check_interval_hours=float(values["removal_check_interval_hours"]),
        )
