"""`Family`: what one API family brings to the app; `app.create_app` composes them explicitly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import BaseRoute

    from marketo_sandbox.jobs import Scheduler
    from marketo_sandbox.storage import Store

    #: An admin dump (`/_sandbox/dump/{kind}`): the rows of one kind.
    DumpFn = Callable[[Store], list[dict[str, Any]]]
    #: A start-up, shut-down or reset hook (sync or async).
    Hook = Callable[[Starlette], Awaitable[None] | None]
    #: Registers the family's job pools and driver hooks on the app's one scheduler.
    JobsFn = Callable[[Starlette, Scheduler], None]


@dataclass(frozen=True)
class Family:
    """One API family's declaration: nothing registers itself on import.

    `schema` is created with the core tables (and again after `/_sandbox/reset`); `middleware`
    sits inside the request log; `on_reset` runs after the reset emptied the db.
    """

    name: str
    routes: Sequence[BaseRoute] = ()
    schema: str = ""
    dumps: Mapping[str, DumpFn] = field(default_factory=dict)
    middleware: Sequence[Middleware] = ()
    jobs: JobsFn | None = None
    on_startup: Hook | None = None
    on_shutdown: Hook | None = None
    on_reset: Hook | None = None
