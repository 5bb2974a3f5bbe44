"""Data Ingestion API: persons, companies, custom objects, program members (sync and delete).

Bodies are packed to the tightest of 1 MB and 1000 objects (program members count lead
references across programs), sent by a bounded number of parallel requests, each with its
own `X-Correlation-Id`. 202 means accepted (asynchronous), so records count as "accepted";
with the route's `verify` on they are read back and end "applied" or rejected (verify.py).
A 4xx on a batch (invalid data, 413 too large) splits it in halves until the bad records are
alone; only those are rejected, with Marketo's error_code and message. 429/5xx are retried by
marketo_common; if they never clear, the run stops without passing STATE over the batch.
"""

from __future__ import annotations

import time
import typing as t
import uuid
from dataclasses import dataclass, field

import orjson

from target_marketo_ingest.executor import UnitExecutor
from target_marketo_ingest.programs import program_and_status
from target_marketo_ingest.rest_program_members import lead_id_of
from target_marketo_ingest.validation import RecordRejected
from target_marketo_ingest.verify import settle, verifier_for

if t.TYPE_CHECKING:
    from target_marketo_ingest.context import WriteContext
    from target_marketo_ingest.methods import Endpoint, WriteMethod
    from target_marketo_ingest.programs import ProgramCatalog
    from target_marketo_ingest.routing import StreamRoute
    from target_marketo_ingest.validation import RecordValidator
    from target_marketo_ingest.verify import Verifier

SPLIT_STATUSES = frozenset({400, 413, 422})
# 4000801 is about the request as a whole (bad attribute, unknown program): splitting cannot
# isolate a record, so the batch's records are rejected with it.
WHOLE_REQUEST_CODES = frozenset({"4000801"})
MEMBER_GROUP_OVERHEAD = 64  # {"programId":N,"status":"","members":[]}, around each group


def _json_default(value: t.Any) -> t.Any:
    return str(value)


@dataclass
class _Entry:
    data: bytes
    group: tuple | None
    line: int
    record: dict


def _group_overhead(group: tuple) -> int:
    return MEMBER_GROUP_OVERHEAD + len(str(group[1] or "").encode())


@dataclass
class _Batch:
    unit: int
    entries: dict[t.Any, _Entry] = field(default_factory=dict)
    groups: dict[tuple, int] = field(default_factory=dict)
    size: int = 0
    opened_at: float = field(default_factory=time.monotonic)


class IngestionEndpoint:
    """Path and body layout of one Data Ingestion object type (from the method's entry)."""

    def __init__(
        self, route: StreamRoute, spec: Endpoint, *, members: bool, delete: bool = False
    ) -> None:
        self.members = members
        self.delete = delete
        self.path = t.cast("str", spec.delete_path) if delete else spec.path(route)
        self.list_key = spec.list_key
        header = spec.header(route)
        head = orjson.dumps(header)[:-1]
        self.prefix = head + (b"," if header else b"") + f'"{self.list_key}":['.encode()
        self.suffix = b"]}"

    def body(self, entries: list[_Entry]) -> bytes:
        """The request body, joined from each record's JSON encoded once."""
        if not self.members:
            return self.prefix + b",".join(e.data for e in entries) + self.suffix
        groups: dict[tuple, list[bytes]] = {}
        for entry in entries:
            groups.setdefault(t.cast("tuple", entry.group), []).append(entry.data)
        parts = []
        for (program_id, status), members in groups.items():
            head = (
                {"programId": program_id}
                if self.delete
                else {
                    "programId": program_id,
                    "status": status,
                }
            )
            parts.append(orjson.dumps(head)[:-1] + b',"members":[' + b",".join(members) + b"]}")
        return self.prefix + b",".join(parts) + self.suffix


class IngestionWriter:
    """Sink-facing side of the Data Ingestion API for one stream."""

    def __init__(
        self,
        ctx: WriteContext,
        validator: RecordValidator | None,
        catalog: ProgramCatalog,
        method: WriteMethod,
    ) -> None:
        self.ctx = ctx
        self.route = ctx.route
        self.validator = validator
        self.catalog = catalog
        self._key_fields = method.key_fields(ctx.route)
        # Read-back runs inside each request's executor unit, so the unit (and STATE) closes
        # only once its records are applied or rejected as not applied.
        self._verifier: Verifier | None = verifier_for(ctx, catalog, self._key_fields)
        self._members = method.program_members
        spec = t.cast("Endpoint", method.endpoint)
        self._sync = IngestionEndpoint(ctx.route, spec, members=self._members)
        self._delete = (
            IngestionEndpoint(ctx.route, spec, members=True, delete=True) if self._members else None
        )
        self._open: dict[bool, _Batch] = {}
        opts = ctx.options
        self._max_bytes = opts.ingestion_max_bytes
        self._max_objects = opts.ingestion_max_objects
        parallel = max(1, opts.ingestion_parallel_requests)
        self.executor = UnitExecutor(
            name=f"ingest-{ctx.stream}",
            workers=parallel,
            queued=parallel,
            latch=ctx.fatal,
            checkpoints=ctx.checkpoints,
        )

    def add(self, record: dict, seq: int, line_no: int) -> None:
        """Validate, encode once and pack one record; raises RecordRejected."""
        deleted = self._members and bool(record.get("_sdc_deleted_at"))
        if self._members:
            obj, group, key = self._member(record, deleted)
        else:
            obj = t.cast("RecordValidator", self.validator).to_object(record)
            group = None
            key = tuple(obj.get(name) for name in self._key_fields) if self._key_fields else seq
        # orjson hands back its whole 4 KB output buffer: a copy to the exact size keeps
        # a held record at its own size (records of every open, queued and in-flight
        # batch are held: 9,000 with the default 4 parallel requests; 37 MB as buffers).
        data = bytes(memoryview(orjson.dumps(obj, default=_json_default)))
        endpoint = self._delete if deleted else self._sync
        limit = self._max_bytes - len(endpoint.prefix) - len(endpoint.suffix)
        if len(data) + MEMBER_GROUP_OVERHEAD > limit:
            raise RecordRejected(
                "record_too_large",
                f"the record is {len(data)} bytes as JSON; a Data Ingestion request is at "
                f"most {self._max_bytes} bytes",
            )
        if self._members:
            self._supersede_in(self._open.get(not deleted), key)
        batch = self._open.get(deleted)
        if batch is not None and not self._fits(batch, key, data, group, limit):
            self._submit(deleted, batch)
            batch = None
        if batch is None:
            batch = _Batch(self.ctx.checkpoints.open_unit(seq))
            self._open[deleted] = batch
        old = batch.entries.pop(key, None)
        if old is not None:
            batch.size -= len(old.data) + 1
            self.ctx.summary.add("superseded")
            if old.group is not None:
                batch.groups[old.group] -= 1  # its overhead stays counted: an upper bound
        if group is not None:
            if group not in batch.groups:
                batch.size += _group_overhead(group)
            batch.groups[group] = batch.groups.get(group, 0) + 1
        batch.entries[key] = _Entry(data, group, line_no, record)
        batch.size += len(data) + 1

    def _member(self, record: dict, deleted: bool) -> tuple[dict, tuple, tuple]:
        """A member's object, its (program, status) group and its (program, lead) key.

        Sync members carry their custom fields; delete members only `leadId` (the page's
        tables).
        """
        program_id, status = program_and_status(
            self.route, record, self.catalog, need_status=not deleted
        )
        lead_id = lead_id_of(record)
        obj: dict = {"leadId": lead_id}
        if not deleted and self.validator is not None:
            obj.update(self.validator.to_object(record))
            obj["leadId"] = lead_id
        return obj, (program_id, status), (program_id, lead_id)

    def _supersede_in(self, batch: _Batch | None, key: t.Any) -> None:
        """A member synced then deleted (or the reverse) in open batches: the last one wins."""
        if batch is None:
            return
        old = batch.entries.pop(key, None)
        if old is not None:
            batch.size -= len(old.data) + 1
            if old.group is not None:
                batch.groups[old.group] -= 1
            self.ctx.summary.add("superseded")

    def _fits(
        self, batch: _Batch, key: t.Any, data: bytes, group: tuple | None, limit: int
    ) -> bool:
        """Whether the record joins the open batch within both limits (replacing its key)."""
        old = batch.entries.get(key)
        count = len(batch.entries) + (0 if old is not None else 1)
        size = batch.size + len(data) + 1 - (len(old.data) + 1 if old is not None else 0)
        if group is not None and group not in batch.groups:
            size += _group_overhead(group)
        return count <= self._max_objects and size <= limit

    def flush(self) -> None:
        """Send every open batch."""
        for deleted, batch in list(self._open.items()):
            self._submit(deleted, batch)

    def oldest_open_age(self) -> float:
        """Age of the oldest buffered record."""
        now = time.monotonic()
        return max((now - b.opened_at for b in self._open.values() if b.entries), default=0.0)

    def close(self) -> None:
        """Send what is left and wait for every request."""
        try:
            self.flush()
        finally:
            self.executor.close()

    def _submit(self, deleted: bool, batch: _Batch) -> None:
        self._open.pop(deleted, None)
        if not batch.entries:
            self.ctx.checkpoints.close_unit(batch.unit)
            return
        endpoint = self._delete if deleted else self._sync
        entries = list(batch.entries.values())
        if self.ctx.options.dry_run:
            body = endpoint.body(entries)
            self.ctx.summary.add("requests")
            self.ctx.summary.add("dry_run", len(entries))
            self.ctx.logger.info(
                "Stream '%s': dry run: built %s request (%d objects, %d bytes); not sent",
                self.ctx.stream,
                endpoint.path,
                len(entries),
                len(body),
            )
            self.ctx.checkpoints.close_unit(batch.unit)
            return
        # A key in an earlier unfinished request: the executor sends this one after it.
        self.executor.submit(
            lambda: self._send(endpoint, entries), keys=frozenset(batch.entries), unit=batch.unit
        )

    def _send(self, endpoint: IngestionEndpoint, entries: list[_Entry]) -> None:
        from marketo_common import IngestionAPIError  # noqa: PLC0415

        ctx = self.ctx
        body = endpoint.body(entries)
        correlation_id = str(uuid.uuid4())
        ctx.summary.add("requests")
        ctx.api_call()
        try:
            request_id = ctx.client.ingest(endpoint.path, body, correlation_id=correlation_id)
        except IngestionAPIError as exc:
            status = exc.http_status or 0
            if status not in SPLIT_STATUSES:
                raise
            ctx.logger.info(
                "Stream '%s': %s refused %d objects (HTTP %s, %s: %s, X-Correlation-Id %s); %s",
                ctx.stream,
                endpoint.path,
                len(entries),
                status,
                exc.code,
                exc.message,
                correlation_id,
                "splitting"
                if len(entries) > 1 and exc.code not in WHOLE_REQUEST_CODES
                else "rejecting its records",
            )
            if len(entries) == 1 or exc.code in WHOLE_REQUEST_CODES:
                for entry in entries:
                    ctx.reject(
                        line=entry.line,
                        reason="record_too_large" if status == 413 else "marketo_invalid",  # noqa: PLR2004
                        message=exc.message,
                        record=entry.record,
                        code=exc.code or str(status),
                    )
                return
            middle = len(entries) // 2
            self._send(endpoint, entries[:middle])
            self._send(endpoint, entries[middle:])
            return
        if self._verifier is None:  # else `settle` counts applied / not_applied below
            ctx.summary.add("accepted", len(entries))
        ctx.logger.info(
            "Stream '%s': %s accepted %d objects (%d bytes), X-Correlation-Id %s, X-Request-Id %s",
            ctx.stream,
            endpoint.path,
            len(entries),
            len(body),
            correlation_id,
            request_id,
        )
        if self._verifier is not None:
            settle(ctx, self._verifier, entries, request_id, deleted=endpoint.delete)
