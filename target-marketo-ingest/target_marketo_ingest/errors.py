"""Errors that stop the target with one clear line (never a traceback)."""

from __future__ import annotations

from singer_sdk.exceptions import RecordsWithoutSchemaException

from target_marketo_ingest.lines import describe


class TargetError(Exception):
    """A failure reported to the user as one line and a non-zero exit."""


class SettingError(TargetError):
    """A bad setting: the message names the setting and what is expected."""


class InputError(TargetError):
    """Bad Singer input: the message names the line, the stream and the field."""

    def __init__(
        self,
        message: str,
        *,
        line: int | None = None,
        stream: str | None = None,
        field: str | None = None,
    ) -> None:
        parts = []
        if line is not None:
            parts.append(describe(line))
        if stream is not None:
            parts.append(f"stream '{stream}'")
        if field is not None:
            parts.append(f"field '{field}'")
        prefix = ", ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.line = line
        self.stream = stream
        self.field = field


class RecordBeforeSchemaError(InputError, RecordsWithoutSchemaException):
    """RECORD for a stream whose SCHEMA has not been seen (also the SDK's exception)."""


class RejectThresholdError(TargetError):
    """More records were rejected than `fail_on_rejects` allows."""


class OutcomeMissingError(TargetError):
    """A record ended the run without an outcome; must be impossible, so it is checked."""
