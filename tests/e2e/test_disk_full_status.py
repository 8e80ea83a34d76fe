"""A full journal disk as the operator sees it: the real `procs.gate` under the real arbiter, its journal on a
small tmpfs, a quiet simulator for the venue rules. `kairosctl status` (a real process) shows the gate RUNNING and
`trading HALTED (DISK_FULL: ...)`; `kairosctl resume` is refused (exit 1) until there is space, then accepted."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest

from kairos.api.pb import pb
from kairos.records import MARKET_DATA, ORDER_INTENT, ExecKind, Kind, Venue
from kairos.ring import Ring
from kairos.sim.local import venue_sim
from tests.e2e.test_kairosctl import ctl
from tests.process.support import Supervised, wait_until
from tests.process.test_gate import intent
from tests.process.test_gate_disk_full import fill
from tests.service.tmpfs import small_disk

__all__ = ["small_disk"]
pytestmark = pytest.mark.slow


@pytest.fixture
def sim_env() -> Iterator[dict[str, str]]:
    with venue_sim() as env:
        yield {k.removeprefix("KAIROS__").lower(): v for k, v in env.items()}


def publish(prefix: str, ring: str, dtype: np.dtype, rec: np.ndarray) -> None:
    producer = Ring.attach(ring, dtype, prefix=prefix)
    try:
        producer.producer().publish(rec)
    finally:
        producer.close()


def mark(prefix: str) -> None:
    rec = np.zeros(1, MARKET_DATA)
    rec["kind"], rec["instrument"], rec["venue"], rec["price"], rec["price2"] = Kind.BBO, 1, Venue.BINANCE, 100.0, 101.0
    publish(prefix, "md.binance", MARKET_DATA, rec)


def test_kairosctl_status_shows_the_gate_halted_disk_full_and_resume_waits_for_space(
        engines: list[Supervised], shm_prefix: str, tmp_path: Path, sim_env: dict[str, str],
        small_disk: Callable[[str, str], Path]) -> None:
    disk = small_disk("journal", "256k")
    gate = {"role": "gate", "argv": [sys.executable, "-m", "procs.gate"], "halts": True}
    sup = Supervised.harness(shm_prefix, tmp_path / "engine.log", [gate], risk__journal_dir=disk,
                             execution__mode="paper", execution__paper_latency_ms="1",
                             risk__max_orders_per_sec="0", **sim_env)
    engines.append(sup)
    sup.connect()
    sup.wait_process("gate", lambda p: p.state == pb.CHILD_STATE_RUNNING and p.self_state == "RUNNING",
                     "the gate in its duty loop", timeout_s=60)
    journal = disk / f"{shm_prefix}.gate.jsonl"
    tries = iter(range(1000))

    def filled() -> bool:
        """A mark, then an order, until one fills (an order read before the gate has its mark is REJECT NO_MARK)."""
        if journal.exists() and any(e["t"] == "E" and e["k"] == ExecKind.FILL
                                    for e in map(orjson.loads, journal.read_bytes().split(b"\n")[:-1])):  # whole lines
            return True
        mark(shm_prefix)
        publish(shm_prefix, "intents", ORDER_INTENT, intent(f"before{next(tries)}"))
        return False

    wait_until(filled, "an order filled and journaled", 60, step_s=0.5)

    fill([(disk / "filler", os.O_WRONLY | os.O_CREAT), (journal, os.O_WRONLY | os.O_APPEND)])
    publish(shm_prefix, "intents", ORDER_INTENT, intent("nospace"))
    wait_until(lambda: sup.status().trading_reason.startswith("DISK_FULL"), "the gate's DISK_FULL halt", 30)
    gate_pid = sup.process("gate").pid

    out = ctl(sup, "status")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("engine: spawn mode, trading HALTED (DISK_FULL: the journal cannot be written ("
                                 "[Errno 28] No space left on device))"), out.stdout
    assert any(line.split()[:3] == ["gate", "RUNNING", str(gate_pid)] for line in out.stdout.splitlines())
    early = ctl(sup, "resume")
    assert early.returncode == 1 and "DISK_FULL" in early.stderr, (early.stdout, early.stderr)

    (disk / "filler").unlink()
    again = ctl(sup, "resume")
    assert again.returncode == 0 and "HALTED -> ACTIVE" in again.stdout, (again.stdout, again.stderr)
    assert ctl(sup, "status").stdout.startswith("engine: spawn mode, trading ACTIVE")
    assert sup.process("gate").pid == gate_pid and sup.process("gate").restarts == 0  # up all along
    assert sup.stop() == 0
