"""Fixtures of the sandbox tests (each module starts its own `server`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from marketo_sandbox.server import SandboxServer
from sandbox_helpers import FAST
from test_bulk_support import Api

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def rest(server: SandboxServer, sandbox_rest: Any) -> Any:
    """A REST caller bound to the module's `server`."""
    return sandbox_rest(server)


@pytest.fixture(scope="module")
def fast_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    """One demo sandbox at `FAST` time per module, for the bulk and ingestion tests."""
    db = tmp_path_factory.mktemp("fast") / "sandbox.db"
    with SandboxServer(db_path=db, seed="demo", time_scale=FAST) as sb:
        yield sb


@pytest.fixture
def api(fast_sandbox: SandboxServer) -> Api:
    """A bulk API client of the module's fast sandbox."""
    return Api(fast_sandbox)
