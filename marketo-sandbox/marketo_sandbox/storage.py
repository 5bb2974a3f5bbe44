"""`Store`: the sandbox database and its repositories, one per Marketo object.

The repositories (`repos/`) share one connection manager; a family reaches a table of its own
through `store.db` (`conn()`, `tx()`), and a Marketo object through its repository.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from marketo_sandbox.clock import Clock
from marketo_sandbox.repos.calls import CallLog
from marketo_sandbox.repos.database import CORE_SCHEMA, Database
from marketo_sandbox.repos.fields import LEAD, MAX_CUSTOM_PM_FIELDS, PROGRAM_MEMBER, FieldRepository
from marketo_sandbox.repos.leads import LeadRepository
from marketo_sandbox.repos.members import MemberRepository
from marketo_sandbox.repos.programs import NOT_IN_PROGRAM, ProgramRepository
from marketo_sandbox.repos.values import check_value, coerce

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

__all__ = [
    "CORE_SCHEMA",
    "LEAD",
    "MAX_CUSTOM_PM_FIELDS",
    "NOT_IN_PROGRAM",
    "PROGRAM_MEMBER",
    "Store",
    "check_value",
    "coerce",
]


class Store:
    """The database (`db`) and the repositories: fields, programs, leads, members, calls.

    `schemas` are the API families' tables, given by the composition root (`create_app`).
    """

    def __init__(
        self, path: str | Path, clock: Clock | None = None, *, schemas: Sequence[str] = ()
    ) -> None:
        self.clock = clock or Clock()
        self.db = Database(path, self.clock, schemas)
        self.fields = FieldRepository(self.db, self.clock)
        self.programs = ProgramRepository(self.db, self.clock)
        self.leads = LeadRepository(self.db, self.clock, self.fields)
        self.members = MemberRepository(self.db, self.clock, self.fields, self.programs, self.leads)
        self.calls = CallLog(self.db)
        self.fields.ensure_standard()
        self.db.advance_clock_past_data()

    @property
    def path(self) -> str:
        """The SQLite file."""
        return self.db.path

    def reset(self) -> None:
        """Drop everything and recreate the empty schema (standard fields only)."""
        self.calls.flush()
        self.db.drop_all()
        self.fields.invalidate()
        self.db.create_schema()
        self.fields.ensure_standard()

    def close(self) -> None:
        """Flush the call log and close this thread's connection."""
        self.calls.flush()
        self.db.close()
