"""Read-back verification of Data Ingestion writes: was each accepted record applied?

A 202 from the Data Ingestion API only means "accepted"; Marketo applies the request later
and records that cannot be applied fail where the caller never looks (data-ingestion.md). So
after a request is accepted the records are read back through REST, up to 300 per call, until
each is found as written or `verify_timeout_seconds` pass:

- persons: `GET /rest/v1/leads.json?filterType=<email, or the first dedupe field>` (leads.md);
- companies: `GET /rest/v1/companies.json?filterType=externalCompanyId|id` (companies.md);
- custom objects: `GET /rest/v1/customobjects/{name}.json?filterType=<dedupe field>|idField`,
  or the compound-key query (`POST ..?_method=GET`, `filterType=dedupeFields`) when the object
  dedupes on several fields (custom-objects.md);
- program members: `GET /rest/v1/programs/{id}/members.json?filterType=leadId` (program-members.md).

"Applied" per kind:
- persons, companies, custom objects: a row matches the record's dedupe key, and every written
  field the read returns equals the written value once both are normalised (numbers as numbers,
  booleans as booleans, date-times as instants, empty string as null);
- program members (sync): the lead is a member of the program with the written status or one
  later in the program's progression (Marketo never moves a member backwards, the step rule),
  and the written custom member fields equal as above;
- program members (delete): the lead is no longer a member of the program.

This module knows nothing of sinks or batches: `Verifier.verify` takes the records as sent and
returns which were applied; the caller turns that into outcomes.
"""

from __future__ import annotations

import datetime as dt
import math
import time
import typing as t
from dataclasses import dataclass

from target_marketo_ingest.rejects import WARNING

MAX_READ = 300  # filterValues and batchSize limit of every query used here
DEFAULT_VERIFY_TIMEOUT = 600.0


@dataclass
class Written:
    """One record as sent, and what verification found."""

    obj: dict
    group: tuple | None = None  # (programId, status) for program members
    deleted: bool = False
    handle: t.Any = None  # the caller's entry
    seen: t.Any = None  # the last row read back for it (None: not found)


def _instant(value: str) -> dt.datetime | None:
    text = value.strip()
    if len(text) < 10 or text[4] != "-" or text[7] != "-":  # noqa: PLR2004
        return None
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def _boolean(value: t.Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    if isinstance(value, int) and value in {0, 1}:
        return bool(value)
    return None


def _number(value: t.Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def same_value(written: t.Any, read: t.Any) -> bool:  # noqa: PLR0911
    """Whether a value read back equals the value written, across JSON/REST type spellings."""
    if written in (None, "") or read in (None, ""):
        return written in (None, "") and read in (None, "")
    if isinstance(written, bool) or isinstance(read, bool):
        return _boolean(written) is not None and _boolean(written) == _boolean(read)
    a, b = _number(written), _number(read)
    if a is not None and b is not None:
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(written, str) and isinstance(read, str):
        x, y = _instant(written), _instant(read)
        if x is not None and y is not None:
            if len(written.strip()) == 10 or len(read.strip()) == 10:  # noqa: PLR2004 (a date)
                return x.date() == y.date()
            return x == y
        return written.strip() == read.strip()
    return str(written) == str(read)


def _key_part(value: t.Any) -> t.Any:
    """Dedupe values compare case-insensitively as text (Marketo matches email so)."""
    if value is None:
        return None
    number = _number(value)
    if number is not None and not isinstance(value, str):
        return str(int(number)) if number.is_integer() else str(number)
    return str(value).strip().lower()


def _listable(value: t.Any) -> bool:
    """Whether a value can travel in `filterValues`: a comma would split it.

    No escape is documented, and the sandbox splits on every comma like Marketo.
    """
    return value is not None and "," not in str(value)


@dataclass
class ReadBack:
    """How one object type is read back: path, filter and key fields."""

    path: str
    key_fields: tuple[str, ...]
    filter_type: str | None = None  # None: the first key field
    compound: bool = False  # custom objects with several dedupe fields
    # Custom objects by dedupe fields: a key value with a comma goes in the documented JSON
    # body (`POST ..?_method=GET`, filterType=dedupeFields, `input`), which carries values as
    # JSON; the leads and companies pages document no such body for their queries.
    json_input: bool = False
    # Other searchable fields to filter on when every key value has a comma (rows are still
    # matched on the key fields): leads by email or id, companies by id or name.
    fallbacks: tuple[str, ...] = ()

    def key(self, obj: dict) -> tuple:
        """The record's dedupe key, normalised."""
        return tuple(_key_part(obj.get(name)) for name in self.key_fields)

    def filter_for(self, obj: dict) -> str | None:
        """How to read this record: a field to filter on, "" for the JSON body, None: no way.

        Filter on email when it is a key field (always searchable), else the first key field;
        a value with a comma moves the record to another key or fallback field, or to the JSON
        body where the page allows one.
        """
        if self.compound:
            return ""
        first = "email" if "email" in self.key_fields else self.key_fields[0]
        if _listable(obj.get(first)):
            return first
        if self.json_input:
            return ""
        if self.filter_type is None:
            for name in (*self.key_fields, *self.fallbacks):
                if name != first and _listable(obj.get(name)):
                    return name
        return None

    def query(self, items: list[Written], by: str | None = None) -> tuple[str, dict, dict | None]:
        """(path, GET params, JSON body or None) reading these records, filtered on `by`."""
        fields = sorted({name for item in items for name in item.obj} | set(self.key_fields))
        if by is None:
            by = self.filter_for(items[0].obj)
        if by == "":
            body = {
                "filterType": "dedupeFields",
                "fields": fields,
                "input": [{k: item.obj.get(k) for k in self.key_fields} for item in items],
            }
            return self.path, {"_method": "GET"}, body
        name = t.cast("str", by)
        values = sorted({str(item.obj.get(name)) for item in items})
        params = {
            "filterType": self.filter_type
            if name == self.key_fields[0] and self.filter_type
            else name,
            "filterValues": ",".join(values),
            "fields": ",".join(fields),
            "batchSize": MAX_READ,
        }
        return self.path, params, None

    def row_key(self, row: dict) -> tuple:
        """A row's dedupe key, normalised like `key`."""
        return tuple(_key_part(row.get(name)) for name in self.key_fields)

    def applied(self, item: Written, row: dict | None) -> bool:
        """Found, with every written field the read returns equal to what was written."""
        if row is None:
            return False
        return all(
            same_value(value, row[name])
            for name, value in item.obj.items()
            if name in row and name not in self.key_fields  # keys matched already (any case)
        )


@dataclass
class MemberReadBack:
    """Program members read back by leadId, per program; status checked by progression step."""

    statuses: t.Callable[[int], dict[str, str] | None]
    key_fields: tuple[str, ...] = ("leadId",)
    member_fields: set[str] | None = None  # None: every field written (custom fields only)

    def key(self, obj: dict) -> tuple:
        """The member's lead id."""
        return (_key_part(obj.get("leadId")),)

    row_key = key

    def applied(self, item: Written, row: dict | None) -> bool:
        """Deleted: gone. Synced: member at the written status or later, fields as written."""
        if item.deleted:
            return row is None
        if row is None:
            return False
        _, wanted = t.cast("tuple", item.group)
        order = [s.lower() for s in (self.statuses(t.cast("tuple", item.group)[0]) or {})]
        now = str(row.get("statusName") or row.get("status") or "").lower()
        wanted = str(wanted or "").lower()
        if now != wanted and not (
            wanted in order and now in order and order.index(now) > order.index(wanted)
        ):
            return False
        return all(
            same_value(value, row[name])
            for name, value in item.obj.items()
            if name != "leadId" and name in row
        )


class Verifier:
    """Polls read-backs of accepted records until applied or the timeout passes.

    Calls go through the shared MarketoClient (its rate limiter and retries). Clock and sleep
    are injectable so tests control time.
    """

    def __init__(
        self,
        client: t.Any,
        reader: ReadBack | MemberReadBack,
        *,
        timeout: float = DEFAULT_VERIFY_TIMEOUT,
        interval: float = 5.0,
        max_interval: float = 30.0,
        on_call: t.Callable[[], None] | None = None,
        clock: t.Callable[[], float] = time.monotonic,
        sleep: t.Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.reader = reader
        self.timeout = timeout
        self.interval = interval
        self.max_interval = max(interval, max_interval)
        self.on_call = on_call or (lambda: None)
        self.clock = clock
        self.sleep = sleep

    def readable(self, item: Written) -> bool:
        """Whether the record can be read back at all (see `ReadBack.filter_for`)."""
        reader = self.reader
        return isinstance(reader, MemberReadBack) or reader.filter_for(item.obj) is not None

    def verify(self, items: list[Written]) -> tuple[list[Written], list[Written]]:
        """(applied, not applied within the timeout); `seen` holds what was read back."""
        deadline = self.clock() + self.timeout
        pending = list(items)
        applied: list[Written] = []
        wait = self.interval
        while pending:
            # Marketo applies a request after its 202, never at once: read after a wait.
            remaining = deadline - self.clock()
            if remaining <= 0:
                break
            self.sleep(min(wait, remaining))
            wait = min(wait * 1.5, self.max_interval)
            self._read(pending)
            done = [item for item in pending if self.reader.applied(item, item.seen)]
            applied += done
            done_ids = {id(item) for item in done}
            pending = [item for item in pending if id(item) not in done_ids]
        return applied, pending

    def _read(self, pending: list[Written]) -> None:
        """Read every pending record once, up to 300 per call; sets each one's `seen`."""
        if isinstance(self.reader, MemberReadBack):
            by_program: dict[int, list[Written]] = {}
            for item in pending:
                by_program.setdefault(t.cast("tuple", item.group)[0], []).append(item)
            for program_id, items in by_program.items():
                for start in range(0, len(items), MAX_READ):
                    self._read_members(program_id, items[start : start + MAX_READ])
            return
        reader = self.reader
        by_filter: dict[str | None, list[Written]] = {}
        for item in pending:
            by_filter.setdefault(reader.filter_for(item.obj), []).append(item)
        by_filter.pop(None, None)  # unreadable: `settle` keeps them out of verification
        for by, items in by_filter.items():
            for start in range(0, len(items), MAX_READ):
                chunk = items[start : start + MAX_READ]
                path, params, body = reader.query(chunk, by)
                self.on_call()
                if body is not None:
                    envelope = self.client.post(path, json=body, params=params)
                else:
                    envelope = self.client.get(path, params)
                self._match(chunk, envelope.get("result") or [])

    def _read_members(self, program_id: int, items: list[Written]) -> None:
        reader = t.cast("MemberReadBack", self.reader)
        names = {"leadId", "statusName"} | {
            n
            for item in items
            for n in item.obj
            if reader.member_fields is None or n in reader.member_fields
        }
        params = {
            "filterType": "leadId",
            "filterValues": ",".join(sorted({str(item.obj["leadId"]) for item in items})),
            "fields": ",".join(sorted(names)),
            "batchSize": MAX_READ,
        }
        self.on_call()
        envelope = self.client.get(f"/rest/v1/programs/{program_id}/members.json", params)
        self._match(items, envelope.get("result") or [])

    def _match(self, items: list[Written], rows: list[dict]) -> None:
        by_key = {self.reader.row_key(row): row for row in rows if isinstance(row, dict)}
        for item in items:
            item.seen = by_key.get(self.reader.key(item.obj))


def settle(
    ctx: t.Any, verifier: Verifier, entries: list, request_id: str, *, deleted: bool
) -> None:
    """Outcomes of one accepted request: `applied`, or rejected `not_applied` with the evidence.

    `entries` carry `data` (the JSON sent), `group`, `line` and `record` (ingestion._Entry).
    """
    import orjson  # noqa: PLC0415

    items = [
        Written(orjson.loads(e.data), group=e.group, deleted=deleted, handle=e) for e in entries
    ]
    unreadable = [item for item in items if not verifier.readable(item)]
    if unreadable:
        # Accepted is all that can be said: no documented query carries these key values.
        ctx.summary.add("accepted", len(unreadable))
        for item in unreadable:
            ctx.rejects.write(
                kind=WARNING,
                stream=ctx.stream,
                line=item.handle.line,
                reason="not_verified",
                message=(
                    f"accepted by Data Ingestion (X-Request-Id {request_id}); not read back: "
                    "its key value contains a comma, which filterValues cannot carry"
                ),
                record=item.handle.record,
                method=ctx.route.method,
                code=request_id,
            )
            ctx.summary.add("warnings")
        items = [item for item in items if verifier.readable(item)]
    applied, missing = verifier.verify(items)
    ctx.summary.add("applied", len(applied))
    for item in missing:
        entry = item.handle
        ctx.reject(
            line=entry.line,
            reason="not_applied",
            message=(
                f"accepted by Data Ingestion (X-Request-Id {request_id}) but not "
                f"{'removed' if deleted else 'applied'} within {verifier.timeout:g} s; read back: "
                f"{'not found' if item.seen is None else orjson.dumps(item.seen).decode()}. "
                "Marketo retries failed records for hours, so it may still be applied later; "
                "feeding it again is safe (the write is an upsert)"
            ),
            record=entry.record,
            code=request_id,
        )
    if missing:
        ctx.logger.warning(
            "Stream '%s': %d of %d records of request %s not applied within %g s",
            ctx.stream,
            len(missing),
            len(items),
            request_id,
            verifier.timeout,
        )


def verifier_for(
    ctx: t.Any,
    catalog: t.Any,
    key_fields: tuple[str, ...],
    member_fields: set[str] | None = None,
) -> Verifier | None:
    """The route's Verifier, or None when `verify` is off (or the run is a dry run)."""
    route = ctx.route
    if route.verify is False or ctx.options.dry_run or ctx.client is None:
        return None
    method = route.method
    reader: ReadBack | MemberReadBack
    if method == "ingest_program_members":

        def statuses(program_id: int) -> dict[str, str] | None:
            return catalog.statuses(program_id)

        reader = MemberReadBack(statuses, member_fields=member_fields)
    elif method == "ingest_persons":
        reader = ReadBack("/rest/v1/leads.json", key_fields, fallbacks=("email", "id"))
    elif method == "ingest_companies":
        reader = ReadBack("/rest/v1/companies.json", key_fields, fallbacks=("id", "company"))
    elif method == "ingest_custom_object":
        path = f"/rest/v1/customobjects/{route.custom_object_name}.json"
        if key_fields == ("marketoGUID",):
            reader = ReadBack(path, key_fields, filter_type="idField")
        else:
            reader = ReadBack(path, key_fields, compound=len(key_fields) > 1, json_input=True)
    else:
        return None
    opts = ctx.options
    return Verifier(
        ctx.client,
        reader,
        timeout=opts.verify_timeout_seconds,
        interval=opts.poll_interval_seconds,
        max_interval=opts.poll_max_seconds,
        on_call=ctx.api_call,
    )
