"""Chaos mode: random faults at a rate, across every endpoint family, seeded and logged.

`--chaos RATE[:SEED]` (CLI), `config["chaos"]` (create_app) or `POST /_sandbox/chaos` arms it.
Each API call (never `/_sandbox/`) draws once: with probability RATE it gets a fault, a kind
chosen among the kinds that call can really meet in Marketo (half the time among the endpoint's
own job-level kinds on the bulk job endpoints). HTTP-level kinds are
applied by `FaultMiddleware` at once; a job-level kind is armed as a one-shot `Fault` on that
exact path, which the endpoint takes at the moment it makes sense (as the targeted faults do).
Every injected fault gets a sequence number, logged (logger `marketo_sandbox.chaos`) and kept,
so a failing run can be read back and replayed: the same seed and the same order of calls give
the same faults. Counts by kind: `GET /_sandbox/chaos`.

Why each kind is one real Marketo produces (published pages under /work/shared/reference/):
- http_500/502/503: error-codes.md, HTTP 5xx ("502 ... likely a timeout ... retried with
  exponential backoff"); data-ingestion.md 500 5000801 Internal Server Error.
- reset, slow: what that timeout looks like on the wire (a proxy dropping or stalling the call);
  error-codes.md 502/604 ("Request timed out").
- token_invalid/token_expired: authentication.md 601/602 (Data Ingestion: 401 401013).
- rate_limit/concurrency: error-codes.md 606/615 (Data Ingestion: 429 429001).
- too_many_jobs: bulk-extract.md "1029, Too many jobs in queue" on enqueue.
- too_many_imports: bulk-lead-import.md / bulk-program-member-import.md "1016, Too many imports".
- job_failed: bulk-extract.md and bulk-import.md, a job's status can be `Failed`.
- truncate: bulk-extract.md, the file is verified by its SHA-256 ("to verify that the file is
  complete"): a download can arrive short.
- bad_checksum: bulk-extract.md `fileChecksum`; a mismatch is the documented signal of a bad file.
- ingest_failed: data-ingestion.md, requests "execute asynchronously" and report their outcome on
  the Observability stream only: a 202 request can still fail as a whole (5000801).
Not drawn: the 1029 "Export daily quota exceeded" (a tap must stop for the day on it, which a
soak cannot tell from a hang) and 607 daily quota, for the same reason.
"""

from __future__ import annotations

import collections
import fnmatch
import logging
import random
import threading
from typing import Any

log = logging.getLogger("marketo_sandbox.chaos")

_HTTP_5XX = ("http_500", "http_502", "http_503")
_TRANSPORT = (*_HTTP_5XX, "reset", "slow")
_REST = (*_TRANSPORT, "token_invalid", "token_expired", "rate_limit", "concurrency")
#: (method, path glob, kinds) in order; the first match picks the call's kinds.
FAMILIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("*", "/identity/*", _TRANSPORT),
    ("POST", "/bulk/v1/*/export/*/enqueue.json", (*_REST, "too_many_jobs", "job_failed")),
    ("GET", "/bulk/v1/*/export/*/status.json", (*_REST, "bad_checksum")),
    ("GET", "/bulk/v1/*/export/*/file.json", (*_REST, "truncate")),
    ("POST", "/bulk/v1/leads.json", (*_REST, "too_many_imports", "job_failed")),
    ("POST", "/bulk/v1/program/*/members/import.json", (*_REST, "too_many_imports", "job_failed")),
    ("POST", "/subscriptions/*", (*_REST, "ingest_failed")),
    ("*", "/subscriptions/*", _REST),
    ("*", "/rest/*", _REST),
    ("*", "/bulk/*", _REST),
)
#: Every kind chaos can inject.
CHAOS_KINDS = frozenset(k for _, _, kinds in FAMILIES for k in kinds)
#: Share of an endpoint's faults drawn from its own (job-level) kinds.
OWN_SHARE = 0.5
#: Entries of the fault log kept in memory (the logger has them all).
LOG_LIMIT = 200_000


def kinds_for(method: str, path: str) -> tuple[str, ...]:
    """The fault kinds a call to `path` can meet in Marketo (empty: none)."""
    for want, glob, kinds in FAMILIES:
        if want in ("*", method.upper()) and fnmatch.fnmatchcase(path, glob):
            return kinds
    return ()


def parse_spec(spec: Any) -> tuple[float, int | None]:
    """`"0.05"`, `"5%"`, `"0.05:7"` or `{"rate":..,"seed":..}` -> (rate, seed); ValueError."""
    if isinstance(spec, dict):
        rate, seed = spec.get("rate", 0), spec.get("seed")
    else:
        text, _, seed_text = str(spec).partition(":")
        text = text.strip()
        rate = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        seed = int(seed_text) if seed_text.strip() else None
    rate = float(rate)
    if not 0 <= rate <= 1:
        raise ValueError(f"chaos rate must be between 0 and 1 (or 0%..100%), got {rate}")
    return rate, None if seed is None else int(seed)


class Chaos:
    """The random source of chaos mode; off (rate 0) until armed. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rate = 0.0
        self.seed: int | None = None
        self.slow_seconds = 1.0
        self._rng = random.Random(0)  # noqa: S311 - fault draws, not secrets
        self._seq = 0
        self._drawn = 0
        self._counts: collections.Counter[str] = collections.Counter()
        self._log: list[dict[str, Any]] = []

    def arm(self, rate: float, seed: int | None = None, slow_seconds: float | None = None) -> None:
        """Start (again) at `rate` with `seed` (None: a random seed, reported by `snapshot`)."""
        with self._lock:
            self.rate = rate
            self.seed = random.SystemRandom().randrange(2**31) if seed is None else seed
            if slow_seconds is not None:
                self.slow_seconds = float(slow_seconds)
            self._rng = random.Random(self.seed)  # noqa: S311
            self._seq = self._drawn = 0
            self._counts.clear()
            self._log.clear()
        log.warning("chaos armed: rate %.4f seed %s", rate, self.seed)

    def disarm(self) -> None:
        """Off: nothing more is injected (counts and log stay readable)."""
        with self._lock:
            self.rate = 0.0

    def draw(self, method: str, path: str) -> str | None:
        """The kind injected on this call, or None; counts and logs it."""
        if self.rate <= 0:
            return None
        kinds = kinds_for(method, path)
        if not kinds:
            return None
        with self._lock:
            self._drawn += 1
            if self._rng.random() >= self.rate:
                return None
            # A job endpoint's own kinds (1029, 1016, Failed jobs, truncation, checksums) half
            # the time: those endpoints are called a few times per job, so a uniform draw would
            # almost never reach them. Data Ingestion is called per request: uniform there.
            own = [k for k in kinds if k not in _REST and k != "ingest_failed"]
            kind = self._rng.choice(own if own and self._rng.random() < OWN_SHARE else kinds)
            self._seq += 1
            self._counts[kind] += 1
            entry = {"seq": self._seq, "call": self._drawn, "method": method, "path": path,
                     "kind": kind}  # fmt: skip
            if len(self._log) < LOG_LIMIT:
                self._log.append(entry)
        log.warning("chaos #%d call %d %s %s: %s", entry["seq"], entry["call"], method, path, kind)
        return kind

    def snapshot(self, with_log: bool = False) -> dict[str, Any]:
        """State for `GET /_sandbox/chaos`: rate, seed, calls drawn, counts by kind (and log)."""
        with self._lock:
            out: dict[str, Any] = {
                "rate": self.rate,
                "seed": self.seed,
                "slowSeconds": self.slow_seconds,
                "calls": self._drawn,
                "injected": self._seq,
                "counts": dict(sorted(self._counts.items())),
            }
            if with_log:
                out["log"] = list(self._log)
        return out
