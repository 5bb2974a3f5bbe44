"""Errors that stop the target with one clear line (never a traceback)."""

from __future__ import annotations

from marketo_common.errors import ConfigError
from singer_sdk.exceptions import RecordsWithoutSchemaException

from target_marketo_ingest.lines import describe


class TargetError(Exception):
    """A failure reported to the user as one line and a non-zero exit."""


def setting_error(path: str, text: str) -> ConfigError:
    """A bad setting, in the target's one-line form `path: what is wrong`.

    One error type for settings across the project (marketo_common's ConfigError); the line
    names the exact setting, e.g. `streams.leads.lookup_field: expected a non-empty string`.
    """
    return ConfigError(path, text, message=f"{path}: {text}")


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
