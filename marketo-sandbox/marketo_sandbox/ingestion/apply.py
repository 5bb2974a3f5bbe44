"""Applying accepted Data Ingestion requests, after the 202, as Marketo does.

"Data Ingestion requests execute asynchronously" (data-ingestion.md): every accepted request
waits in SQLite and the bulk scheduler's driver applies it once `ingestion_apply_delay_seconds`
of sandbox time have passed (an assumed switch; 0 applies before the 202 goes out). Records
that cannot be applied fail after the 202; Marketo reports them only on its Observability
stream, so the sandbox records them in `ingestion_failures` with the request id, correlation id
and request source (admin: `GET /_sandbox/ingestion`, dump `ingestion_failures`). Custom objects
whose linked person does not exist yet are retried on the page's retry intervals within its
65-minute window, then fail.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import orjson

from marketo_sandbox.ingestion import companies, custom_objects, persons, program_members
from marketo_sandbox.ingestion.common import dumps, option
from marketo_sandbox.jobs import fetch_all
from marketo_sandbox.state import state_of

if TYPE_CHECKING:
    from marketo_sandbox.jobs import Scheduler

log = logging.getLogger("marketo_sandbox.ingestion")

#: The service's retry intervals (data-ingestion.md, "Retries"), in seconds after the previous try.
RETRY_SECONDS = (300, 900, 1200, 1200)
#: "If that Person is added during the retry window (65 minutes), then the update is successful."
LINK_WINDOW_SECONDS = 65 * 60
#: Where each object type's failed records sit in its body.
_LIST_KEYS = {"persons": "persons", "companies": "input", "custom_objects": "customObjects"}


def _appliers() -> dict[str, Any]:
    return {
        "persons": persons.apply,
        "companies": companies.apply,
        "custom_objects": custom_objects.apply,
        "program_members": program_members.apply,
        "program_members_delete": program_members.apply_delete,
    }


def apply_now(store: Any, kind: str, plan: dict, request_id: str) -> dict | None:
    """Apply one accepted request and record the records that failed.

    Returns the plan of a retry still to come (custom objects waiting for their person), if any.
    Never raises to the client: a bug becomes a 5000801 failure of the whole request.
    """
    if plan.get("failWhole"):  # an injected fault (`ingest_failed`): none of its objects applies
        failed = [(i, "Internal Server Error") for i in range(int(plan["failWhole"]))]
        record_failures(store, kind, plan, request_id, failed)
        return None
    try:
        result = _appliers()[kind](store, plan)
    except Exception:
        log.exception("ingestion request %s (%s) failed to apply", request_id, kind)
        record_failures(store, kind, plan, request_id, [("request", "Internal Server Error")])
        return None
    failed, waiting = result if isinstance(result, tuple) else (result, [])
    retry = _retry_plan(store, plan, waiting) if waiting else None
    if retry is None and waiting:
        link = plan.get("link")
        for index in waiting:
            value = _record(plan, index).get(link)
            why = f"Person with {link} '{value}' not found within the 65-minute retry window"
            failed = [*failed, (index, why)]
    if failed:
        record_failures(store, kind, plan, request_id, failed)
    return retry


def _record(plan: dict, index: int) -> dict:
    return plan["records"][plan["indices"].index(index)]


def _retry_plan(store: Any, plan: dict, waiting: list[int]) -> dict | None:
    """The plan of the waiting records' next try, or None once the 65-minute window is over."""
    attempt = int(plan.get("attempt", 0))
    if attempt >= len(RETRY_SECONDS):
        return None
    first = plan.get("firstTry", store.clock.timestamp())
    due = store.clock.timestamp() + RETRY_SECONDS[attempt]
    if due - first > LINK_WINDOW_SECONDS:
        return None
    return {
        **plan,
        "records": [_record(plan, i) for i in waiting],
        "indices": waiting,
        "attempt": attempt + 1,
        "firstTry": first,
        "dueAt": due,
    }


def record_failures(
    store: Any, kind: str, plan: dict, request_id: str, failed: list[tuple[Any, str]]
) -> None:
    """Keep the records that failed after the 202, standing in for the Observability stream."""
    meta = plan.get("request") or {}
    now = store.clock.now_iso()
    list_key = _LIST_KEYS.get(kind)
    rows = [
        (
            request_id,
            kind,
            f"{list_key}[{where}]" if isinstance(where, int) and list_key else str(where),
            reason,
            meta.get("X-Correlation-Id"),
            meta.get("X-Request-Source"),
            meta.get("clientId"),
            now,
        )
        for where, reason in failed
    ]
    with store.db.tx() as conn:
        conn.executemany(
            "INSERT INTO ingestion_failures (request_id, kind, record, reason, correlation_id, "
            "request_source, client_id, failed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    log.info("ingestion request %s (%s): %d records failed", request_id, kind, len(rows))


def accept(app: Any, kind: str, plan: dict, request_id: str) -> None:
    """Park the request until `ingestion_apply_delay_seconds` have passed (0: apply now)."""
    store = state_of(app).store
    delay = float(option(app, "ingestion_apply_delay_seconds") or 0)
    if delay <= 0:
        retry = apply_now(store, kind, plan, request_id)
        if retry is None:
            return
        plan, delay = retry, retry["dueAt"] - store.clock.timestamp()

    sched = state_of(app).scheduler
    with store.db.tx() as conn:
        conn.execute(
            "INSERT INTO ingestion_pending (request_id, kind, plan, due_at) VALUES (?, ?, ?, ?)",
            (request_id, kind, dumps(plan), sched.now() + delay),
        )
    sched.wake()


def pending_count(store: Any) -> int:
    """Accepted requests not applied yet (retries of waiting custom objects included)."""
    return int(store.db.conn().execute("SELECT COUNT(*) FROM ingestion_pending").fetchone()[0])


def dump_failures(store: Any) -> list[dict]:
    """Admin dump `ingestion_failures`: every record that failed after its 202."""
    with store.db.tx() as conn:
        rows = fetch_all(conn, "SELECT * FROM ingestion_failures ORDER BY id")
    return [
        {
            "requestId": r["request_id"],
            "kind": r["kind"],
            "record": r["record"],
            "reason": r["reason"],
            "correlationId": r["correlation_id"],
            "requestSource": r["request_source"],
            "clientId": r["client_id"],
            "failedAt": r["failed_at"],
        }
        for r in rows
    ]


def setup(app: Any, sched: Scheduler) -> None:
    """Apply parked requests from the scheduler's driver when they fall due."""
    store = state_of(app).store

    def hook(now: float) -> None:
        due = fetch_all(
            store.db.conn(),
            "SELECT * FROM ingestion_pending WHERE due_at <= ? ORDER BY due_at",
            (now,),
        )
        for row in due:
            retry = apply_now(store, row["kind"], orjson.loads(row["plan"]), row["request_id"])
            with store.db.tx() as conn:
                if retry is None:
                    conn.execute(
                        "DELETE FROM ingestion_pending WHERE request_id = ?",
                        (row["request_id"],),
                    )
                else:
                    conn.execute(
                        "UPDATE ingestion_pending SET plan = ?, due_at = ? WHERE request_id = ?",
                        (dumps(retry), retry["dueAt"], row["request_id"]),
                    )

    sched.hooks.append(hook)
