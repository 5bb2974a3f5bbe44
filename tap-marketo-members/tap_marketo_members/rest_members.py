"""REST fallback: `GET /rest/v1/programs/{programId}/members.json` in updatedAt windows.

Used for small programs (no export job, no minute-long polls) and for subscriptions without the
bulk extract. Limits from Marketo's docs: 300 per page with `nextPageToken`, updatedAt ranges of
at most 7 days, and 1003 beyond 100,000 members. That 1003 comes in two flavours: "Matching
membership size" (the window matched too many: we halve it and retry) and "Total membership size"
(the program itself is too large for any non-leadId filter, so no window helps:
`MembershipLimitError`, and the stream exports that program through bulk instead).
The query has no statusNames/isExhausted/nurtureCadence filters: rows are kept locally.
A GET longer than 8 KB becomes `POST` with `_method=GET` inside `MarketoClient.get`.
Lead fields are not served by this endpoint; they are joined from `GET /rest/v1/leads.json`.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from marketo_common import MarketoAPIError, MarketoClient

from tap_marketo_members.settings import MemberFilter
from tap_marketo_members.windows import REST_MAX_SPAN, Window, iso, parse_iso, plan_windows

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

MEMBERS_PATH = "/rest/v1/programs/{program_id}/members.json"
LEADS_PATH = "/rest/v1/leads.json"
PAGE_SIZE = 300
TOO_MANY_MATCHES = "1003"
SMALLEST_WINDOW = dt.timedelta(minutes=1)
TOTAL_MEMBERSHIP = "total membership"
FILTER_FIELDS = ("statusName", "isExhausted", "nurtureCadence")  # read to apply MemberFilter

LOGGER = logging.getLogger("tap_marketo_members.rest")


class MembershipLimitError(Exception):
    """1003 "Total membership size … exceeds the limit": the program is too large for the query."""

    def __init__(self, program_id: int, exc: MarketoAPIError) -> None:
        super().__init__(
            f"the REST query refuses program {program_id} whatever the window "
            f"({exc.code} {exc.message})"
        )
        self.program_id = program_id


class ProgramMemberQuery:
    """Reads one program's members through the REST query, window by window."""

    def __init__(
        self,
        client: MarketoClient,
        *,
        member_fields: Sequence[str],
        lead_fields: Sequence[str],
        member_filter: MemberFilter | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.client = client
        self.member_filter = member_filter or MemberFilter()
        self.member_fields = list(member_fields)
        # Filter fields are read even when not selected, then dropped from the record.
        self.dropped = [
            f for f in FILTER_FIELDS if self.member_filter and f not in self.member_fields
        ]
        self.lead_fields = [f for f in lead_fields if f not in ("id", *member_fields)]
        self.logger = logger or LOGGER

    def windows(self, start: dt.datetime, end: dt.datetime, days: float) -> list[Window]:
        """Windows of at most 7 days (the REST limit), edges padded like the bulk ones."""
        return plan_windows(start, end, min(days, 7), max_span=REST_MAX_SPAN)

    def members(self, program_id: int, window: Window) -> Iterator[dict[str, Any]]:
        """Members with window.start <= updatedAt < window.end, lead fields joined."""
        page: list[dict[str, Any]] = []
        for member in self._window(program_id, window):
            stamp = member.get("updatedAt")
            if stamp is None or not window.start_iso <= stamp < window.end_iso:
                continue
            if self.member_filter and not self.member_filter.keeps(member):
                continue
            for name in self.dropped:
                member.pop(name, None)
            page.append(member)
            if len(page) >= PAGE_SIZE:
                yield from self._with_leads(page)
                page = []
        if page:
            yield from self._with_leads(page)

    def _window(self, program_id: int, window: Window) -> Iterator[dict[str, Any]]:
        start_at, end_at = window.filter_bounds()
        params = {
            "filterType": "updatedAt",
            "startAt": start_at,
            "endAt": end_at,
            "fields": ",".join([*self.member_fields, *self.dropped]),
        }
        path = MEMBERS_PATH.format(program_id=program_id)
        pages = self.client.iter_pages(path, params, batch_size=PAGE_SIZE)
        try:
            first = next(pages, None)
        except MarketoAPIError as exc:
            if exc.code == TOO_MANY_MATCHES and TOTAL_MEMBERSHIP in exc.message.lower():
                raise MembershipLimitError(program_id, exc) from exc
            if exc.code != TOO_MANY_MATCHES or window.end - window.start <= SMALLEST_WINDOW:
                raise
            middle = window.start + (window.end - window.start) / 2
            middle = middle.replace(microsecond=0)
            self.logger.info(
                "Program %s: over 100,000 members changed in %s..%s (1003); halving the window",
                program_id,
                window.start_iso,
                window.end_iso,
            )
            yield from self._window(program_id, Window(window.start, middle))
            yield from self._window(program_id, Window(middle, window.end))
            return
        if first is None:
            return
        fields = [*self.member_fields, *self.dropped]
        yield _clean(first, program_id, fields)
        for member in pages:
            yield _clean(member, program_id, fields)

    def _with_leads(self, members: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        if not self.lead_fields:
            yield from members
            return
        ids = ",".join(str(m["leadId"]) for m in members)
        params = {
            "filterType": "id",
            "filterValues": ids,
            "fields": ",".join(["id", *self.lead_fields]),
        }
        leads = {
            lead["id"]: lead
            for lead in self.client.iter_pages(LEADS_PATH, params, batch_size=PAGE_SIZE)
        }
        for member in members:
            lead = leads.get(member["leadId"], {})
            for name in self.lead_fields:
                member[name] = lead.get(name) if lead.get(name) != "" else None
            yield member


def _clean(member: Mapping[str, Any], program_id: int, fields: Sequence[str]) -> dict[str, Any]:
    """Same shape as a bulk row: every requested field, empty text as None (bulk writes null)."""
    record = {name: member.get(name) for name in fields}
    for name, value in record.items():
        if value == "":
            record[name] = None
    if record.get("programId") is None:
        record["programId"] = program_id
    stamp = record.get("updatedAt")
    if isinstance(stamp, str) and not stamp.endswith("Z"):
        record["updatedAt"] = iso(parse_iso(stamp))
    return record
