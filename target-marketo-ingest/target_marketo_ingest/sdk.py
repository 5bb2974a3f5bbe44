"""The target's one adapter to singer-sdk internals: every private SDK name used lives here.

The SDK has no public hooks for what this target must own (a STATE only after every earlier
record has an outcome, BATCH files streamed row by row, a record's input line in every
reject), so `SdkTarget` maps the SDK's private message handlers onto public `on_*` methods
and offers the few private attributes as named properties. `tests/target/test_sdk_adapter.py`
pins each name in `SDK_NAMES` so an SDK upgrade that moves one fails there, loudly.
"""

from __future__ import annotations

import typing as t

from singer_sdk.helpers._batch import BaseBatchFileEncoding, BatchFileFormat, StorageTarget
from singer_sdk.plugin_base import _ConfigInput
from singer_sdk.target_base import Target

if t.TYPE_CHECKING:
    from singer_sdk.sinks import Sink

__all__ = [
    "BaseBatchFileEncoding",
    "BatchFileFormat",
    "SdkTarget",
    "StorageTarget",
    "config_input",
]

#: SDK handler the reader calls -> the public method a subclass defines instead.
MESSAGE_HOOKS = {
    "_process_schema_message": "on_schema",
    "_process_record_message": "on_record",
    "_process_state_message": "on_state",
    "_process_activate_version_message": "on_activate_version",
    "_process_batch_message": "on_batch",
}
#: Every private SDK name this module touches (pinned by a test).
SDK_NAMES = (
    "singer_sdk.helpers._batch.BaseBatchFileEncoding",
    "singer_sdk.helpers._batch.BatchFileFormat",
    "singer_sdk.helpers._batch.StorageTarget",
    "singer_sdk.plugin_base._ConfigInput",
    *(f"Target.{name}" for name in MESSAGE_HOOKS),
    "Target._handle_termination",
    "Target._MAX_RECORD_AGE_IN_MINUTES",
    "Target._sinks_active",
    "Target._sinks_to_clear",
)


class SdkTarget(Target):
    """A singer-sdk Target whose message handling a subclass owns through `on_*` methods.

    A subclass's `on_*` method *is* the SDK's handler (bound at class creation, not called
    through a wrapper): RECORD is the hot path.
    """

    def __init_subclass__(cls, **kwargs: t.Any) -> None:
        super().__init_subclass__(**kwargs)
        for private, public in MESSAGE_HOOKS.items():
            if public in vars(cls):
                setattr(cls, private, vars(cls)[public])
        if "on_termination" in vars(cls):
            cls._handle_termination = vars(cls)["on_termination"]  # type: ignore[method-assign]

    def sdk_schema(self, message_dict: dict) -> None:
        """The SDK's own SCHEMA handling: stream maps, then a sink per stream."""
        Target._process_schema_message(self, message_dict)  # noqa: SLF001

    @property
    def active_sinks(self) -> dict[str, Sink]:
        """Stream name -> its current sink."""
        return self._sinks_active

    def take_replaced_sinks(self) -> list[Sink]:
        """Sinks a new SCHEMA replaced since the last call (the SDK would drain them)."""
        sinks, self._sinks_to_clear = self._sinks_to_clear, []
        return sinks

    @property
    def max_record_age_seconds(self) -> float:
        """How long the SDK lets a record wait before draining (5 minutes)."""
        return float(self._MAX_RECORD_AGE_IN_MINUTES) * 60


def config_input() -> t.Any:
    """The SDK's default `--config` input (none given): what `Target.invoke` starts from."""
    return _ConfigInput()
