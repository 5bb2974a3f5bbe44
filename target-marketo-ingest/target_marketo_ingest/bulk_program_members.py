"""Bulk Program Member Import: `POST /bulk/v1/program/{programId}/members/import.json`.

One file per (program, status): the status is a parameter of the job, not a column.
"""

from __future__ import annotations

import typing as t

from target_marketo_ingest.bulk_import import BulkImportWriter, GroupSpec, ImportFile
from target_marketo_ingest.programs import MemberTargets
from target_marketo_ingest.rest_program_members import RestProgramMembersWriter
from target_marketo_ingest.typed_records import RecordType, TypedBulkRows
from target_marketo_ingest.validation import RecordRejected

if t.TYPE_CHECKING:
    from target_marketo_ingest.context import WriteContext
    from target_marketo_ingest.methods import WriteMethod
    from target_marketo_ingest.programs import ProgramCatalog
    from target_marketo_ingest.validation import RecordValidator


MAX_TYPED_GROUPS = 4096  # (program, status) pairs remembered for typed records


class BulkProgramMemberImport:
    """The four calls of Marketo's bulk program member import."""

    name = "bulk program member import"

    def create(self, client: t.Any, file: ImportFile, content: bytes) -> dict:
        """Upload one CSV file for one program and status."""
        program_id = file.params["programId"]
        envelope = client.post(
            f"/bulk/v1/program/{program_id}/members/import.json",
            data={"format": "csv", "programMemberStatus": file.params["programMemberStatus"]},
            files={"file": (file.path.name, content, "text/csv")},
        )
        return envelope["result"][0]

    def status(self, client: t.Any, batch_id: t.Any) -> dict:
        """Current status of an import job."""
        return client.get(f"/bulk/v1/program/members/import/{batch_id}/status.json")["result"][0]

    def failures_path(self, batch_id: t.Any) -> str:
        """Rows that failed, with Marketo's reason appended."""
        return f"/bulk/v1/program/members/import/{batch_id}/failures.json"

    def warnings_path(self, batch_id: t.Any) -> str:
        """Rows imported with a warning."""
        return f"/bulk/v1/program/members/import/{batch_id}/warnings.json"


class BulkProgramMembersWriter(TypedBulkRows):
    """Records -> CSV rows keyed by email, one open file per (program, status).

    Records marked deleted (`_sdc_deleted_at`) cannot go through an import; they are
    removed with the REST delete endpoint instead.
    """

    def __init__(
        self,
        ctx: WriteContext,
        validator: RecordValidator,
        catalog: ProgramCatalog,
        method: WriteMethod,
    ) -> None:
        self.ctx = ctx
        self.route = ctx.route
        self.catalog = catalog
        self.validator = validator
        self._to_row = validator.to_row
        self._typed_groups: dict[tuple, GroupSpec] = {}
        self._control_fields = (self.route.program_id_field, self.route.status_field)
        # Deletes cannot go through an import: the REST delete endpoint, same context.
        self._deletes = RestProgramMembersWriter(ctx, None, catalog, method)
        (key,) = method.key_fields(ctx.route)
        self.bulk = BulkImportWriter(
            ctx,
            BulkProgramMemberImport(),
            validator.header,
            [validator.header.index(key)],
            scope_param="programId",
        )
        self._add = self.bulk.add
        self._add_rows = self.bulk.add_many
        self._targets = MemberTargets(self.route, catalog, need_status=True).resolve
        self._groups: dict[tuple[int, str], GroupSpec] = {}

    def add(self, record: dict, seq: int, line_no: int) -> None:
        """Validate and buffer one record; raises RecordRejected."""
        if record.get("_sdc_deleted_at"):
            self._deletes.add(record, seq, line_no)
            return
        key = self._targets(record)
        self._add(self._to_row(record), seq, line_no, self._group(key))

    def add_many(
        self,
        records: list[dict],
        seq: int,
        first_line: int,
        refuse: t.Callable[[dict, int, RecordRejected], None],
    ) -> None:
        """Consecutive records: rejected ones to `refuse`, the rows to the bulk writer at once.

        One Python step per record instead of a call chain each (see `BulkImportWriter`);
        a delete sends the rows before it first, so every record keeps its place.
        """
        rows: list[list[str]] = []
        seqs: list[int] = []
        lines: list[int] = []
        groups: list[GroupSpec] = []
        targets, to_row, group_of = self._targets, self._to_row, self._groups.get
        for offset, record in enumerate(records):
            line_no = first_line + offset
            try:
                if record.get("_sdc_deleted_at"):
                    self._add_rows(rows, seqs, lines, groups)
                    rows, seqs, lines, groups = [], [], [], []
                    self._deletes.add(record, seq + offset, line_no)
                    continue
                key = targets(record)
                rows.append(to_row(record))
            except RecordRejected as exc:
                refuse(record, line_no, exc)
                continue
            seqs.append(seq + offset)
            lines.append(line_no)
            groups.append(group_of(key) or self._group(key))
        self._add_rows(rows, seqs, lines, groups)

    def _typed_group_of(self, record: t.Any) -> GroupSpec | None:
        """The group of a typed record's (program, status), cached; None if refused."""
        try:
            pair = t.cast("RecordType", self._typed).control(record)
            return self._typed_groups.get(pair) or self._typed_group(pair)
        except TypeError:  # an unhashable program or status value
            return None

    def _typed_group(self, pair: tuple[t.Any, ...]) -> GroupSpec | None:
        """The group of a new (program, status) pair, remembered; None if it is refused."""
        try:
            key = self._targets(dict(zip(self._control_fields, pair, strict=True)))
        except RecordRejected:
            return None
        group = self._group(key)
        if len(self._typed_groups) < MAX_TYPED_GROUPS:
            self._typed_groups[pair] = group
        return group

    def _group(self, key: tuple[int, str]) -> GroupSpec:
        """The import file group of a (program, status): its job parameters and label."""
        group = self._groups.get(key)
        if group is None:
            group = (
                key,
                {"programId": key[0], "programMemberStatus": key[1]},
                f"program {key[0]} status {key[1]!r} ",
            )
            self._groups[key] = group
        return group

    def flush(self) -> None:
        """Roll open files and send pending deletes."""
        self.bulk.flush()
        self._deletes.flush()

    def oldest_open_age(self) -> float:
        """Age of the oldest buffered record."""
        return max(self.bulk.oldest_open_age(), self._deletes.oldest_open_age())

    def close(self) -> None:
        """Flush and wait for every import."""
        self._deletes.close()
        self.bulk.close()
