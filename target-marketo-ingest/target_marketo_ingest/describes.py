"""What Marketo says about its objects: field describes and custom member fields, read once."""

from __future__ import annotations

import logging
import typing as t

from target_marketo_ingest.errors import TargetError
from target_marketo_ingest.validation import parse_describe

if t.TYPE_CHECKING:
    from target_marketo_ingest.validation import FieldSpec

logger = logging.getLogger("target-marketo-ingest")

DESCRIBE_PATHS = {
    "leads": "/rest/v1/leads/describe2.json",
    "program_members": "/rest/v1/programs/members/describe.json",
    "companies": "/rest/v1/companies/describe.json",
}
MEMBER_FIELDS_PATH = "/rest/v1/programs/members/schema/fields.json"
AUTH_CODES = frozenset({"601", "602", "603"})


class Describes:
    """Field lists per object kind, each read on first use; None when unreadable."""

    def __init__(self, client: t.Any) -> None:
        self.client = client
        self._describes: dict[str, dict[str, FieldSpec] | None] = {}
        self._custom_member_fields: frozenset[str] | bool | None = False  # False: not read yet

    def describe(self, kind: str) -> dict[str, FieldSpec] | None:
        """Marketo's field list for an object, read once; None when it cannot be read."""
        if kind in self._describes:
            return self._describes[kind]
        from marketo_common import MarketoError  # noqa: PLC0415

        path = DESCRIBE_PATHS.get(kind) or f"/rest/v1/{kind}/describe.json"
        try:
            envelope = self.client.get(path)
            specs: dict[str, FieldSpec] | None = parse_describe(envelope.get("result") or [])
            if not specs and kind == "leads":
                specs = parse_describe(
                    self.client.get("/rest/v1/leads/describe.json").get("result") or []
                )
        except MarketoError as exc:
            if exc.code in AUTH_CODES or exc.http_status in {401, 403}:
                raise TargetError(f"Marketo refused the credentials: {exc}") from None
            if exc.retryable:
                raise TargetError(f"could not read {path}: {exc}") from None
            logger.warning(
                "Could not read %s (%s); records are checked against the stream schema only",
                path,
                exc,
            )
            specs = None
        self._describes[kind] = specs or None
        return self._describes[kind]

    def custom_member_fields(self) -> frozenset[str] | None:
        """Names of custom program member fields (Field API `isCustom`); None if unreadable.

        Data Ingestion members carry custom fields only, and describe does not say which
        updateable fields are custom (registrationCode and webinarUrl are standard).
        """
        if self._custom_member_fields is not False:
            return t.cast("frozenset[str] | None", self._custom_member_fields)
        from marketo_common import MarketoError  # noqa: PLC0415

        try:
            names: frozenset[str] | None = frozenset(
                str(item["name"])
                for item in self.client.iter_pages(MEMBER_FIELDS_PATH, batch_size=300)
                if isinstance(item, dict) and item.get("isCustom") and item.get("name")
            )
        except MarketoError as exc:
            if exc.retryable:  # 603 (no schema permission) falls back below
                raise TargetError(f"could not read {MEMBER_FIELDS_PATH}: {exc}") from None
            logger.warning(
                "Could not read %s (%s); program member fields the describe marks updateable "
                "are sent as custom fields",
                MEMBER_FIELDS_PATH,
                exc,
            )
            names = None
        self._custom_member_fields = names
        return names
