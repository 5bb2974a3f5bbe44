"""Fixtures shared by every test folder: sandbox servers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from marketo_sandbox.server import SandboxServer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


@pytest.fixture
def sandbox_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., SandboxServer]]:
    """Start sandboxes with custom settings: `sandbox_factory(seed=None, strict=True, ...)`.

    Each gets its own db under a fresh temporary directory unless `db_path` is given, and is
    stopped at the end of the test.
    """
    started: list[SandboxServer] = []

    def start(**kwargs: Any) -> SandboxServer:
        if "db_path" not in kwargs:
            kwargs["db_path"] = tmp_path_factory.mktemp("sandbox") / "sandbox.db"
        kwargs.setdefault("time_scale", 60.0)
        server = SandboxServer(**kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def sandbox(sandbox_factory: Callable[..., SandboxServer]) -> SandboxServer:
    """A fresh demo-seeded sandbox (time_scale=60) for one test."""
    return sandbox_factory(seed="demo", time_scale=60.0)
