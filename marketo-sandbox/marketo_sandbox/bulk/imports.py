"""What Bulk Lead Import and Bulk Program Member Import share: the upload, the queue, row checks.

Both import types share one queue (assumed: Marketo documents the same 2 importing / 10 in queue
limit for each and does not say whether they are separate): at most 2 Importing, and at most 10
jobs Queued or Importing; the 11th gets 1016 "Too many imports".
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from marketo_sandbox.bulk import files
from marketo_sandbox.bulk.common import (
    DAY,
    caller,
    files_dir,
    iso,
    job_duration,
    option,
)
from marketo_sandbox.clock import parse_datetime
from marketo_sandbox.envelope import MarketoHTTPError, ok
from marketo_sandbox.jobs import Pool, every, fetch_all, fetch_one, iter_chunks, next_seq
from marketo_sandbox.state import state_of

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from starlette.applications import Starlette
    from starlette.requests import Request

    from marketo_sandbox.jobs import Scheduler

log = logging.getLogger("marketo_sandbox.bulk")
#: A job kind's row handler, built from the store and the job's params.
RowHandlerFactory = "Callable[[Store, dict], RowHandler]"

TABLE = "bulk_import_jobs"
SCHEMA = """
CREATE TABLE IF NOT EXISTS bulk_import_jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq INTEGER,
    kind TEXT NOT NULL,
    api_user TEXT NOT NULL,
    format TEXT NOT NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    queued_at REAL,
    started_at REAL,
    finished_at REAL,
    work_done INTEGER NOT NULL DEFAULT 0,
    due_at REAL,
    fail_message TEXT,
    rows_processed INTEGER,
    rows_failed INTEGER,
    rows_warning INTEGER,
    upload_path TEXT,
    upload_size INTEGER,
    failures_path TEXT,
    warnings_path TEXT
);
CREATE INDEX IF NOT EXISTS bulk_import_jobs_status ON bulk_import_jobs (status, seq);
"""
POOL = "import"
#: "Maximum import file size: 10 MB" (bulk-import.md "Limits"): 10,000,000 bytes, the decimal
#: megabyte (assumed: the page does not say which; the decimal one refuses a file either may).
MAX_FILE_BYTES = 10_000_000
#: Multipart framing and the other form fields on top of the file.
_MULTIPART_SLACK = 1024 * 1024
CHUNK_ROWS = 500
FAILURE_COLUMN = "Import Failure Reason"
WARNING_COLUMN = "Import Warning Reason"
#: A job's file path column, cleared once its file is deleted.
_CLEAR_FILE = {
    "upload_path": "UPDATE bulk_import_jobs SET upload_path = NULL WHERE id = ?",
    "failures_path": "UPDATE bulk_import_jobs SET failures_path = NULL WHERE id = ?",
    "warnings_path": "UPDATE bulk_import_jobs SET warnings_path = NULL WHERE id = ?",
}
LEADS = "leads"
PROGRAM_MEMBERS = "program_members"

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


def setup(app: Starlette, sched: Scheduler, handlers: Mapping[str, RowHandlerFactory]) -> None:
    """Register the import pool; each job kind (`LEADS`, `PROGRAM_MEMBERS`) brings its handler."""
    out_dir = files_dir(app) / "imports"

    def work(job: dict, should_stop: Callable[[], bool]) -> tuple[dict, int]:
        handler = handlers[job["kind"]](state_of(app).store, orjson.loads(job["params"]))
        return run_import(job, out_dir, handler, should_stop)

    sched.hooks.append(_housekeeping_hook(app, sched))
    sched.add_pool(
        Pool(
            name=POOL,
            table=TABLE,
            queued="Queued",
            running="Importing",
            done="Complete",
            max_running=lambda: int(option(app, "import_max_running")),
            work=work,
            duration=_jittered(app, job_duration(app, "import_rows_per_second")),
        )
    )


def _jittered(app: Any, duration: Callable[[int], float]) -> Callable[[int], float]:
    """`duration` scaled by a factor from 1 ± `import_duration_jitter` (assumed switch, default 0).

    Real import jobs of the same size do not take the same time; a client must not rely on it.
    """

    def scaled(rows: int) -> float:
        jitter = float(option(app, "import_duration_jitter") or 0.0)
        factor = random.uniform(1.0 - jitter, 1.0 + jitter) if jitter > 0 else 1.0  # noqa: S311
        return duration(rows) * max(0.0, factor)

    return scaled


def _housekeeping_hook(app: Any, sched: Scheduler) -> Callable[[float], None]:
    """Drop uploads of finished batches, and failures/warnings files once the batch id expires.

    Uploads stay until the batch is final, so a batch interrupted by a restart can run again.
    """

    def hook(now: float) -> None:
        keep = float(option(app, "import_batch_retention_days")) * DAY
        jobs = fetch_all(
            sched.store.db.conn(),
            "SELECT id, status, created_at, upload_path, failures_path, warnings_path "
            "FROM bulk_import_jobs WHERE status IN ('Complete', 'Failed') AND "
            "(upload_path IS NOT NULL OR (created_at < ? AND failures_path IS NOT NULL))",
            (now - keep,),
        )
        for job in jobs:
            expired = job["created_at"] < now - keep
            names = ["upload_path"] + (["failures_path", "warnings_path"] if expired else [])
            for name in names:
                if job[name]:
                    Path(job[name]).unlink(missing_ok=True)
            with sched.store.db.tx() as conn:
                for name in names:
                    conn.execute(_CLEAR_FILE[name], (job["id"],))

    return every(60.0, hook)


# ---------------------------------------------------------------------------- row checks


def _boolean(text: str) -> bool:
    low = text.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(text)


def _datetime(text: str) -> str:
    return parse_datetime(text).strftime("%Y-%m-%dT%H:%M:%SZ")


_PARSERS: dict[str, Callable[[str], Any]] = {
    "integer": int,
    "score": int,
    "float": float,
    "currency": float,
    "percent": float,
    "boolean": _boolean,
    "date": lambda text: dt.date.fromisoformat(text[:10]).isoformat(),
    "datetime": _datetime,
}


def coerce(value: str, field: dict) -> tuple[Any, str | None, str | None]:
    """(value, failure, warning) for one cell against a describe field.

    Invalid numbers, booleans and dates fail the row (Marketo: "invalid value"); a malformed email
    is reported as a warning, and a string longer than the field is truncated with a warning.
    """
    name, kind = field["name"], (field.get("dataType") or "string").lower()
    parser = _PARSERS.get(kind)
    if parser is not None:
        try:
            return parser(value.strip()), None, None
        except ValueError:
            return None, f"Invalid value for field '{name}' ({kind}): '{value}'", None
    if kind == "email" and not _EMAIL.match(value.strip()):
        return value, None, f"Invalid email address for field '{name}': '{value}'"
    length = field.get("length")
    if length and len(value) > int(length):
        return value[: int(length)], None, f"Value for field '{name}' truncated to {length} chars"
    return value, None, None


class RowHandler:
    """Turns a chunk of raw rows into store writes and per-row (failure, warning) outcomes.

    Subclasses set `fields` (importable describe fields by name) and `key` (the field every row
    needs: lookupField or email), and `apply(records)` → per record (status, leadId, reason).
    """

    fields: dict[str, dict]
    key: str
    #: Program member import keeps a row whose email is malformed, with a warning (the page's
    #: example: "Invalid email address"); lead import drops the value (and fails a key).
    keeps_invalid_email = False

    def header_problem(self, header: list[str]) -> str | None:
        """A reason to fail the whole job because of its header, if any."""
        if self.key not in header:
            return f"Import failed: the file has no '{self.key}' column"
        return None

    def apply(self, records: list[dict]) -> list[tuple]:
        """Write the records through the store."""
        raise NotImplementedError

    def parse(self, header: list[str], raw: list[str]) -> tuple[dict | None, str | None, list]:
        """(record, failure, warnings) of one raw row; empty cells leave fields unchanged."""
        if len(raw) != len(header):
            return None, f"Row has {len(raw)} values but the header has {len(header)} columns", []
        record, ignored, warnings, failure = self._cells(header, raw)
        if failure:
            return None, failure, []
        if ignored:
            warnings.append("Unknown or read-only field(s) ignored: " + ", ".join(ignored))
        if record.get(self.key) in (None, ""):
            return None, self.missing_key(), []
        return record, None, warnings

    def _cells(self, header: list[str], raw: list[str]) -> tuple[dict, list, list, str | None]:
        record: dict[str, Any] = {}
        warnings: list[str] = []
        ignored: list[str] = []
        for name, value in zip(header, raw, strict=True):
            field = self.fields.get(name)
            if value == "":
                continue
            if field is None:
                ignored.append(name)
                continue
            coerced, failure, warning = coerce(value, field)
            if warning and failure is None and field.get("dataType") == "email":
                if self.keeps_invalid_email:
                    warnings.append("Invalid email address")
                    record[name] = value
                    continue
                # Marketo keeps the row with a warning; the store refuses a malformed email, so
                # the value is dropped, and a malformed key fails the row.
                failure = warning if name == self.key else None
                warnings.append(warning + " (value not imported)")
                coerced = None
            elif warning:
                warnings.append(warning)
            if failure:
                return record, ignored, warnings, failure
            if coerced is not None:
                record[name] = coerced
        return record, ignored, warnings, None

    def missing_key(self) -> str:
        """The failure reason of a row without the key field."""
        return f"Missing value for required field '{self.key}'"

    def handle(
        self, header: list[str], chunk: list[list[str]]
    ) -> list[tuple[str | None, str | None]]:
        """Per raw row (failure, warning): rows are checked, then applied together in order."""
        outcomes: list[tuple[str | None, str | None]] = []
        records: list[dict] = []
        positions: list[int] = []
        for raw in chunk:
            record, failure, warnings = self.parse(header, raw)
            outcomes.append((failure, "; ".join(warnings) or None))
            if record is not None:
                records.append(record)
                positions.append(len(outcomes) - 1)
        if records:
            for pos, (status, _lead_id, reason) in zip(positions, self.apply(records), strict=True):
                if status not in ("created", "updated"):
                    outcomes[pos] = (reason or "Failed", None)
                elif reason:  # e.g. the member was already in or past the status
                    previous = outcomes[pos][1]
                    outcomes[pos] = (None, f"{previous}; {reason}" if previous else reason)
        return outcomes


def run_import(
    job: dict, out_dir: Path, handler: RowHandler, should_stop: Callable[[], bool]
) -> tuple[dict, int]:
    """Read the uploaded file row by row, apply it in chunks, write failures and warnings files."""
    upload = Path(job["upload_path"])
    fail_path = out_dir / f"{job['id']}.failures"
    warn_path = out_dir / f"{job['id']}.warnings"
    header, reader, fh = files.read_delimited(upload, job["format"])
    try:
        if not header or not any(header):
            return {"fail_message": "Import file is empty: a header row is required"}, 0
        problem = handler.header_problem(header)
        if problem:
            return {"fail_message": problem}, 0
        failures = files.DelimitedWriter(fail_path, job["format"], [*header, FAILURE_COLUMN])
        warnings = files.DelimitedWriter(warn_path, job["format"], [*header, WARNING_COLUMN])
        processed = total = 0
        try:
            for chunk in iter_chunks(_rows(reader), CHUNK_ROWS):
                if should_stop():
                    break
                for raw, (fail, warn) in zip(chunk, handler.handle(header, chunk), strict=True):
                    total += 1
                    if fail:
                        failures.write([*raw, fail])
                        continue
                    processed += 1
                    if warn:
                        warnings.write([*raw, warn])
        finally:
            failures.close()
            warnings.close()
    finally:
        fh.close()
    log.info(
        "import %s: %d rows, %d processed, %d failed, %d warnings",
        job["id"],
        total,
        processed,
        failures.rows,
        warnings.rows,
    )
    return {
        "rows_processed": processed,
        "rows_failed": failures.rows,
        "rows_warning": warnings.rows,
        "failures_path": str(fail_path),
        "warnings_path": str(warn_path),
    }, total


def _rows(reader: Iterator[list[str]]) -> Iterator[list[str]]:
    """Skip blank lines as Marketo does."""
    for row in reader:
        if row and any(cell.strip() for cell in row):
            yield row


# ---------------------------------------------------------------------------- endpoints


async def receive_upload(request: Request) -> tuple[str, dict[str, str], Path, int]:
    """Parse the multipart request: (api user, parameters from query and form, saved file, size).

    Parameters are read from the query string and the form (the form wins), the token also from an
    `access_token` form field. The file is spooled by the multipart parser (never whole in memory)
    and copied into the imports folder; anything over 10 MB is refused with HTTP 413.
    """
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_FILE_BYTES + _MULTIPART_SLACK:
        caller(request)
        raise MarketoHTTPError(
            413, "Request Entity Too Large: import files are limited to 10 MB", 413
        )
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        caller(request)
        raise MarketoHTTPError(612, "Invalid Content Type: multipart/form-data expected")
    try:
        form = await request.form(max_files=1, max_fields=50)
    except Exception as exc:  # python-multipart / starlette parse errors
        raise MarketoHTTPError(613, f"Invalid Multipart Request: {exc}") from exc
    try:
        user = caller(request, form)
        params = {k: v for k, v in request.query_params.items() if k != "access_token"}
        upload = None
        for key, value in form.multi_items():
            if key == "file":
                upload = value
            elif isinstance(value, str) and key != "access_token":
                params[key] = value
        if upload is None or isinstance(upload, str):
            raise MarketoHTTPError(1003, "file is required (multipart field 'file')")
        dest = files_dir(request.app) / "imports" / f"upload-{uuid.uuid4().hex}.tmp"
        size = await run_in_threadpool(_save_upload, upload.file, dest)
        return user, params, dest, size
    finally:
        await form.close()


def _save_upload(source: Any, dest: Path) -> int:
    """Copy the spooled upload to `dest` in chunks; 413 (and nothing kept) past 10 MB."""
    source.seek(0)
    size = 0
    with open(dest, "wb") as out:
        while chunk := source.read(files.CHUNK):
            size += len(chunk)
            if size > MAX_FILE_BYTES:
                break
            out.write(chunk)
    if size > MAX_FILE_BYTES:
        dest.unlink(missing_ok=True)
        raise MarketoHTTPError(
            413, "Request Entity Too Large: the import file is over the 10 MB limit", 413
        )
    return size


def import_format(params: dict) -> str:
    """The `format` parameter (csv, tsv or ssv), or 1003."""
    fmt = files.normalise_format(params.get("format"), default=None)
    if fmt is None:
        raise MarketoHTTPError(1003, "format is required: csv, tsv or ssv")
    return fmt


async def create_job(
    request: Request, kind: str, check: Callable[[Request, dict], tuple[str, dict]]
) -> Response:
    """Receive the upload, `check` its parameters → (format, kept), queue the job.

    An upload whose parameters are refused is deleted at once.
    """
    user, params, upload, size = await receive_upload(request)
    try:
        fmt, kept = check(request, params)
    except MarketoHTTPError:
        upload.unlink(missing_ok=True)
        raise
    job = submit(request, user=user, kind=kind, fmt=fmt, params=kept, upload=upload, size=size)
    return ok([job])


def submit(
    request: Request, *, user: str, kind: str, fmt: str, params: dict, upload: Path, size: int
) -> dict:
    """Queue an import job (1016 when 10 are already queued or importing)."""
    sched = state_of(request).scheduler
    pool = sched.pools[POOL]
    faults = state_of(request).faults
    path = request.url.path
    if faults.take_kind("too_many_imports", path, "POST"):
        upload.unlink(missing_ok=True)
        raise MarketoHTTPError(1016, "Too many imports")
    fail = "Import failed: internal error" if faults.take_kind("job_failed", path, "POST") else None
    now = sched.now()
    with sched.lock:
        queued, running = sched.counts(pool)
        if queued + running >= int(option(request, "import_max_jobs")):
            upload.unlink(missing_ok=True)
            raise MarketoHTTPError(1016, "Too many imports")
        with sched.store.db.tx() as conn:
            seq = next_seq(conn, TABLE)
            cur = conn.execute(
                "INSERT INTO bulk_import_jobs (seq, kind, api_user, format, params, status, "
                "created_at, queued_at, fail_message, upload_size) "
                "VALUES (?, ?, ?, ?, ?, 'Queued', ?, ?, ?, ?)",
                (seq, kind, user, fmt, orjson.dumps(params).decode(), now, now, fail, size),
            )
            batch_id = cur.lastrowid
            final = upload.with_name(f"{batch_id}.upload")
            upload.replace(final)
            conn.execute(
                "UPDATE bulk_import_jobs SET upload_path = ? WHERE id = ?",
                (str(final), batch_id),
            )
    sched.wake()
    log.info("import %s (%s) queued, %d bytes", batch_id, kind, size)
    return {"batchId": batch_id, "importId": str(batch_id), "status": "Queued"}


def load(request: Request, batch_id: str, kind: str, user: str) -> dict:
    """The batch for its creator; unknown, another's, or older than 7 days → 1003."""
    try:
        key = int(batch_id)
    except ValueError:
        raise MarketoHTTPError(1003, f"Invalid batchId: {batch_id}") from None
    sched = state_of(request).scheduler
    with sched.store.db.tx() as conn:
        job = fetch_one(conn, "SELECT * FROM bulk_import_jobs WHERE id = ?", (key,))
    if job is None or job["kind"] != kind or job["api_user"] != user:
        raise MarketoHTTPError(1003, f"Import batch not found: {batch_id}")
    keep = float(option(request, "import_batch_retention_days")) * DAY
    if sched.now() - job["created_at"] > keep:
        raise MarketoHTTPError(1003, f"Import batch {batch_id} has expired (batch ids last 7 days)")
    return job


def path_batch(request: Request, kind: str) -> dict:
    """The batch named by the path's `{batchId}`, for the calling API user."""
    user = caller(request)
    return load(request, request.path_params["batchId"], kind, user)


def view(job: dict) -> dict:
    """The status reply of a batch."""
    out: dict[str, Any] = {
        "batchId": job["id"],
        "importId": str(job["id"]),
        "status": job["status"],
    }
    status = job["status"]
    if status == "Queued":
        out["message"] = "Queued for processing"
        return out
    if status == "Importing":
        out.update(numOfLeadsProcessed=0, numOfRowsFailed=0, numOfRowsWithWarning=0)
        out["message"] = "Import in progress"
        return out
    if status == "Failed":
        out.update(numOfLeadsProcessed=0, numOfRowsFailed=0, numOfRowsWithWarning=0)
        out["message"] = job["fail_message"]
        return out
    done, failed, warned = (
        job["rows_processed"] or 0,
        job["rows_failed"] or 0,
        job["rows_warning"] or 0,
    )
    out.update(numOfLeadsProcessed=done, numOfRowsFailed=failed, numOfRowsWithWarning=warned)
    noun = "members" if job["kind"] == PROGRAM_MEMBERS else "leads"
    if failed:
        out["message"] = (
            f"Import completed with errors, {done} records imported ({done} {noun}), "
            f"{failed} failed records"
        )
    else:
        out["message"] = f"Import succeeded, {done} records imported ({done} {noun})"
    if warned:
        out["message"] += f", {warned} records with warnings"
    return out


def status_reply(job: dict) -> Response:
    """The envelope of a status call."""
    return ok([view(job)])


def rows_file(job: dict, which: str) -> Response:
    """The failures or warnings file of a finished batch, streamed from disk."""
    if job["status"] not in ("Complete", "Failed"):
        raise MarketoHTTPError(1003, f"Import batch {job['id']} is {job['status']}: not finished")
    name = job[f"{which}_path"]
    media = files.MEDIA_TYPES[job["format"]]
    if not name or not Path(name).is_file():
        return Response(b"", media_type=media)
    path = Path(name)
    size = path.stat().st_size
    return StreamingResponse(
        files.iter_file(path, 0, size), media_type=media, headers={"Content-Length": str(size)}
    )


def dump(store: Any) -> list[dict]:
    """Admin dump `import_jobs`."""
    with store.db.tx() as conn:
        jobs = fetch_all(conn, "SELECT * FROM bulk_import_jobs ORDER BY id")
    return [
        {
            "batchId": j["id"],
            "kind": j["kind"],
            "apiUser": j["api_user"],
            "format": j["format"],
            "params": orjson.loads(j["params"]),
            "status": j["status"],
            "createdAt": iso(j["created_at"]),
            "startedAt": iso(j["started_at"]),
            "finishedAt": iso(j["finished_at"]),
            "numOfLeadsProcessed": j["rows_processed"],
            "numOfRowsFailed": j["rows_failed"],
            "numOfRowsWithWarning": j["rows_warning"],
            "fileSize": j["upload_size"],
            "message": j["fail_message"],
        }
        for j in jobs
    ]
