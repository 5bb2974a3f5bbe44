"""The REST family: its routes, from the modules that mirror Marketo's `/rest/...` URL tree."""

from __future__ import annotations

from marketo_sandbox.family import Family
from marketo_sandbox.rest import fields, leads, objects, program_members, programs

REST = Family(
    "rest",
    routes=[
        *program_members.ROUTES,
        *fields.ROUTES,
        *leads.ROUTES,
        *programs.ROUTES,
        *objects.ROUTES,
    ],
)
