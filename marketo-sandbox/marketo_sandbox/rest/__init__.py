"""Marketo's REST API (`/rest/v1/...`, `/rest/asset/v1/...`), one module per API family."""

from __future__ import annotations

from marketo_sandbox.rest import fields, leads, objects, program_members, programs

ROUTES = [
    *program_members.ROUTES,
    *fields.ROUTES,
    *leads.ROUTES,
    *programs.ROUTES,
    *objects.ROUTES,
]

__all__ = ["ROUTES"]
