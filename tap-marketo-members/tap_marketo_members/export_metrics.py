"""METRIC lines for bulk export jobs, in the SDK's metrics format, beside its record counts.

A dashboard reading the tap's log sees each job created and finished (by status), how long it
sat Queued and then Processing (the SDK's `job_duration` timer with `job_type`), the bytes
downloaded, and today's export quota used and left (`daily_export_quota_mb`).
"""

from __future__ import annotations

import enum
import typing as t

from singer_sdk import metrics


class ExportMetric(str, enum.Enum):
    """Metric names of export jobs (the SDK's `Metric` enum has none for them)."""

    JOB_COUNT = "export_job_count"
    BYTES_DOWNLOADED = "export_bytes_downloaded"
    QUOTA_USED = "export_quota_used_bytes"
    QUOTA_LEFT = "export_quota_left_bytes"


STREAM = "program_members"


def _log(metric_type: str, metric: t.Any, value: float, **tags: t.Any) -> None:
    point = metrics.Point(metric_type, metric, value, {metrics.Tag.STREAM: STREAM, **tags})
    metrics.log(metrics.get_metrics_logger(), point)


def job(export_id: str, status: str) -> None:
    """One export job reached `status` (Created, Completed, Failed, Cancelled)."""
    _log("counter", ExportMetric.JOB_COUNT, 1, export_id=export_id, status=status)


def phase(export_id: str, phase_name: str, seconds: float, status: str) -> None:
    """Seconds a job spent Queued or Processing, logged when it left that status."""
    _log(
        "timer",
        metrics.Metric.JOB_DURATION,
        round(seconds, 3),
        **{metrics.Tag.JOB_TYPE: f"export_{phase_name}"},
        export_id=export_id,
        status=status,
    )


def downloaded(export_id: str, size: int) -> None:
    """Bytes of one export file, read and verified."""
    _log("counter", ExportMetric.BYTES_DOWNLOADED, size, export_id=export_id)


def quota(used: int, quota_bytes: float) -> None:
    """Today's export bytes against the daily quota."""
    _log("gauge", ExportMetric.QUOTA_USED, used)
    _log("gauge", ExportMetric.QUOTA_LEFT, max(0, int(quota_bytes) - used))
