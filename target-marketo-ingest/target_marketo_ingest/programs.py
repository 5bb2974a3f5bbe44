"""Programs and their progression statuses, to check a member's status before sending it."""

from __future__ import annotations

import contextlib
import logging
import threading
import typing as t

from target_marketo_ingest.validation import RecordRejected

if t.TYPE_CHECKING:
    from target_marketo_ingest.routing import StreamRoute

logger = logging.getLogger(__name__)

NOT_IN_PROGRAM = "not in program"


class ProgramCatalog:
    """Statuses per program id, read once per program.

    Marketo keeps statuses on the program's channel: `GET /rest/asset/v1/program/{id}.json`
    names the channel, `GET /rest/asset/v1/channel/byName.json?name=...` lists its
    progression. When the instance cannot answer these (no Asset API permission), statuses
    are not checked locally and Marketo's own answer decides (we assume that rather than
    rejecting every record).
    """

    def __init__(self, client: t.Any) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._statuses: dict[int, dict[str, str] | None] = {}
        self._unavailable = client is None

    def statuses(self, program_id: int) -> dict[str, str] | None:
        """Lower-cased status -> Marketo's spelling; None when the program does not exist.

        An empty dict means statuses could not be read and are not checked.
        """
        with self._lock:
            if program_id in self._statuses:
                return self._statuses[program_id]
            if self._unavailable:
                return {}
            result = self._load(program_id)
            self._statuses[program_id] = result
            return result

    def _load(self, program_id: int) -> dict[str, str] | None:
        from marketo_common import MarketoAPIError  # noqa: PLC0415

        try:
            envelope = self._client.get(f"/rest/asset/v1/program/{program_id}.json")
            programs = envelope.get("result") or []
            if not programs:
                return None
            program = programs[0]
            names = _status_names(program)
            if names is None:
                channel = program.get("channel")
                channels = self._client.get(
                    "/rest/asset/v1/channel/byName.json", {"name": channel}
                ).get("result") or [{}]
                names = _status_names(channels[0]) or []
        except MarketoAPIError as exc:
            if exc.code in {"702", "610", "1013"}:
                return None
            logger.warning(
                "Could not read statuses of program %s (%s); Marketo will check them instead",
                program_id,
                exc,
            )
            self._unavailable = True
            return {}
        return {name.lower(): name for name in names}


def _status_names(obj: dict) -> list[str] | None:
    for key in ("statuses", "progression", "progressionStatuses"):
        value = obj.get(key)
        if isinstance(value, list):
            return [v.get("name") if isinstance(v, dict) else str(v) for v in value]
    return None


def program_and_status(
    route: StreamRoute,
    record: dict,
    catalog: ProgramCatalog,
    *,
    need_status: bool = True,
) -> tuple[int, str | None]:
    """The (programId, status) a member record goes to, fixed by settings or from its fields."""
    raw_program = (
        route.program_id if route.program_id is not None else record.get(route.program_id_field)
    )
    if raw_program is None or raw_program == "":
        raise RecordRejected(
            "missing_program",
            f"no program id: set {route.setting('program_id')} or send "
            f"'{route.program_id_field}' in each record",
            route.program_id_field,
        )
    program_id = _program_number(raw_program)
    if program_id is None:
        raise RecordRejected(
            "type", f"program id {raw_program!r} is not an integer", route.program_id_field
        )
    known = catalog.statuses(program_id)
    if known is None:
        raise RecordRejected(
            "unknown_program", f"program {program_id} does not exist", route.program_id_field
        )
    if not need_status:
        return program_id, None
    status = route.status if route.status is not None else record.get(route.status_field)
    if not isinstance(status, str) or not status.strip():
        raise RecordRejected(
            "missing_status",
            f"no program status: set {route.setting('status')} or send "
            f"'{route.status_field}' in each record",
            route.status_field,
        )
    if status.strip().lower() == NOT_IN_PROGRAM:
        raise RecordRejected(
            "not_in_program_status",
            "status 'Not in Program' cannot be set; mark the record deleted "
            "(_sdc_deleted_at) to remove the member",
            route.status_field,
        )
    if known:
        canonical = known.get(status.strip().lower())
        if canonical is None:
            raise RecordRejected(
                "unknown_status",
                f"status {status!r} is not a status of program {program_id} "
                f"(known: {', '.join(sorted(known.values()))})",
                route.status_field,
            )
        status = canonical
    return program_id, status


def _program_number(value: t.Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class MemberTargets:
    """(programId, status) per record, resolved once per distinct pair of raw values.

    Member streams repeat a handful of (program, status) pairs over millions of rows, so the
    checks above run once per pair, not once per record.
    """

    def __init__(self, route: StreamRoute, catalog: ProgramCatalog, *, need_status: bool) -> None:
        self.route = route
        self.catalog = catalog
        self.need_status = need_status
        self._program_field = route.program_id_field
        self._status_field = route.status_field
        self._cache: dict[tuple, tuple[int, str | None] | RecordRejected] = {}

    def resolve(self, record: dict) -> tuple[int, str | None]:
        """The record's (programId, status); raises RecordRejected."""
        key = (record.get(self._program_field), record.get(self._status_field))
        try:
            found = self._cache[key]
        except (KeyError, TypeError):  # TypeError: unhashable raw values are not cached
            try:
                found = program_and_status(
                    self.route, record, self.catalog, need_status=self.need_status
                )
            except RecordRejected as exc:
                found = exc
            with contextlib.suppress(TypeError):
                self._cache[key] = found
        if type(found) is RecordRejected:
            raise RecordRejected(found.reason, found.message, found.field)
        return found  # type: ignore[return-value]
