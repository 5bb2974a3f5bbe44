"""The one registry of write methods: what each needs to read, check, build and send.

Every place that used to switch on the method's name reads its entry instead: the sink
(which describe, which key fields, which validator, which writer), the Data Ingestion
endpoint (path, list key, request header) and the settings (names, dedupe choices).
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from target_marketo_ingest.bulk_leads import BulkLeadsWriter
from target_marketo_ingest.bulk_program_members import BulkProgramMembersWriter
from target_marketo_ingest.ingestion import IngestionWriter
from target_marketo_ingest.rest_program_members import RestProgramMembersWriter

if t.TYPE_CHECKING:
    from target_marketo_ingest.context import WriteContext
    from target_marketo_ingest.programs import ProgramCatalog
    from target_marketo_ingest.routing import StreamRoute

BULK_LEADS = "bulk_leads"
BULK_PROGRAM_MEMBERS = "bulk_program_members"
INGEST_PERSONS = "ingest_persons"
INGEST_COMPANIES = "ingest_companies"
INGEST_CUSTOM_OBJECT = "ingest_custom_object"
INGEST_PROGRAM_MEMBERS = "ingest_program_members"
REST_PROGRAM_MEMBERS = "rest_program_members"

#: How records are checked: against one object's describe, as bulk member CSV rows (lead
#: and member fields), or as member data besides program, status and lead.
FIELDS, MEMBER_ROWS, MEMBER_FIELDS = "fields", "member_rows", "member_fields"


class Writer(t.Protocol):
    """What a sink needs from a write method's writer."""

    def add(self, record: dict, seq: int, line_no: int) -> None:
        """Validate and buffer one record; raises RecordRejected."""

    def flush(self) -> None:
        """Send every buffered unit (end of input, new SCHEMA, an old pending STATE)."""

    def oldest_open_age(self) -> float:
        """Seconds the oldest buffered record has waited."""

    def close(self) -> None:
        """Flush and wait for every outcome; raises a latched failure."""


class WriterFactory(t.Protocol):
    """A writer class: built from the stream's context, validator, catalog and method."""

    def __call__(
        self, ctx: WriteContext, validator: t.Any, catalog: ProgramCatalog, method: WriteMethod
    ) -> Writer:
        """Build the writer."""


@dataclass(frozen=True)
class Endpoint:
    """A Data Ingestion object type: path, the body's list key, and its request header."""

    path: t.Callable[[StreamRoute], str]
    list_key: str
    header: t.Callable[[StreamRoute], dict[str, t.Any]]
    delete_path: str | None = None


@dataclass(frozen=True)
class WriteMethod:
    """One write method: describe kind, key fields, validator, writer and endpoint."""

    name: str
    describe: t.Callable[[StreamRoute], str | None]
    key_fields: t.Callable[[StreamRoute], tuple[str, ...]]
    writer: WriterFactory
    validator: str = FIELDS
    csv: bool = False
    endpoint: Endpoint | None = None
    program_members: bool = False
    needs_field: str | None = None
    dedupe_by: tuple[str, ...] = ("dedupeFields", "idField", "marketoGUID")
    # The route may set `mirror` (mirror.py wraps the writer): members keyed by leadId.
    mirrors: bool = False


def _persons_header(route: StreamRoute) -> dict[str, t.Any]:
    header: dict[str, t.Any] = {}
    if route.priority:
        header["priority"] = route.priority
    if route.partition_name:
        header["partitionName"] = route.partition_name
    if route.dedupe_fields:
        header["dedupeFields"] = {f"field{i + 1}": n for i, n in enumerate(route.dedupe_fields)}
    return header


def _companies_header(route: StreamRoute) -> dict[str, t.Any]:
    return {
        "action": route.action or "createOrUpdate",
        "dedupeBy": route.dedupe_by or "dedupeFields",
    }


def _custom_object_header(route: StreamRoute) -> dict[str, t.Any]:
    header: dict[str, t.Any] = {}
    if route.priority:
        header["priority"] = route.priority
    if route.dedupe_by:
        header["dedupeBy"] = route.dedupe_by
    return header


def _no_keys(_route: StreamRoute) -> tuple[str, ...]:
    return ()


def _members_describe(_route: StreamRoute) -> str | None:
    return None  # program member methods read the member (and lead) describes themselves


REGISTRY: dict[str, WriteMethod] = {
    m.name: m
    for m in (
        WriteMethod(
            BULK_LEADS,
            describe=lambda _r: "leads",
            key_fields=lambda r: (r.lookup_field,),
            writer=BulkLeadsWriter,
            csv=True,
        ),
        WriteMethod(
            BULK_PROGRAM_MEMBERS,
            describe=_members_describe,
            key_fields=lambda _r: ("email",),
            writer=BulkProgramMembersWriter,
            validator=MEMBER_ROWS,
            csv=True,
            program_members=True,
        ),
        WriteMethod(
            INGEST_PERSONS,
            describe=lambda _r: "leads",
            key_fields=lambda r: r.dedupe_fields or ("email",),
            writer=IngestionWriter,
            endpoint=Endpoint(
                lambda _r: "/subscriptions/{munchkinId}/persons", "persons", _persons_header
            ),
        ),
        WriteMethod(
            INGEST_COMPANIES,
            describe=lambda _r: "companies",
            key_fields=lambda r: ("id",) if r.dedupe_by == "idField" else ("externalCompanyId",),
            writer=IngestionWriter,
            endpoint=Endpoint(
                lambda _r: "/subscriptions/{munchkinId}/companies", "input", _companies_header
            ),
            # data-ingestion.md: companies dedupe by dedupeFields or idField.
            dedupe_by=("dedupeFields", "idField"),
        ),
        WriteMethod(
            INGEST_CUSTOM_OBJECT,
            describe=lambda r: f"customobjects/{r.custom_object_name}",
            key_fields=lambda r: (
                ("marketoGUID",) if r.dedupe_by == "marketoGUID" else r.dedupe_fields
            ),
            writer=IngestionWriter,
            endpoint=Endpoint(
                lambda r: f"/subscriptions/{{munchkinId}}/customobjects/{r.custom_object_name}",
                "customObjects",
                _custom_object_header,
            ),
            # data-ingestion.md: custom objects dedupe by dedupeFields or marketoGUID.
            dedupe_by=("dedupeFields", "marketoGUID"),
        ),
        WriteMethod(
            INGEST_PROGRAM_MEMBERS,
            describe=_members_describe,
            key_fields=_no_keys,
            writer=IngestionWriter,
            validator=MEMBER_FIELDS,
            # The program member bodies take `programs` only: no priority (data-ingestion.md).
            endpoint=Endpoint(
                lambda _r: "/subscriptions/{munchkinId}/programmembers",
                "programs",
                lambda _r: {},
                delete_path="/subscriptions/{munchkinId}/programmembers/delete",
            ),
            program_members=True,
            needs_field="leadId",
            mirrors=True,
        ),
        WriteMethod(
            REST_PROGRAM_MEMBERS,
            describe=_members_describe,
            key_fields=_no_keys,
            writer=RestProgramMembersWriter,
            validator=MEMBER_FIELDS,
            program_members=True,
            needs_field="leadId",
            mirrors=True,
        ),
    )
}
