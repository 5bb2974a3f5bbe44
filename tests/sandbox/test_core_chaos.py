"""Chaos mode: seeded random faults across every endpoint family, counted and logged."""

from __future__ import annotations

import collections

import pytest
from marketo_sandbox.chaos import CHAOS_KINDS, FAMILIES, Chaos, kinds_for, parse_spec
from marketo_sandbox.cli import parser
from marketo_sandbox.faults import KINDS, Faults
from marketo_sandbox.limits import RestLimits
from marketo_sandbox.server import SandboxServer
from sandbox_helpers import FAST, code
from test_bulk_support import Api

SUB = "/subscriptions/123-ABC-456"
# One call of each endpoint family, as the tap and the target make them.
CALLS = [
    ("GET", "/identity/oauth/token"),
    ("GET", "/rest/v1/programs.json"),
    ("POST", "/rest/v1/programs/1001/members.json"),
    ("POST", "/bulk/v1/program/members/export/create.json"),
    ("POST", "/bulk/v1/program/members/export/abc-1/enqueue.json"),
    ("GET", "/bulk/v1/program/members/export/abc-1/status.json"),
    ("GET", "/bulk/v1/program/members/export/abc-1/file.json"),
    ("POST", "/bulk/v1/leads.json"),
    ("GET", "/bulk/v1/leads/batch/7.json"),
    ("POST", "/bulk/v1/program/1003/members/import.json"),
    ("POST", f"{SUB}/persons"),
    ("POST", f"{SUB}/programmembers"),
]


def _run(chaos: Chaos, rounds: int) -> list[dict]:
    for _ in range(rounds):
        for method, path in CALLS:
            chaos.draw(method, path)
    return chaos.snapshot(with_log=True)["log"]


def test_same_seed_same_faults_other_seed_others() -> None:
    first, second, other = Chaos(), Chaos(), Chaos()
    first.arm(0.2, 42)
    second.arm(0.2, 42)
    other.arm(0.2, 43)
    log = _run(first, 200)
    assert log == _run(second, 200)
    assert log != _run(other, 200)
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
    assert {"seq", "call", "method", "path", "kind"} <= set(log[0])


def test_rate_is_honoured() -> None:
    chaos = Chaos()
    chaos.arm(0.05, 7)
    _run(chaos, 2000)  # 24,000 calls
    state = chaos.snapshot()
    assert state["calls"] == 24_000
    assert 0.04 < state["injected"] / state["calls"] < 0.06
    assert sum(state["counts"].values()) == state["injected"]


def test_every_kind_is_reachable_and_a_known_fault() -> None:
    assert CHAOS_KINDS <= KINDS
    chaos = Chaos()
    chaos.arm(1.0, 1)
    _run(chaos, 300)
    assert set(chaos.snapshot()["counts"]) == CHAOS_KINDS
    # each call only meets kinds of its own family
    for entry in chaos.snapshot(with_log=True)["log"]:
        assert entry["kind"] in kinds_for(entry["method"], entry["path"])
    assert "truncate" not in kinds_for("GET", "/rest/v1/programs.json")
    assert "token_expired" not in kinds_for("GET", "/identity/oauth/token")
    assert kinds_for("GET", "/_sandbox/now") == ()
    assert all(kinds for _, _, kinds in FAMILIES)


def test_off_injects_nothing() -> None:
    chaos = Chaos()
    _run(chaos, 100)
    assert chaos.snapshot()["injected"] == 0
    chaos.arm(1.0, 3)
    chaos.disarm()
    _run(chaos, 100)
    assert chaos.snapshot()["injected"] == 0
    faults = Faults()
    assert all(faults.take(m, p) is None for m, p in CALLS * 50)


def test_job_kind_is_armed_for_the_endpoint_to_take() -> None:
    faults = Faults()
    seed = next(
        s for s in range(10_000) if _first_kind(s, "POST", "/bulk/v1/leads.json") == "job_failed"
    )
    faults.chaos.arm(1.0, seed)
    assert faults.take("POST", "/bulk/v1/leads.json") is None  # the call goes on ...
    assert faults.take_kind("job_failed", "/bulk/v1/leads.json", "POST") is not None  # ... fails
    assert faults.take_kind("job_failed", "/bulk/v1/leads.json", "POST") is None  # once


def test_job_kinds_drawn_while_polling_do_not_pile_up() -> None:
    """A status poll draws bad_checksum before the job has a checksum; the lies must not
    accumulate, or every read after completion would lie (seen in the 1M-member soak)."""
    faults = Faults()
    path = "/bulk/v1/program/members/export/abc-1/status.json"
    faults.chaos.arm(1.0, 7)
    for _ in range(200):  # polls of a job still Processing: nothing takes the lie
        faults.take("GET", path)
    assert faults.chaos.snapshot()["counts"].get("bad_checksum", 0) > 1
    assert faults.take_kind("bad_checksum", path, "GET") is not None  # the Completed read lies
    faults.chaos.disarm()
    assert faults.take_kind("bad_checksum", path, "GET") is None  # the re-read does not


def _first_kind(seed: int, method: str, path: str) -> str | None:
    chaos = Chaos()
    chaos.arm(1.0, seed)
    return chaos.draw(method, path)


@pytest.mark.parametrize(
    ("spec", "rate", "seed"),
    [
        ("0.05", 0.05, None),
        ("5%", 0.05, None),
        ("0.1:9", 0.1, 9),
        ({"rate": 0.2, "seed": 3}, 0.2, 3),
    ],
)
def test_spec(spec, rate, seed) -> None:
    assert parse_spec(spec) == (pytest.approx(rate), seed)


def test_bad_spec_is_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        parse_spec("150%")
    with pytest.raises(SystemExit):
        parser().parse_args(["serve", "--db", "x.db", "--chaos", "lots"])


def test_limits_keep_peaks_and_refusals() -> None:
    now = [0.0]
    limits = RestLimits({"rest_calls_per_20s": 3, "rest_max_concurrent": 2, "rest_daily_quota": 99},
                        clock=lambda: now[0])  # fmt: skip
    assert limits.enter() is None
    assert limits.enter() is None
    assert limits.enter()[0] == "615"
    limits.leave()
    assert limits.enter() is None
    assert limits.enter()[0] == "606"
    assert limits.peaks() == {"peakPer20s": 3, "peakInFlight": 2, "refused": {"615": 1, "606": 1}}


# --- through the server --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chaos_sb(tmp_path_factory: pytest.TempPathFactory):
    with SandboxServer(
        tmp_path_factory.mktemp("chaos") / "s.db", seed="demo", time_scale=FAST, chaos="0:5"
    ) as sb:
        yield sb


def test_server_chaos_from_the_command_line(chaos_sb: SandboxServer) -> None:
    state = chaos_sb.admin.chaos()
    assert (state["rate"], state["seed"], state["injected"]) == (0, 5, 0)


def test_server_off_then_armed_then_replayed(chaos_sb: SandboxServer) -> None:
    api = Api(chaos_sb)
    chaos_sb.admin.disarm_chaos()
    for _ in range(30):
        assert code(api.get("/rest/v1/programs/members/describe.json")) is None
    assert chaos_sb.admin.chaos()["injected"] == 0

    def round_of_calls() -> tuple[list, list]:
        chaos_sb.admin.arm_chaos(0.5, 11, slow_seconds=0.01)
        seen = [_outcome(api) for _ in range(40)]
        log = chaos_sb.admin.chaos(log=True)["log"]
        return seen, [(e["seq"], e["call"], e["kind"]) for e in log]

    first = round_of_calls()
    assert first == round_of_calls()  # the same seed and calls: the same faults, replayed
    state = chaos_sb.admin.disarm_chaos()
    assert 5 < state["injected"] < 35
    assert sum(state["counts"].values()) == state["injected"]
    outcomes = collections.Counter(str(o) for o in first[0])
    assert "(200, None)" in outcomes
    assert len(outcomes) > 2


def _outcome(api: Api) -> object:
    try:
        reply = api.get("/rest/v1/programs/members/describe.json")
    except Exception as exc:  # a reset is one of the outcomes
        return type(exc).__name__
    return reply.status_code, code(reply) if reply.status_code == 200 else None


def test_server_job_kind_reaches_the_import(chaos_sb: SandboxServer, tmp_path) -> None:
    api = Api(chaos_sb)
    seed = next(
        s
        for s in range(10_000)
        if _first_kind(s, "POST", "/bulk/v1/leads.json") == "too_many_imports"
    )
    chaos_sb.admin.arm_chaos(1.0, seed)
    reply = api.post(
        "/bulk/v1/leads.json",
        params={"format": "csv"},
        files={"file": ("l.csv", b"email\nchaos@example.com\n", "text/csv")},
    )
    chaos_sb.admin.disarm_chaos()
    assert code(reply) == "1016"


def test_server_ingestion_failure_after_the_202(chaos_sb: SandboxServer) -> None:
    api = Api(chaos_sb)
    chaos_sb.admin.inject_fault(f"{SUB}/persons", "ingest_failed")
    reply = api.http.post(
        f"{chaos_sb.base_url}{SUB}/persons",
        json={"persons": [{"email": "lost.after.accept@example.com"}]},
        headers={"X-Mkto-User-Token": api.token},
        timeout=30,
    )
    assert reply.status_code == 202
    chaos_sb.admin.wait_ingestion()
    failures = chaos_sb.admin.ingestion(reply.headers["X-Request-Id"])["failures"]
    assert failures
    assert "Internal Server Error" in str(failures)
    emails = {lead["email"] for lead in chaos_sb.admin.dump("leads")}
    assert "lost.after.accept@example.com" not in emails


def test_job_endpoints_meet_their_own_kinds_half_the_time() -> None:
    chaos = Chaos()
    chaos.arm(1.0, 2)
    for _ in range(1000):
        chaos.draw("GET", "/bulk/v1/program/members/export/x/file.json")
    counts = chaos.snapshot()["counts"]
    assert 0.45 < counts["truncate"] / 1000 < 0.6


def test_ingestion_failure_after_202_is_drawn_uniformly() -> None:
    chaos = Chaos()
    chaos.arm(1.0, 4)
    for _ in range(2000):
        chaos.draw("POST", f"{SUB}/persons")
    share = chaos.snapshot()["counts"]["ingest_failed"] / 2000
    assert 0.05 < share < 0.15  # 1 of the 10 kinds a Data Ingestion POST can meet
