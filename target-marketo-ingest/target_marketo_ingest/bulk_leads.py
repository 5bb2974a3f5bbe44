"""Bulk Lead Import: `POST /bulk/v1/leads.json` (createOrUpdate by `lookupField`)."""

from __future__ import annotations

import typing as t

from target_marketo_ingest.bulk_import import NO_GROUP, BulkImportWriter, ImportFile
from target_marketo_ingest.typed_records import TypedBulkRows
from target_marketo_ingest.validation import RecordRejected

if t.TYPE_CHECKING:
    from target_marketo_ingest.context import WriteContext
    from target_marketo_ingest.methods import WriteMethod
    from target_marketo_ingest.programs import ProgramCatalog
    from target_marketo_ingest.routing import StreamRoute
    from target_marketo_ingest.validation import RecordValidator


class BulkLeadImport:
    """The four calls of Marketo's bulk lead import."""

    name = "bulk lead import"

    def __init__(self, route: StreamRoute) -> None:
        self.route = route

    def create(self, client: t.Any, file: ImportFile, content: bytes) -> dict:
        """Upload one CSV file as a new import job."""
        data: dict[str, t.Any] = {"format": "csv", "lookupField": self.route.lookup_field}
        if self.route.list_id is not None:
            data["listId"] = str(self.route.list_id)
        if self.route.partition_name:
            data["partitionName"] = self.route.partition_name
        envelope = client.post(
            "/bulk/v1/leads.json",
            data=data,
            files={"file": (file.path.name, content, "text/csv")},
        )
        return envelope["result"][0]

    def status(self, client: t.Any, batch_id: t.Any) -> dict:
        """Current status of an import job."""
        return client.get(f"/bulk/v1/leads/batch/{batch_id}.json")["result"][0]

    def failures_path(self, batch_id: t.Any) -> str:
        """Rows that failed, with Marketo's reason appended."""
        return f"/bulk/v1/leads/batch/{batch_id}/failures.json"

    def warnings_path(self, batch_id: t.Any) -> str:
        """Rows imported with a warning."""
        return f"/bulk/v1/leads/batch/{batch_id}/warnings.json"


class BulkLeadsWriter(TypedBulkRows):
    """Records -> CSV rows keyed by the lookup field -> import files."""

    def __init__(
        self,
        ctx: WriteContext,
        validator: RecordValidator,
        catalog: ProgramCatalog,
        method: WriteMethod,
    ) -> None:
        _ = catalog  # leads belong to no program
        self.ctx = ctx
        self.validator = validator
        self._to_row = validator.to_row
        (key,) = method.key_fields(ctx.route)
        self.bulk = BulkImportWriter(
            ctx, BulkLeadImport(ctx.route), validator.header, [validator.header.index(key)]
        )
        self._add = self.bulk.add
        self._add_rows = self.bulk.add_many

    def add(self, record: dict, seq: int, line_no: int) -> None:
        """Validate and buffer one record; raises RecordRejected."""
        self._add(self._row(record), seq, line_no)

    def _row(self, record: dict) -> list[str]:
        """The record's CSV row; RecordRejected for a delete (bulk import cannot delete)."""
        if record.get("_sdc_deleted_at"):
            raise RecordRejected(
                "delete_not_supported",
                "the record is marked deleted (_sdc_deleted_at); bulk lead import cannot "
                "delete leads",
                "_sdc_deleted_at",
            )
        return self._to_row(record)

    def add_many(
        self,
        records: list[dict],
        seq: int,
        first_line: int,
        refuse: t.Callable[[dict, int, RecordRejected], None],
    ) -> None:
        """Consecutive records: rejected ones to `refuse`, the rows to the bulk writer at once.

        One Python step per record instead of a call chain each (see `BulkImportWriter`).
        """
        rows: list[list[str]] = []
        seqs: list[int] = []
        lines: list[int] = []
        to_row = self._row
        for offset, record in enumerate(records):
            line_no = first_line + offset
            try:
                rows.append(to_row(record))
            except RecordRejected as exc:
                refuse(record, line_no, exc)
                continue
            seqs.append(seq + offset)
            lines.append(line_no)
        self._add_rows(rows, seqs, lines, [NO_GROUP] * len(rows))

    def flush(self) -> None:
        """Roll open files."""
        self.bulk.flush()

    def oldest_open_age(self) -> float:
        """Age of the oldest buffered record."""
        return self.bulk.oldest_open_age()

    def close(self) -> None:
        """Flush and wait for every import."""
        self.bulk.close()
