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
    from target_marketo_ingest.summary import StreamSummary


@dataclass
class TargetOptions:
    """Run-wide settings the write methods read."""

    dry_run: bool = False
    max_import_bytes: int = 10_000_000
    max_concurrent_imports: int = 2
    import_queue_files: int = 2
    poll_interval_seconds: float = 5.0
    poll_max_seconds: float = 30.0
    warnings_as_rejects: bool = False
    unknown_fields: str = "error"
    ingestion_max_bytes: int = 1_000_000
    ingestion_max_objects: int = 1000
    ingestion_parallel_requests: int = 4
    rest_batch_size: int = 300
    verify_timeout_seconds: float = 600.0  # read-back verification of Data Ingestion
    work_dir: str | None = None


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
