"""What every bulk endpoint needs: the caller, options, the file folder."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import orjson

from marketo_sandbox.assumptions import defaults
from marketo_sandbox.envelope import MarketoHTTPError
from marketo_sandbox.identity import authenticate
from marketo_sandbox.state import state_of

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from starlette.applications import Starlette
    from starlette.requests import HTTPConnection, Request


#: Option defaults of the bulk families (`AdminClient.set_options` overrides them).
DEFAULTS: dict[str, Any] = {
    "export_rows_per_second": 1000.0,
    "import_rows_per_second": 1000.0,
    "import_duration_jitter": 0.0,
    "job_fixed_seconds": None,
    "export_daily_quota_mb": 500.0,
    "updated_at_filter_supported": True,
    "export_max_processing": 2,
    "export_max_queued": 10,
    "import_max_running": 2,
    "import_max_jobs": 10,
    "export_file_retention_days": 7,
    "import_batch_retention_days": 7,
}

DAY = 86400.0


def option(holder: HTTPConnection | Starlette, name: str) -> Any:
    """A sandbox option, falling back to the bulk default."""
    value = state_of(holder).options.get(name)
    if value is None:
        return DEFAULTS[name] if name in DEFAULTS else assumed_default(name)
    return value


def assumed_default(name: str) -> Any:
    """The sandbox's own choice for an assumed behaviour (`assumptions.ASSUMPTIONS`)."""
    return defaults().get(name)


def job_duration(app: Starlette, rate_option: str) -> Callable[[int], float]:
    """Sandbox seconds a job of n rows takes: `job_fixed_seconds`, else rows ÷ the rate option."""

    def duration(rows: int) -> float:
        fixed = option(app, "job_fixed_seconds")
        if fixed is not None:
            return float(fixed)
        rate = float(option(app, rate_option))
        return rows / rate if rate > 0 else 0.0

    return duration


def caller(request: Request, form: Any = None) -> str:
    """Authenticate a bulk call (header, query, or `access_token` form field) → its client id."""
    token = form.get("access_token") if form is not None else None
    return authenticate(request, form_token=token if isinstance(token, str) else None).client_id


async def json_body(request: Request) -> dict:
    """The request's JSON object, or Marketo's 609 for anything else."""
    raw = await request.body()
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError as exc:
        raise MarketoHTTPError(609, "Invalid JSON") from exc
    if not isinstance(body, dict):
        raise MarketoHTTPError(609, "Invalid JSON: an object is expected")
    return body


def iso(epoch: float | None) -> str | None:
    """Marketo's datetime format for a stored epoch."""
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def files_dir(holder: HTTPConnection | Starlette) -> Path:
    """Directory for export and import files (`SandboxState.files_dir`)."""
    return state_of(holder).files_dir
