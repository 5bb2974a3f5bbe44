"""`SandboxState`: the app's shared parts, typed (one attribute of `app.state`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import HTTPConnection

if TYPE_CHECKING:
    from pathlib import Path

    from starlette.applications import Starlette

    from marketo_sandbox.clock import Clock
    from marketo_sandbox.family import DumpFn, Family
    from marketo_sandbox.faults import Faults
    from marketo_sandbox.identity import Identity
    from marketo_sandbox.jobs import Scheduler
    from marketo_sandbox.limits import RestLimits
    from marketo_sandbox.options import Options
    from marketo_sandbox.storage import Store


@dataclass
class SandboxState:
    """Everything a handler reaches, built once by `app.create_app`."""

    config: dict[str, Any]
    munchkin_id: str
    store: Store
    clock: Clock
    faults: Faults
    options: Options
    limits: RestLimits
    identity: Identity
    scheduler: Scheduler
    #: Export and import files: beside the SQLite database, so restarts keep them.
    files_dir: Path
    families: tuple[Family, ...] = ()
    dumps: dict[str, DumpFn] = field(default_factory=dict)


def state_of(holder: HTTPConnection | Starlette) -> SandboxState:
    """The sandbox state of a request's app, or of the app itself."""
    app = holder.app if isinstance(holder, HTTPConnection) else holder
    return app.state.sandbox
