"""REST program members for small volumes: status sync, member data and delete, 300 per call.

- `POST /rest/v1/programs/{programId}/members/status.json` (statusName + leadIds)
- `POST /rest/v1/programs/{programId}/members.json` (updateable member fields)
- `POST /rest/v1/programs/{programId}/members/delete.json`

Each call answers per record (`seq`); `skipped` with 1037 means "already in or past this
status" or "not in program" and counts as success, other reasons become rejects.
"""

from __future__ import annotations

import time
import typing as t
from dataclasses import dataclass, field

from target_marketo_ingest.executor import UnitExecutor
from target_marketo_ingest.programs import program_and_status
from target_marketo_ingest.validation import RecordRejected

if t.TYPE_CHECKING:
    from target_marketo_ingest.context import WriteContext
    from target_marketo_ingest.methods import WriteMethod
    from target_marketo_ingest.programs import ProgramCatalog
    from target_marketo_ingest.validation import RecordValidator

SKIPPED_OK = "1037"


@dataclass
class _Entry:
    lead_id: int
    data: dict
    line: int
    record: dict
    counted: str = "imported"


@dataclass
class _Batch:
    program_id: int
    status: str | None  # None: delete
    unit: int
    entries: dict[int, _Entry] = field(default_factory=dict)
    opened_at: float = field(default_factory=time.monotonic)


def lead_id_of(record: dict) -> int:
    """The record's leadId as an integer; raises RecordRejected."""
    value = record.get("leadId")
    if value is None or value == "" or isinstance(value, bool):
        raise RecordRejected("missing_key_field", "required field 'leadId' is empty", "leadId")
    try:
        lead_id = int(value)
    except (TypeError, ValueError):
        lead_id = 0
    if lead_id <= 0:
        raise RecordRejected("type", f"leadId {value!r} is not a positive integer", "leadId")
    return lead_id


class RestProgramMembersWriter:
    """Batches of up to 300 members per (program, status) or per program for deletes."""

    def __init__(
        self,
        ctx: WriteContext,
        validator: RecordValidator | None,
        catalog: ProgramCatalog,
        method: WriteMethod | None = None,
    ) -> None:
        _ = method  # members are keyed by (program, leadId) whatever the method
        self.ctx = ctx
        self.route = ctx.route
        self.validator = validator
        self.catalog = catalog
        self._batches: dict[tuple[int, str | None], _Batch] = {}
        self._where: dict[tuple[int, int], tuple[int, str | None]] = {}
        self._size = max(1, min(300, ctx.options.rest_batch_size))
        # REST answers per record at once: calls run in the reading thread, in order.
        self.executor = UnitExecutor(
            name=f"rest-{ctx.stream}",
            workers=0,
            queued=0,
            latch=ctx.fatal,
            checkpoints=ctx.checkpoints,
        )

    def add(self, record: dict, seq: int, line_no: int) -> None:
        """Validate and buffer one record; raises RecordRejected."""
        deleted = bool(record.get("_sdc_deleted_at"))
        if deleted:
            program_id, status = program_and_status(
                self.route, record, self.catalog, need_status=False
            )
            lead_id = lead_id_of(record)
            data: dict = {}
        else:
            program_id, status = program_and_status(self.route, record, self.catalog)
            data = self.validator.to_object(record) if self.validator else {}
            data.pop("leadId", None)
            lead_id = lead_id_of(record)
        key = (program_id, status)
        # The same member in another open batch of this program (another status, or a
        # delete): the later record wins, so the earlier one is superseded.
        other_key = self._where.get((program_id, lead_id))
        if other_key is not None and other_key != key:
            other = self._batches.get(other_key)
            if other is not None and other.entries.pop(lead_id, None) is not None:
                self.ctx.summary.add("superseded")
        self._where[program_id, lead_id] = key
        batch = self._batches.get(key)
        if batch is None:
            batch = _Batch(program_id, status, self.ctx.checkpoints.open_unit(seq))
            self._batches[key] = batch
        if batch.entries.pop(lead_id, None) is not None:
            self.ctx.summary.add("superseded")
        batch.entries[lead_id] = _Entry(lead_id, data, line_no, record)
        if len(batch.entries) >= self._size:
            del self._batches[key]
            self._send(batch)

    def flush(self) -> None:
        """Send every open batch."""
        batches = list(self._batches.values())
        self._batches.clear()
        for batch in batches:
            self._send(batch)

    def oldest_open_age(self) -> float:
        """Age of the oldest buffered record."""
        now = time.monotonic()
        return max((now - b.opened_at for b in self._batches.values()), default=0.0)

    def close(self) -> None:
        """Send what is left."""
        self.flush()

    def _send(self, batch: _Batch) -> None:
        ctx = self.ctx
        entries = list(batch.entries.values())
        sent_as = (batch.program_id, batch.status)
        for entry in entries:
            if self._where.get((batch.program_id, entry.lead_id)) == sent_as:
                del self._where[batch.program_id, entry.lead_id]
        if not entries:
            ctx.checkpoints.close_unit(batch.unit)
            return
        if ctx.options.dry_run:
            ctx.summary.add("requests")
            ctx.summary.add("dry_run", len(entries))
            ctx.logger.info(
                "Stream '%s': dry run: %d members for program %s (%s); not sent",
                ctx.stream,
                len(entries),
                batch.program_id,
                batch.status or "delete",
            )
            ctx.checkpoints.close_unit(batch.unit)
            return
        self.executor.submit(lambda: self._post(batch, entries), unit=batch.unit)

    def _post(self, batch: _Batch, entries: list[_Entry]) -> None:
        """The status (or delete) call, then member data for the records it accepted."""
        if batch.status is None:
            path = f"/rest/v1/programs/{batch.program_id}/members/delete.json"
            body: dict = {"input": [{"leadId": e.lead_id} for e in entries]}
        else:
            path = f"/rest/v1/programs/{batch.program_id}/members/status.json"
            body = {"statusName": batch.status, "input": [{"leadId": e.lead_id} for e in entries]}
        done = self._call(path, body, entries, count_success=True)
        with_data = [e for e in done if e.data]
        if with_data:
            self._call(
                f"/rest/v1/programs/{batch.program_id}/members.json",
                {"input": [{"leadId": e.lead_id, **e.data} for e in with_data]},
                with_data,
                count_success=False,
            )

    def _call(
        self, path: str, body: dict, entries: list[_Entry], *, count_success: bool
    ) -> list[_Entry]:
        """One call; returns the entries that succeeded. A rejected data update un-counts."""
        from marketo_common import MarketoAPIError  # noqa: PLC0415

        ctx = self.ctx
        ctx.summary.add("requests")
        ctx.api_call()
        try:
            envelope = ctx.client.post(path, json=body)
        except MarketoAPIError as exc:
            if exc.retryable:
                raise
            for entry in entries:
                ctx.reject(
                    line=entry.line,
                    reason="marketo_error",
                    message=exc.message,
                    record=entry.record,
                    code=exc.code,
                )
            if not count_success:
                for entry in entries:
                    ctx.summary.add(entry.counted, -1)
            return []
        results = envelope.get("result") or []
        by_seq = {r.get("seq", i): r for i, r in enumerate(results)}
        return [
            entry
            for index, entry in enumerate(entries)
            if self._outcome(entry, by_seq.get(index) or {}, count_success=count_success)
        ]

    def _outcome(self, entry: _Entry, result: dict, *, count_success: bool) -> bool:
        """Count or reject one record from its per-record result; True when it succeeded."""
        ctx = self.ctx
        status = str(result.get("status", "")).lower()
        reasons = result.get("reasons") or [{}]
        code = str(reasons[0].get("code", "")) if reasons else ""
        if status in {"created", "updated", "deleted"}:
            if count_success:
                ctx.summary.add("imported")
            return True
        if status == "skipped" and code == SKIPPED_OK:
            if count_success:
                entry.counted = "skipped"
                ctx.summary.add("skipped")
            return True
        ctx.reject(
            line=entry.line,
            reason="marketo_skipped" if status == "skipped" else "marketo_error",
            message=reasons[0].get("message") or f"status {status or 'missing'}",
            record=entry.record,
            code=code or None,
        )
        if not count_success:
            ctx.summary.add(entry.counted, -1)
        return False
