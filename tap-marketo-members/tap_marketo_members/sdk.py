"""Every singer-sdk name this tap uses that the SDK does not export publicly, in one place.

`tests/tap/test_sdk_adapter.py` pins each of them, so an SDK upgrade that moves one fails that
test instead of failing a sync; a structure test checks no other tap module touches them.

Why the tap needs them at all, in one sentence each:
- `BatchConfig`: the parsed standard `batch_config` setting (`singer_sdk.helpers._batch`).
- `GroupedChildrenParent`: the SDK syncs a child stream once per parent record; a bulk export
  job holds up to 10 programs, so `program_members` syncs once, after `programs`, over every
  partition the parent gave (`_sync_children`, `_sync_records`).
- `PartitionGroupStream`: that one sync runs all partitions together (`_sync_records`), writes
  STATE at the export engine's commits (`_write_state_message`, `state_manager.is_flushed`),
  and reaches the SDK's record writer, stream version and record limit (stream maps, dry runs).
- `ValidatingTap`: settings are checked with one-line errors before the SDK's schema check
  (`_validate_config`, `_config`), SIGINT/SIGTERM save state first (`_handle_termination`), and
  `plan_only` prepares streams as `sync_all` does (`_set_compatible_replication_methods`).
- `stream_tap`: a stream's tap (`Stream._tap`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from marketo_common import ConfigError
from singer_sdk import Stream, Tap
from singer_sdk.exceptions import (
    AbortedSyncFailedException,
    AbortedSyncPausedException,
    ConfigValidationError,
)
from singer_sdk.helpers._batch import BatchConfig

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import FrameType

    from singer_sdk.helpers import types

__all__ = [
    "BatchConfig",
    "GroupedChildrenParent",
    "PartitionGroupStream",
    "ValidatingTap",
    "stream_tap",
]

ABORTED = (AbortedSyncFailedException, AbortedSyncPausedException)


def stream_tap(stream: Stream) -> Tap:
    """The tap a stream belongs to (the SDK keeps it as `_tap`)."""
    return stream._tap  # noqa: SLF001


class GroupedChildrenParent(Stream):
    """A parent whose children sync once, after its own records, not once per record.

    Each context `get_child_context` gives (for a record no stream map filtered out) goes to
    `add_child_partition`; each child reads them from its own `partitions` property. A dry
    run that stops the parent early still syncs the children.
    """

    def add_child_partition(self, context: types.Context) -> None:
        """A child partition, to sync after the parent."""

    def _sync_children(self, child_context: types.Context | None) -> None:
        if child_context is not None:
            self.add_child_partition(child_context)

    def _sync_records(
        self, context: types.Context | None = None, *, write_messages: bool = True
    ) -> Iterator[dict]:
        try:
            yield from super()._sync_records(context, write_messages=write_messages)
        except ABORTED:
            self._sync_grouped_children()
            raise
        self._sync_grouped_children()

    def _sync_grouped_children(self) -> None:
        for child in self.child_streams:
            if child.selected and child.partitions:
                try:
                    child.sync()
                except ABORTED:
                    continue


class PartitionGroupStream(Stream):
    """A stream that syncs all its partitions in one pass (`sync_partitions`)."""

    def sync_partitions(self, *, write_messages: bool) -> None:
        """Sync every partition of `partitions` together."""
        raise NotImplementedError

    def _sync_records(
        self,
        context: types.Context | None = None,  # noqa: ARG002 - every partition, always
        *,
        write_messages: bool = True,
    ) -> Iterator[dict]:
        self.sync_partitions(write_messages=write_messages)
        yield from ()

    def state_changed(self) -> None:
        """The state has news: the SDK writes a STATE at its next chance."""
        self.state_manager.is_flushed = False

    def write_state(self) -> None:
        """Write a STATE message now."""
        self.state_manager.is_flushed = False
        self._write_state_message()

    def write_pending_state(self) -> None:
        """Write a STATE message if the state changed since the last one."""
        self._write_state_message()

    def write_record(self, record: dict) -> None:
        """One RECORD through the SDK (stream maps and flattening apply)."""
        self._write_record_message(record)

    @property
    def stream_version(self) -> int | None:
        """The ACTIVATE_VERSION of a FULL_TABLE sync, for RECORD lines written by hand."""
        return self._stream_version

    def check_record_limit(self, count: int) -> None:
        """Abort the sync the SDK's way (STATE first) once a dry run's limit is reached."""
        self._check_max_record_limit(count)


class ValidatingTap(Tap):
    """A tap that validates settings itself first, and saves state on SIGINT/SIGTERM."""

    def validate_settings(self, config: dict[str, Any]) -> None:
        """Raise `marketo_common.ConfigError` for the first bad setting."""

    def on_termination(self, signum: int) -> None:
        """SIGINT/SIGTERM arrived."""

    def set_compatible_replication_methods(self) -> None:
        """Apply the catalog's replication methods to parents and children, as `sync_all` does."""
        self._set_compatible_replication_methods()

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        try:
            self.validate_settings(self._config)
        except ConfigError as exc:
            if raise_errors:
                raise ConfigValidationError(str(exc), errors=[str(exc)]) from None
            self.logger.warning("%s", exc)
            return [str(exc)]
        return super()._validate_config(raise_errors=raise_errors)

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:  # noqa: ARG002
        self.on_termination(signum)
