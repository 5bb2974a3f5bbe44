"""What every bulk endpoint needs: the caller, options, the job scheduler, the file folder."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from marketo_sandbox.assumptions import defaults
from marketo_sandbox.envelope import MarketoHTTPError
from marketo_sandbox.identity import authenticate

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.requests import Request

    from marketo_sandbox.bulk.jobs import Scheduler

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


def option(app_or_request: Any, name: str) -> Any:
    """A sandbox option, falling back to the bulk default."""
    app = getattr(app_or_request, "app", app_or_request)
    options = getattr(app.state, "options", None) or {}
    value = options.get(name) if hasattr(options, "get") else None
    if value is None:
        return DEFAULTS[name] if name in DEFAULTS else assumed_default(name)
    return value


def assumed_default(name: str) -> Any:
    """The sandbox's own choice for an assumed behaviour (`assumptions.ASSUMPTIONS`)."""
    return defaults().get(name)


def job_duration(app: Any, rate_option: str) -> Callable[[int], float]:
    """Sandbox seconds a job of n rows takes: `job_fixed_seconds`, else rows ÷ the rate option."""

    def duration(rows: int) -> float:
        fixed = option(app, "job_fixed_seconds")
        if fixed is not None:
            return float(fixed)
        rate = float(option(app, rate_option))
        return rows / rate if rate > 0 else 0.0

    return duration


def user_key(user: Any) -> str:
    """A stable name for the API user that owns a job."""
    for attr in ("client_id", "name", "id", "user_id"):
        value = getattr(user, attr, None)
        if value:
            return str(value)
    return str(user)


def caller(request: Request, form: Any = None) -> str:
    """Authenticate a bulk call (header, query, or `access_token` form field) → API user key."""
    token = form.get("access_token") if form is not None else None
    user = authenticate(request, form_token=token if isinstance(token, str) else None)
    return user_key(user)


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


_DIR_LOCK = threading.Lock()


def files_dir(app: Any) -> Path:
    """Directory for export and import files: beside the SQLite database, so restarts keep them."""
    store = app.state.store
    db = getattr(store, "path", None) or getattr(store, "db_path", None)
    if db and str(db) != ":memory:":
        base = Path(db).with_name(Path(db).name + ".files")
    else:
        base = Path(getattr(app.state, "files_dir", None) or Path.cwd() / "marketo-sandbox-files")
    with _DIR_LOCK:
        for sub in ("exports", "imports"):
            (base / sub).mkdir(parents=True, exist_ok=True)
    return base


def scheduler(request_or_app: Any) -> Scheduler:
    """The app's job scheduler with every bulk pool registered."""
    from marketo_sandbox.bulk import export, imports  # noqa: PLC0415 - avoid an import cycle
    from marketo_sandbox.bulk.jobs import scheduler_for  # noqa: PLC0415

    app = getattr(request_or_app, "app", request_or_app)

    def setup(sched: Scheduler) -> None:
        export.setup(app, sched)
        imports.setup(app, sched)
        try:
            from marketo_sandbox.ingestion import apply  # noqa: PLC0415

            apply.setup(app, sched)
        except ImportError:  # pragma: no cover - ingestion is part of this package
            pass

    return scheduler_for(app, setup)
