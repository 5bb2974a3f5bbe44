"""Fixtures for target tests."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def fast_sandbox(sandbox_factory: Any) -> Any:
    """Demo-seeded sandbox whose import jobs finish in well under a second."""
    return sandbox_factory(seed="demo", time_scale=600.0)


@pytest.fixture(scope="module")
def shared_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One demo sandbox per test module for tests that write distinct data and arm no faults."""
    from marketo_sandbox.server import SandboxServer  # noqa: PLC0415

    db = tmp_path_factory.mktemp("target-sandbox") / "sandbox.db"
    server = SandboxServer(db_path=db, seed="demo", time_scale=600.0).start()
    yield server
    server.stop()
