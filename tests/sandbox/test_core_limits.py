"""REST limits: 606 (rate), 615 (concurrency), 607 (daily quota), relaxed and strict numbers."""

from __future__ import annotations

import threading
import time

import pytest
from marketo_sandbox.limits import RELAXED, STRICT, RestLimits
from marketo_sandbox.server import SandboxServer
from sandbox_helpers import code

DESCRIBE = "/rest/v1/programs/members/describe.json"


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_rate_window_slides() -> None:
    clock = FakeClock()
    limits = RestLimits({**RELAXED, "rest_calls_per_20s": 3}, clock=clock)
    for _ in range(3):
        assert limits.enter() is None
        limits.leave()
    code, message = limits.enter()
    assert code == "606"
    assert "'3'" in message
    clock.t += 20.01
    assert limits.enter() is None


def test_concurrency_and_uncounted_calls() -> None:
    limits = RestLimits({**RELAXED, "rest_max_concurrent": 2}, clock=FakeClock())
    assert limits.enter() is None
    assert limits.enter() is None
    assert limits.enter()[0] == "615"
    limits.leave()
    assert limits.enter() is None
    used = limits.daily_used()
    limits.leave(counted=False)
    assert limits.daily_used() == used - 1


def test_daily_quota_per_day() -> None:
    day = {"d": "2026-01-01"}
    limits = RestLimits({**RELAXED, "rest_daily_quota": 2}, clock=FakeClock(), day=lambda: day["d"])
    for _ in range(2):
        assert limits.enter() is None
        limits.leave()
    assert limits.enter()[0] == "607"
    day["d"] = "2026-01-02"
    assert limits.enter() is None


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    with SandboxServer(tmp_path_factory.mktemp("limits") / "s.db", seed=None) as sb:
        yield sb


@pytest.fixture
def rest(server: SandboxServer, sandbox_rest):
    server.admin.set_options(**RELAXED)
    server.admin.clear_faults()
    caller = sandbox_rest(server)
    caller.token()
    time.sleep(0.05)
    return caller


def test_606_after_the_configured_calls(server: SandboxServer, rest) -> None:
    time.sleep(0.1)
    server.admin.set_options(rest_calls_per_20s=5)
    codes = [code(rest.get(DESCRIBE)) for _ in range(7)]
    assert codes[:5] == [None] * 5
    assert codes[5:] == ["606", "606"]
    # identity and the admin API are outside the REST limits
    assert rest.token()
    server.admin.set_options(**RELAXED)
    assert code(rest.get(DESCRIBE)) is None


def test_615_when_too_many_calls_run_at_once(server: SandboxServer, rest) -> None:
    server.admin.set_options(rest_max_concurrent=1)
    server.admin.inject_fault(DESCRIBE, "slow", delay=1.5)
    slow: dict = {}
    thread = threading.Thread(target=lambda: slow.update(reply=rest.get(DESCRIBE)))
    thread.start()
    deadline = time.monotonic() + 10
    while server.admin.limits()["inFlight"] < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert code(rest.get("/rest/v1/leads/describe2.json")) == "615"
    thread.join()
    assert code(slow["reply"]) is None
    assert code(rest.get("/rest/v1/leads/describe2.json")) is None


def test_607_daily_quota(server: SandboxServer, rest) -> None:
    used = server.admin.limits()["dailyUsed"]
    assert code(rest.get(DESCRIBE)) is None
    assert server.admin.limits()["dailyUsed"] == used + 1
    server.admin.set_options(rest_daily_quota=used + 3)
    codes = [code(rest.get(DESCRIBE)) for _ in range(4)]
    assert codes == [None, None, "607", "607"]
    # refused calls (and 600-602 answers) are not counted
    assert code(rest.get(DESCRIBE, headers={"Authorization": "Bearer bad"})) == "607"
    assert server.admin.limits()["dailyUsed"] == used + 3


def test_strict_uses_marketo_numbers(sandbox_factory, sandbox_rest) -> None:
    sb = sandbox_factory(seed=None, strict=True)
    options = sb.admin.options()
    assert {k: options[k] for k in STRICT} == STRICT
    rest = sandbox_rest(sb)
    codes = [code(rest.get(DESCRIBE)) for _ in range(101)]
    assert codes[:100] == [None] * 100
    assert codes[100] == "606"
