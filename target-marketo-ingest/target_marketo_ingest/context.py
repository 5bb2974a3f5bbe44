"""What every write method needs from the target, in one place."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from target_marketo_ingest.rejects import REJECT, WARNING

if t.TYPE_CHECKING:
    import logging

    from marketo_common import MarketoClient

    from target_marketo_ingest.checkpoint import Checkpoints
    from target_marketo_ingest.executor import FailureLatch
    from target_marketo_ingest.rejects import RejectsFile
    from target_marketo_ingest.routing import StreamRoute
    from target_marketo_ingest.settings import TargetOptions
    from target_marketo_ingest.summary import StreamSummary


@dataclass
class WriteContext:
    """Per-stream handles for a write method."""

    stream: str
    route: StreamRoute
    client: MarketoClient | None
    rejects: RejectsFile
    checkpoints: Checkpoints
    summary: StreamSummary
    options: TargetOptions
    fatal: FailureLatch
    logger: logging.Logger

    def reject(
        self,
        *,
        line: int | None,
        reason: str,
        message: str,
        record: t.Any,
        field: str | None = None,
        code: str | int | None = None,
    ) -> None:
        """Write a reject entry and count it."""
        self.rejects.write(
            kind=REJECT,
            stream=self.stream,
            line=line,
            reason=reason,
            message=message,
            record=record,
            method=self.route.method,
            field=field,
            code=code,
        )
        self.summary.reject(reason)

    def warn(
        self,
        *,
        line: int | None,
        message: str,
        record: t.Any,
        code: str | int | None = None,
    ) -> None:
        """A Marketo warning: a reject when `warnings_as_rejects`, else a warning entry."""
        if self.options.warnings_as_rejects:
            self.reject(
                line=line, reason="marketo_warning", message=message, record=record, code=code
            )
            return
        self.rejects.write(
            kind=WARNING,
            stream=self.stream,
            line=line,
            reason="marketo_warning",
            message=message,
            record=record,
            method=self.route.method,
            code=code,
        )
        self.summary.add("warnings")

    def api_call(self, count: int = 1) -> None:
        """Count an API call made for this stream."""
        self.summary.add("api_calls", count)
