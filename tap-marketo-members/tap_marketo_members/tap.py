"""tap-marketo-members: program members, programs and field schemas from Marketo."""

from __future__ import annotations

import signal
import sys
from functools import cached_property
from typing import Any, ClassVar

from marketo_common import ConfigError, MarketoClient, MarketoError, MarketoSettings
from marketo_common.declarations import to_jsonschema
from marketo_common.fields import FieldSpec, parse_describe
from marketo_common.program_member_export import ExportError
from marketo_common.settings import (
    BASE_URL,
    CLIENT_ID,
    CLIENT_SECRET,
    MAX_CONCURRENT_CALLS,
    MAX_RETRIES,
    MAX_RETRY_SECONDS,
    MUNCHKIN_ID,
    RATE_LIMIT_CALLS,
    RATE_LIMIT_PERIOD,
    REQUEST_TIMEOUT_SECONDS,
)
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.helpers.capabilities import (
    CapabilitiesEnum,
    PluginCapabilities,
    TapCapabilities,
)

from tap_marketo_members import __version__
from tap_marketo_members.parsing import ExportParseError
from tap_marketo_members.removals import DELETED_AT, DELETED_AT_SCHEMA
from tap_marketo_members.schema import program_member_schema, select_lead_fields
from tap_marketo_members.sdk import ValidatingTap
from tap_marketo_members.settings import TAP_SETTINGS, TapSettings
from tap_marketo_members.streams import (
    LeadFieldsStream,
    ProgramCatalog,
    ProgramMemberFieldsStream,
    ProgramMembersStream,
    ProgramsStream,
)
from tap_marketo_members.writers import check_batch_config

MEMBER_DESCRIBE_PATH = "/rest/v1/programs/members/describe.json"
LEAD_DESCRIBE_PATH = "/rest/v1/leads/describe2.json"


class TapMarketoMembers(ValidatingTap):
    """Singer tap for Marketo program members (Bulk Program Member Extract)."""

    name = "tap-marketo-members"
    message_writer_class = MsgSpecWriter
    # BATCH: program member rows go from Marketo's export files straight into batch files
    # (writers.BatchFiles), with each window's STATE after its files; the other streams use the
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

    # One declaration per setting (marketo_common.declarations): the schema and validation.
    config_jsonschema = to_jsonschema(
        [
            CLIENT_ID,
            CLIENT_SECRET,
            BASE_URL,
            MUNCHKIN_ID,
            *TAP_SETTINGS,
            *(
                REQUEST_TIMEOUT_SECONDS,
                MAX_RETRIES,
                MAX_RETRY_SECONDS,
                RATE_LIMIT_CALLS,
                RATE_LIMIT_PERIOD,
                MAX_CONCURRENT_CALLS,
            ),
        ]
    )

    def validate_settings(self, config: dict[str, Any]) -> None:
        """One line for the first bad setting, naming it, before the SDK's schema checks."""
        MarketoSettings.from_config(config)
        settings = TapSettings.from_config(config)
        if config.get("batch_config") is not None:
            check_batch_config(config["batch_config"])
        if settings.rest_fallback == "always" and settings.start_date is None:
            raise ConfigError(
                "start_date", "a date when rest_fallback is 'always' (REST reads by window)"
            )

    @cached_property
    def program_catalog(self) -> ProgramCatalog:
        """The programs read this run: `program_members`' partitions."""
        return ProgramCatalog()

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
                member_field_names=[f.name for f in member_fields],
            ),
            ProgramMemberFieldsStream(self),
            LeadFieldsStream(self),
        ]

    def sync_all(self) -> None:
        """With plan_only, print the next run's plan to stderr instead of syncing."""
        if not self.tap_settings.plan_only:
            super().sync_all()
            return
        self.set_compatible_replication_methods()
        programs = self.streams["programs"]
        members = self.streams["program_members"]
        if not isinstance(programs, ProgramsStream) or not isinstance(
            members, ProgramMembersStream
        ):
            raise TypeError("plan_only needs the programs and program_members streams")
        if not members.selected:
            sys.stderr.write("program_members plan: stream not selected; nothing to export\n")
            return
        for program in programs.get_records(None):
            row = programs.post_process(dict(program)) or program
            programs.add_child_partition(programs.get_child_context(row, None) or {})
        sys.stderr.write("\n".join(members.plan_lines()) + "\n")

    def on_termination(self, signum: int) -> None:
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


def _describe_fields(envelope: dict[str, Any]) -> list[FieldSpec]:
    return list(parse_describe(envelope.get("result") or []).values())


if __name__ == "__main__":
    TapMarketoMembers.cli()
