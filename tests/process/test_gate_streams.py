"""End to end in live mode: `python -m procs.gate` against `python -m procs.sim` with the Binance private stream.

Orders are placed, partially filled, filled and cancelled while every private-stream fault is injected
(duplicated, reordered and delayed events, the connection dropped, the subscription ended); at the end the
gate's fills, fees and balances equal the simulator's ledger: no fill lost, none counted twice.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from kairos import config
from kairos.execution import live_executor
from kairos.gate.snapshot import GateStateReader
from kairos.instruments import InstrumentTable
from kairos.records import Action, ExecKind, OrderState, Tif

from .test_gate import ROOT, GateProcess, intent, of

KEYS = {"KAIROS__VENUES__BINANCE__API_KEY": "gate-key", "KAIROS__VENUES__BINANCE__API_SECRET": "gate-secret",
        "KAIROS__VENUES__OKX__ENABLED": "false"}
PORTS = ("BINANCE_REST_PORT", "BINANCE_WS_PORT", "OKX_REST_PORT", "OKX_WS_PORT", "BINANCE_PRIVATE_PORT",
         "OKX_PRIVATE_PORT")


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[dict[str, int]]:
    """The simulator (random walk on) on ephemeral ports; yields its ports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAIROS")} | KEYS | {
        f"KAIROS__SIM__{p}": "0" for p in PORTS} | {"KAIROS__LOGGING__DIR": str(tmp_path / "simlog"),
                                                  "KAIROS__SHM_PREFIX": f"kairos-streamsim-{os.getpid()}"}
    proc = subprocess.Popen([sys.executable, "-m", "procs.sim", "--print-ports"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        line = proc.stdout.readline()                     # type: ignore[union-attr]
        assert line, f"sim exited {proc.poll()}"
        yield orjson.loads(line)
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.fixture
def live(shm_prefix: str, tmp_path: Path, sim: dict[str, int]) -> Iterator[GateProcess]:
    endpoints = (f"{{sim: {{rest_url: 'http://127.0.0.1:{sim['binance_rest']}', ws_url: 'ws://127.0.0.1:9', "
                 f"private_url: 'ws://127.0.0.1:{sim['binance_private']}/ws-api/v3'}}}}")
    env = {k.removeprefix("KAIROS__").lower(): v for k, v in KEYS.items()}
    g = GateProcess(shm_prefix, tmp_path, execution__mode="live", venues__binance__endpoints=endpoints,
                    execution__stream_watchdog_s="2", execution__stream_backoff_max_s="0.5", **env)
    try:
        yield g
    finally:
        g.close()


def rest(sim: dict[str, int]) -> str:
    return f"http://127.0.0.1:{sim['binance_rest']}"


def touch(sim: dict[str, int]) -> tuple[float, float]:
    book = requests.get(f"{rest(sim)}/api/v3/depth", params={"symbol": "BTCUSDT", "limit": 5}, timeout=5).json()
    return float(book["bids"][0][0]), float(book["asks"][0][0])


def fault(sim: dict[str, int], kind: str, count: int = 1) -> None:
    resp = requests.post(f"{rest(sim)}/_sim/private-fault", json={"kind": kind, "count": count, "delay_ms": 150},
                         timeout=5)
    assert resp.status_code == 200, resp.text


def steer(sim: dict[str, int], price: float | None) -> None:
    body = {"venue": "binance", "symbol": "BTCUSDT", "price": price}
    assert requests.post(f"{rest(sim)}/_sim/mid", json=body, timeout=5).status_code == 200


def gate_state(g: GateProcess, until: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
    reader = GateStateReader(g.prefix)
    try:
        for _ in range(1500):
            state = reader.read()
            if state is not None and until(state):
                return state
            time.sleep(0.02)
    finally:
        reader.close()
    raise AssertionError(f"gate state never showed {what}: {g.output()}")


def subscribed(times: int) -> Callable[[dict[str, Any]], bool]:
    return lambda s: (s["executors"]["binance"].get("stream_subscribed", 0) >= times
                      and bool(s["executors"]["binance"].get("stream_healthy")))


def ended(coid: str) -> Callable[[list], bool]:
    return lambda seen: any(e["client_order_id"] == coid.encode() and e["state"] in (OrderState.FILLED,
                            OrderState.CANCELED) and e["kind"] != ExecKind.STATE for e in seen)


def test_live_gate_with_private_stream_and_every_fault_matches_the_ledger(live: GateProcess,
                                                                          sim: dict[str, int]) -> None:
    g = live
    bid, ask = touch(sim)
    g.mark(bid, ask)
    g.start()
    gate_state(g, subscribed(1), "the private stream subscribed")
    prices = [round(bid * (0.998 - 0.0003 * i), 2) for i in range(3)]
    for i, price in enumerate(prices):
        g.mark(*touch(sim))
        g.pub["intents"].publish(intent(f"e{i}", price=price, qty=0.05, tif=Tif.GTC))
    g.wait(lambda seen: all(of(f"e{i}", ExecKind.ACK)(seen) for i in range(3)), "three ACKs")
    for kind in ("duplicate", "reorder", "delay"):
        fault(sim, kind, count=3)
    steer(sim, prices[0] * 0.9999)                         # e0 fills (in parts, events duplicated/reordered/late)
    g.wait(ended("e0"), "e0 filled")
    fault(sim, "drop")
    steer(sim, prices[1] * 0.9999)                         # e1 fills while the stream reconnects
    g.wait(ended("e1"), "e1 filled")
    gate_state(g, subscribed(2), "the stream back after the drop")
    fault(sim, "terminate")
    gate_state(g, subscribed(3), "the stream back after eventStreamTerminated")
    steer(sim, None)
    g.pub["manual"].publish(intent("e2", action=Action.CANCEL))
    g.wait(ended("e2"), "e2 cancelled")
    check_ledger(g, sim)
    fired = requests.get(f"{rest(sim)}/_sim/private-stats", timeout=5).json()["binance"]
    assert all(fired[k] > 0 for k in ("duplicated", "reordered", "delayed", "dropped", "terminated")), fired


def check_ledger(g: GateProcess, sim: dict[str, int]) -> None:
    settings = config.load(env=g.env)
    venue = dataclasses.replace(settings.venues["binance"], endpoint="sim")
    ex = live_executor("binance", dataclasses.replace(settings, venues={"binance": venue}),
                       InstrumentTable(settings.instruments))
    ex.start()
    try:
        maker = venue.maker_fee_bps / 1e4
        for coid in ("e0", "e1", "e2"):
            view = ex._query_view(coid, "BTCUSDT")
            fills = [e for e in g.seen if e["client_order_id"] == coid.encode() and e["kind"] == ExecKind.FILL]
            assert sum(float(e["qty"]) for e in fills) == pytest.approx(view.cum_qty, abs=1e-12), coid
            assert sum(float(e["fee"]) for e in fills) == pytest.approx(view.cum_qty * maker, rel=1e-9), coid
        venue_balances = ex.snapshot().balances
    finally:
        ex.close()
    state = gate_state(g, lambda s: not s["orders"], "no open orders")
    gate_balances = {b["asset"]: b["free"] + b["locked"] for b in state["balances"] if b["venue"] == "binance"}
    for asset in ("BTC", "USDT"):
        assert gate_balances[asset] == pytest.approx(sum(venue_balances[asset]), rel=1e-12), asset
    stats = state["executors"]["binance"]
    assert stats["stream_bad_frames"] == 0 and stats["stream_fills"] > 0
