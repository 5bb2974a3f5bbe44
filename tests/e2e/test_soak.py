"""The chaos soak at CI size (issue 19): the round trip under random faults and SIGKILLs.

`benchmarks/soak` at a few thousand members: every proof of the full soak (warehouse equals
Marketo, every written record in Marketo or rejected, no export left running, REST limits
kept), at a higher fault rate so the few hundred calls of a small run meet most fault kinds.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

import pytest

from e2e.support import ROOT

if TYPE_CHECKING:
    from pathlib import Path

    from e2e.support import Meltano, Postgres

sys.path.insert(0, str(ROOT / "benchmarks"))

import soak


@pytest.mark.soak
def test_soak_round_trip_under_chaos(
    meltano: Meltano, postgres: Postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(soak.PG, "host", postgres.host)
    monkeypatch.setitem(soak.PG, "port", postgres.port)
    args = argparse.Namespace(
        members=8000, records=1000, rate=0.1, kills=3, seed=19, keep=False, no_baseline=True
    )
    run = soak.run_once(args, tmp_path / "chaos", chaos=True)
    line = soak.summary_line(args, run, None)
    print(line)
    assert soak.verdict(run, args.members) == [], line
    assert run["tap"]["kills"] == 3, line
    assert run["target"]["kills"] == 3, line
    assert run["faults"]["injected"] > 0, line
