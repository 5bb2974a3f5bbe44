"""tap-marketo-members: program members, programs and field schemas from Marketo."""

from __future__ import annotations

import signal
import sys
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from marketo_common import ConfigError, MarketoClient, MarketoError, MarketoSettings
from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import (
    CapabilitiesEnum,
    PluginCapabilities,
    TapCapabilities,
)

from tap_marketo_members import __version__
from tap_marketo_members.exports import ExportError
from tap_marketo_members.output import check_batch_config
from tap_marketo_members.parsing import ExportParseError
from tap_marketo_members.removals import DELETED_AT, DELETED_AT_SCHEMA
from tap_marketo_members.schema import program_member_schema, select_lead_fields
from tap_marketo_members.settings import DEFAULT_LEAD_FIELDS, TapSettings
from tap_marketo_members.streams import (
    LeadFieldsStream,
    ProgramMemberFieldsStream,
    ProgramMembersStream,
    ProgramsStream,
)

if TYPE_CHECKING:
    from types import FrameType

MEMBER_DESCRIBE_PATH = "/rest/v1/programs/members/describe.json"
LEAD_DESCRIBE_PATH = "/rest/v1/leads/describe2.json"


class TapMarketoMembers(Tap):
    """Singer tap for Marketo program members (Bulk Program Member Extract)."""

    name = "tap-marketo-members"
    message_writer_class = MsgSpecWriter
    # BATCH: program member rows go from Marketo's export files straight into batch files
    # (output.BatchFiles), with each window's STATE after its files; the other streams use the
    # SDK's own batcher.
    capabilities: ClassVar[list[CapabilitiesEnum]] = [
        PluginCapabilities.BATCH,
        TapCapabilities.CATALOG,
        TapCapabilities.STATE,
        TapCapabilities.DISCOVER,
        PluginCapabilities.ABOUT,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.FLATTENING,
        PluginCapabilities.STRUCTURED_LOGGING,
    ]

    config_jsonschema = th.PropertiesList(
        th.Property(
            "client_id", th.StringType, required=True, description="Marketo API client id."
        ),
        th.Property(
            "client_secret",
            th.StringType,
            required=True,
            secret=True,
            description="Marketo API client secret (never logged).",
        ),
        th.Property(
            "base_url",
            th.StringType,
            required=True,
            description=(
                "REST endpoint, e.g. https://123-ABC-456.mktorest.com (a trailing /rest or "
                "/identity is removed). http:// only for localhost."
            ),
        ),
        th.Property(
            "munchkin_id", th.StringType, description="Munchkin id; derived from base_url if unset."
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            description=(
                "Read members updated since this time on the first run. Unset: the first run "
                "exports every member in full, later runs read changes only."
            ),
        ),
        th.Property(
            "program_ids",
            th.ArrayType(th.IntegerType),
            description="Programs to read; unset means every program the Asset API lists.",
        ),
        th.Property(
            "lead_fields",
            th.ArrayType(th.StringType),
            default=list(DEFAULT_LEAD_FIELDS),
            description='Lead fields carried on each member row; ["*"] for all lead fields.',
        ),
        th.Property(
            "updated_at_filter",
            th.StringType,
            default="auto",
            allowed_values=["auto", "on", "off"],
            description=(
                "Use Marketo's updatedAt export filter for incremental runs. auto: use it, and "
                "where the subscription answers 1035 (filter not available) export each program "
                "in full and keep only changed rows, with one warning. on: fail on 1035. "
                "off: always full exports, filtered locally."
            ),
        ),
        th.Property(
            "window_days",
            th.IntegerType,
            default=31,
            description="Days per updatedAt export window (1-31; Marketo caps ranges at 31 days).",
        ),
        th.Property(
            "max_concurrent_exports",
            th.IntegerType,
            default=2,
            description=(
                "Export jobs processing at once (1-2; 2 is Marketo's limit per subscription). "
                "With 2, two more jobs wait in Marketo's queue so both slots stay busy."
            ),
        ),
        th.Property(
            "poll_interval_seconds",
            th.NumberType,
            default=60,
            description=(
                "Seconds between status polls of a job; Marketo updates status once a minute, "
                "so lower values only make sense against the sandbox's scaled clock."
            ),
        ),
        th.Property(
            "job_timeout_minutes",
            th.NumberType,
            default=180,
            description="Cancel and fail a job not Completed this long after it was enqueued.",
        ),
        th.Property(
            "daily_export_quota_mb",
            th.NumberType,
            default=500,
            description=(
                "Stop cleanly (state saved) before this many MB are exported today (US Central "
                "day); Marketo's default daily quota is 500 MB, shared by every export type. "
                "Counted before the first job and again as each file finishes from Marketo's "
                "lead, activity and program member export job lists (this API user's jobs "
                "finished today; 3 list calls each time); other API users' exports show only as "
                "Marketo's 1029, which also stops the run cleanly."
            ),
        ),
        th.Property(
            "rest_fallback",
            th.StringType,
            default="auto",
            allowed_values=["auto", "always", "never"],
            description=(
                "When to read members through the REST query instead of bulk export. auto: "
                "programs whose last full export had at most rest_fallback_max_members rows, "
                "and every program when bulk export is not available (603/610). always: every "
                "program with a bookmark or start_date. never: bulk only."
            ),
        ),
        th.Property(
            "rest_fallback_max_members",
            th.IntegerType,
            default=0,
            description="Program size (members) up to which auto reads through REST; 0 = never.",
        ),
        th.Property(
            "status_names",
            th.ArrayType(th.StringType),
            description=(
                "Marketo's extract filter statusNames: export only members whose program member "
                "status is one of these (ORed, any case; default and user-defined statuses). "
                "A name found in no program of a job is Marketo's 1003: that job exports "
                "nothing. Unset: every status."
            ),
        ),
        th.Property(
            "is_exhausted",
            th.BooleanType,
            description=(
                "Marketo's extract filter isExhausted: true exports only members who have "
                "exhausted an engagement program's content, false only those who have not. "
                "Unset: both."
            ),
        ),
        th.Property(
            "nurture_cadence",
            th.StringType,
            allowed_values=["pause", "norm"],
            description=(
                "Marketo's extract filter nurtureCadence: pause (paused) or norm (normal "
                "cadence) engagement program members only. Unset: both. A change of "
                "status_names, is_exhausted or nurture_cadence keeps separate bookmarks: the "
                "new filter set starts from start_date."
            ),
        ),
        th.Property(
            "plan_only",
            th.BooleanType,
            default=False,
            description=(
                "Print the plan of the next run to stderr and stop: program groups, windows, "
                "export jobs, expected bytes (from the last run's bytes per member and member "
                "counts in state, else unknown), the quota left today, and the quota days and "
                "wall time the backfill needs. Creates no export job (the local clock stands in "
                "for Marketo's), emits no RECORD and no STATE. Costs only Asset API program "
                "reads."
            ),
        ),
        th.Property(
            "detect_removals",
            th.BooleanType,
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
        ),
        th.Property(
            "removal_check_interval_hours",
            th.NumberType,
            default=0,
            description=(
                "With detect_removals, check a program at most this often (0: every run; 24: "
                "at most once a day), judged from the last snapshot's finishedAt. At most 144 "
                "(six days), so the previous file is still within Marketo's seven-day retention."
            ),
        ),
        th.Property(
            "request_timeout_seconds", th.NumberType, description="HTTP read timeout in seconds."
        ),
        th.Property(
            "max_retries",
            th.IntegerType,
            description="Retries of a failed Marketo call (default 6).",
        ),
        th.Property(
            "max_retry_seconds",
            th.NumberType,
            description="Advanced: stop retrying one call after this many seconds (default 600).",
        ),
        th.Property(
            "rate_limit_calls",
            th.IntegerType,
            description="Advanced: REST calls allowed per rate_limit_period (Marketo: 100).",
        ),
        th.Property(
            "rate_limit_period",
            th.NumberType,
            description="Advanced: the rate-limit window in seconds (Marketo: 20).",
        ),
        th.Property(
            "max_concurrent_calls",
            th.IntegerType,
            description="Advanced: REST calls in flight at once (Marketo: 10).",
        ),
    ).to_dict()

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """One line per problem, naming the setting, before the SDK's schema checks."""
        try:
            MarketoSettings.from_config(self._config)
            settings = TapSettings.from_config(self._config)
            if self._config.get("batch_config") is not None:
                check_batch_config(self._config["batch_config"])
            if settings.rest_fallback == "always" and settings.start_date is None:
                raise ConfigError(  # noqa: TRY301
                    "start_date", "a date when rest_fallback is 'always' (REST reads by window)"
                )
        except ConfigError as exc:
            if raise_errors:
                raise ConfigValidationError(str(exc), errors=[str(exc)]) from None
            self.logger.warning("%s", exc)
            return [str(exc)]
        return super()._validate_config(raise_errors=raise_errors)

    @cached_property
    def tap_settings(self) -> TapSettings:
        """Validated export settings."""
        return TapSettings.from_config(self.config)

    @cached_property
    def marketo_client(self) -> MarketoClient:
        """The one HTTP entry point for every stream."""
        return MarketoClient(
            MarketoSettings.from_config(self.config),
            user_agent=f"tap-marketo-members/{__version__}",
        )

    def discover_streams(self) -> list[Any]:
        """Static streams plus `program_members`, whose schema comes from Marketo's describes."""
        member_fields = _describe_fields(self.marketo_client.get(MEMBER_DESCRIBE_PATH))
        lead_describe = _describe_fields(self.marketo_client.get(LEAD_DESCRIBE_PATH))
        lead_fields = select_lead_fields(lead_describe, list(self.tap_settings.lead_fields))
        member_schema = program_member_schema(member_fields, lead_fields)
        if self.tap_settings.detect_removals:  # issue 20: removal records carry it
            member_schema["properties"][DELETED_AT] = dict(DELETED_AT_SCHEMA)
        return [
            ProgramsStream(self),
            ProgramMembersStream(
                self,
                schema=member_schema,
                member_field_names=[f["name"] for f in member_fields],
            ),
            ProgramMemberFieldsStream(self),
            LeadFieldsStream(self),
        ]

    def sync_all(self) -> None:
        """With plan_only, print the next run's plan to stderr instead of syncing."""
        if not self.tap_settings.plan_only:
            super().sync_all()
            return
        self._set_compatible_replication_methods()
        programs = self.streams["programs"]
        members = self.streams["program_members"]
        if not isinstance(programs, ProgramsStream) or not isinstance(
            members, ProgramMembersStream
        ):
            raise TypeError("plan_only needs the programs and program_members streams")
        if not members.selected:
            sys.stderr.write("program_members plan: stream not selected; nothing to export\n")
            return
        contexts, created_at = [], {}
        for program in programs.get_records(None):
            row = programs.post_process(dict(program)) or program
            contexts.append({"programId": row["id"]})
            if row.get("createdAt"):
                created_at[int(row["id"])] = str(row["createdAt"])
        sys.stderr.write("\n".join(members.plan_lines(contexts, created_at)) + "\n")

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:  # noqa: ARG002
        """SIGINT/SIGTERM: save state, then unwind so every unfinished export is cancelled."""
        self.logger.warning(
            "Received %s: cancelling this run's unfinished exports", signal.Signals(signum).name
        )
        try:
            self.state_writer.write_state(self.state)
        finally:
            sys.exit(128 + signum)

    @classmethod
    def invoke(cls, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Known failures end with one clear line and exit code 1, never a traceback."""
        try:
            super().invoke(*args, **kwargs)
        except (MarketoError, ExportError, ExportParseError, ConfigError) as exc:
            cls.logger.error("%s", exc)  # noqa: TRY400
            sys.exit(1)


def _describe_fields(envelope: dict[str, Any]) -> list[dict[str, Any]]:
    result = envelope.get("result") or []
    if result and isinstance(result[0], dict) and "fields" in result[0]:
        return list(result[0]["fields"])
    return [item for item in result if isinstance(item, dict) and "name" in item]


if __name__ == "__main__":
    TapMarketoMembers.cli()
