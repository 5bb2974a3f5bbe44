"""Envelope and dump helpers the sandbox tests share."""

from __future__ import annotations

from typing import Any

#: Sandbox seconds per wall second for the bulk tests: the 60-s status rhythm takes ~17 ms.
FAST = 3600.0


def result(reply: Any) -> list:
    """The `result` of a success envelope (fails the test otherwise)."""
    body = reply.json()
    assert body["success"] is True, body
    return body["result"]


def error(reply: Any) -> tuple[str, str]:
    """(code, message) of the first error of a failure envelope."""
    body = reply.json()
    assert body["success"] is False, body
    return body["errors"][0]["code"], body["errors"][0]["message"]


def code(reply: Any) -> str | None:
    """The first error code of an envelope, None on success."""
    body = reply.json()
    return None if body["success"] else body["errors"][0]["code"]


def leads_by_email(sb: Any) -> dict[str, dict]:
    """Every lead of the sandbox by lower-cased email."""
    return {(lead["email"] or "").lower(): lead for lead in sb.admin.dump("leads")}
