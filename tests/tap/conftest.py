"""One demo sandbox per test module (seeding takes seconds), reset of faults/options per test."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from marketo_sandbox.server import SandboxServer

if TYPE_CHECKING:
    from collections.abc import Iterator

# 600 sandbox seconds per wall second: Marketo's 60-s status rhythm becomes 0.1 s.
TIME_SCALE = 600.0


@pytest.fixture(scope="module")
def shared_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    server = SandboxServer(
        db_path=tmp_path_factory.mktemp("tap-sandbox") / "sandbox.db",
        seed="demo",
        time_scale=TIME_SCALE,
    ).start()
    yield server
    server.stop()


@pytest.fixture
def sb(shared_sandbox: SandboxServer) -> Iterator[SandboxServer]:
    """The module's sandbox; faults and options put back after each test."""
    options = shared_sandbox.admin.options()
    yield shared_sandbox
    shared_sandbox.admin.clear_faults()
    shared_sandbox.admin.set_options(**options)
