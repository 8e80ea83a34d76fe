"""`python -m procs.gate` in live mode against `python -m procs.sim` (signed REST over real HTTP):
intent -> ACK + FILL; a resting order survives a gate kill -9, is reconciled (not sent again), a
duplicate of it is refused, and it can still be cancelled."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import requests

from kairos import config
from kairos.execution import live_executor
from kairos.instruments import InstrumentTable
from kairos.records import Action, ExecKind, OrderState, RejectReason, Side, Tif
from kairos.sim.local import EPHEMERAL_ENV

from .test_gate import ROOT, GateProcess, intent, of

KEYS = {"KAIROS__VENUES__BINANCE__API_KEY": "gate-key", "KAIROS__VENUES__BINANCE__API_SECRET": "gate-secret",
        "KAIROS__VENUES__OKX__ENABLED": "false", "KAIROS__SIM__RATE_HZ": "0"}


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[str]:
    """The simulator on ephemeral ports; yields the Binance REST URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAIROS")} | KEYS | {
        **EPHEMERAL_ENV,
        "KAIROS__LOGGING__DIR": str(tmp_path / "simlog"),
        "KAIROS__SHM_PREFIX": f"kairos-nosim-{os.getpid()}"}
    proc = subprocess.Popen([sys.executable, "-m", "procs.sim", "--print-ports"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        line = proc.stdout.readline()                     # type: ignore[union-attr]
        assert line, f"sim exited {proc.poll()}"
        yield f"http://127.0.0.1:{orjson.loads(line)['binance_rest']}"
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.fixture
def live(shm_prefix: str, tmp_path: Path, sim: str) -> Iterator[GateProcess]:
    """Rings, board and a gate configured for live mode against the simulator (started by the test)."""
    endpoints = f"{{sim: {{rest_url: '{sim}', ws_url: 'ws://127.0.0.1:9'}}}}"
    env = {k.removeprefix("KAIROS__").lower(): v for k, v in KEYS.items()}
    g = GateProcess(shm_prefix, tmp_path, execution__mode="live", venues__binance__endpoints=endpoints, **env)
    try:
        yield g
    finally:
        g.close()


def touch(url: str) -> tuple[float, float]:
    book = requests.get(f"{url}/api/v3/depth", params={"symbol": "BTCUSDT", "limit": 5}, timeout=5).json()
    return float(book["bids"][0][0]), float(book["asks"][0][0])


def venue_open_orders(g: GateProcess, url: str) -> list[str]:
    """Ask the venue itself (a fresh signed REST client), not the gate."""
    settings = config.load(env=g.env)
    venue = dataclasses.replace(settings.venues["binance"], endpoint="sim")
    ex = live_executor("binance", dataclasses.replace(settings, venues={"binance": venue}),
                       InstrumentTable(settings.instruments))
    try:
        ex.start()
        return [r.client_order_id for r in ex.snapshot().open_orders]
    finally:
        ex.close()


def test_live_gate_fills_and_survives_kill_9_without_resending(live: GateProcess, sim: str) -> None:
    g = live
    bid, ask = touch(sim)
    g.mark(bid, ask)
    g.start()
    g.pub["intents"].publish(intent("live1", price=ask, qty=0.001))
    g.wait(of("live1", ExecKind.FILL), "the fill from the simulator")
    assert [ExecKind(e["kind"]) for e in g.seen] == [ExecKind.ACK, ExecKind.FILL]
    rest_px = round(bid * 0.995, 2)
    resting = intent("rest1", price=rest_px, qty=0.001, tif=Tif.GTC)
    g.pub["intents"].publish(resting)
    g.wait(of("rest1", ExecKind.ACK), "the resting order's ACK")
    g.kill()
    assert venue_open_orders(g, sim) == ["rest1"]
    g.start()
    g.mark(bid, ask)
    g.pub["intents"].publish(resting)                     # redelivered: a replay, not sent again
    g.pub["intents"].publish(intent("rest1", side=Side.BUY, price=rest_px, qty=0.001, tif=Tif.GTC))
    g.wait(of("rest1", ExecKind.REJECT), "the duplicate refused")
    dup = g.seen[-1]
    assert (dup["reason"], dup["state"]) == (RejectReason.DUPLICATE_ORDER, OrderState.ACK)
    assert venue_open_orders(g, sim) == ["rest1"]
    g.pub["manual"].publish(intent("rest1", action=Action.CANCEL))
    g.wait(of("rest1", ExecKind.CANCELED), "the cancel")
    assert venue_open_orders(g, sim) == []
    assert not any(e["reason"] == RejectReason.NOT_RECONCILED for e in g.seen)
