"""Base stream: every stream reaches Marketo through the tap's one `MarketoClient`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.streams import Stream

from tap_marketo_members.sdk import stream_tap

if TYPE_CHECKING:
    from collections.abc import Iterator

    from marketo_common import MarketoClient

    from tap_marketo_members.settings import TapSettings
    from tap_marketo_members.tap import TapMarketoMembers


class MarketoStream(Stream):
    """Shared plumbing; values already come typed from Marketo's JSON, so no conformance pass."""

    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.ROOT_ONLY

    @property
    def marketo(self) -> MarketoClient:
        """The tap-wide client (one session, one token, one rate limiter)."""
        return self.marketo_tap.marketo_client

    @property
    def settings(self) -> TapSettings:
        """Validated tap settings."""
        return self.marketo_tap.tap_settings

    @property
    def marketo_tap(self) -> TapMarketoMembers:
        """The tap this stream belongs to."""
        return stream_tap(self)  # type: ignore[return-value]


class PagedFieldsStream(MarketoStream):
    """A field-schema browse endpoint paged with `nextPageToken` (300 per page)."""

    path = ""
    primary_keys = ("name",)

    def get_records(self, context: dict | None) -> Iterator[dict[str, Any]]:  # noqa: ARG002
        """Every field Marketo returns, unknown attributes included."""
        yield from self.marketo.iter_pages(self.path, batch_size=300)
