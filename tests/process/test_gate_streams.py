"""End to end in live mode: `python -m procs.gate` against `python -m procs.sim` with each venue's private stream.

Orders are placed, partially filled, filled and cancelled while every private-stream fault is injected
(duplicated, reordered and delayed events, the connection dropped, Binance's subscription ended) and a deposit
made out of band; at the end the gate's fills, fees and balances equal the simulator's ledger: no fill lost, none
counted twice, the deposit counted from the venue's push.
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

import numpy as np
import orjson
import pytest
import requests

from kairos import config
from kairos.execution import live_executor
from kairos.gate.snapshot import GateStateReader
from kairos.instruments import InstrumentTable
from kairos.records import MARKET_DATA, Action, ExecKind, Kind, OrderState, Tif, Venue

from .test_executors_sim import KEYS, _sim_env
from .test_gate import ROOT, GateProcess, intent, of

SYMBOL = {"binance": "BTCUSDT", "okx": "BTC-USDT", "bybit": "BTCUSDT"}
PRIVATE_PATH = {"binance": "/ws-api/v3", "okx": "/ws/v5/private", "bybit": "/v5/private"}


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[dict[str, int]]:
    """The simulator (random walk on) on ephemeral ports, accepting `KEYS`; yields its ports."""
    env = _sim_env(f"kairos-streamsim-{os.getpid()}", tmp_path / "simlog")
    proc = subprocess.Popen([sys.executable, "-m", "procs.sim", "--print-ports"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        line = proc.stdout.readline()                     # type: ignore[union-attr]
        assert line, f"sim exited {proc.poll()}"
        yield orjson.loads(line)
    finally:
        proc.terminate()
        proc.wait(20)


@dataclasses.dataclass
class Venue1:
    """The venue under test: its name and the simulator's ports."""

    name: str
    ports: dict[str, int]

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.ports[f'{self.name}_rest']}"

    @property
    def wire(self) -> Venue:
        return Venue[self.name.upper()]


@pytest.fixture(params=list(SYMBOL))
def venue(request: pytest.FixtureRequest, sim: dict[str, int]) -> Venue1:
    return Venue1(request.param, sim)


@pytest.fixture
def live(shm_prefix: str, tmp_path: Path, venue: Venue1) -> Iterator[GateProcess]:
    name = venue.name
    endpoints = (f"{{sim: {{rest_url: '{venue.rest}', ws_url: 'ws://127.0.0.1:9', "
                 f"private_url: 'ws://127.0.0.1:{venue.ports[f'{name}_private']}{PRIVATE_PATH[name]}'}}}}")
    key, secret, passphrase = KEYS[name]
    env = {f"venues__{other}__enabled": str(other == name).lower() for other in SYMBOL}
    env |= {f"venues__{name}__endpoints": endpoints, f"venues__{name}__api_key": key,
            f"venues__{name}__api_secret": secret}
    if passphrase:
        env[f"venues__{name}__passphrase"] = passphrase
    g = GateProcess(shm_prefix, tmp_path, execution__mode="live", execution__stream_watchdog_s="2",
                    execution__stream_backoff_max_s="0.5", **env)
    try:
        yield g
    finally:
        g.close()


def touch(venue: Venue1) -> tuple[float, float]:
    if venue.name == "binance":
        book = requests.get(f"{venue.rest}/api/v3/depth", params={"symbol": "BTCUSDT", "limit": 5}, timeout=5).json()
    elif venue.name == "okx":
        book = requests.get(f"{venue.rest}/api/v5/market/books", params={"instId": "BTC-USDT", "sz": 5},
                            timeout=5).json()["data"][0]
    else:
        result = requests.get(f"{venue.rest}/v5/market/orderbook", params={"category": "spot", "symbol": "BTCUSDT",
                              "limit": 5}, timeout=5).json()["result"]
        book = {"bids": result["b"], "asks": result["a"]}
    return float(book["bids"][0][0]), float(book["asks"][0][0])


def mark(g: GateProcess, venue: Venue1) -> None:
    rec = np.zeros(1, MARKET_DATA)
    rec["kind"], rec["instrument"], rec["venue"] = Kind.BBO, 1, venue.wire
    rec["price"], rec["price2"] = touch(venue)
    g.pub[f"md.{venue.name}"].publish(rec)


def on(venue: Venue1, rec: np.ndarray) -> np.ndarray:
    rec["venue"] = venue.wire
    return rec


def fault(venue: Venue1, kind: str, count: int = 1) -> None:
    resp = requests.post(f"{venue.rest}/_sim/private-fault", json={"kind": kind, "count": count, "delay_ms": 150},
                         timeout=5)
    assert resp.status_code == 200, resp.text


def steer(venue: Venue1, price: float | None) -> None:
    body = {"venue": venue.name, "symbol": SYMBOL[venue.name], "price": price}
    assert requests.post(f"{venue.rest}/_sim/mid", json=body, timeout=5).status_code == 200


def gate_state(g: GateProcess, until: Callable[[dict[str, Any]], bool], what: str,
               within_s: float = 30.0) -> dict[str, Any]:
    reader = GateStateReader(g.prefix)
    try:
        for _ in range(int(within_s / 0.02)):
            state = reader.read()
            if state is not None and until(state):
                return state
            time.sleep(0.02)
    finally:
        reader.close()
    raise AssertionError(f"gate state never showed {what}: {g.output()}")


def subscribed(venue: Venue1, times: int) -> Callable[[dict[str, Any]], bool]:
    return lambda s: (s["executors"][venue.name].get("stream_subscribed", 0) >= times
                      and bool(s["executors"][venue.name].get("stream_healthy")))


def ended(coid: str) -> Callable[[list], bool]:
    return lambda seen: any(e["client_order_id"] == coid.encode() and e["state"] in (OrderState.FILLED,
                            OrderState.CANCELED) and e["kind"] != ExecKind.STATE for e in seen)


def test_live_gate_with_private_stream_and_every_fault_matches_the_ledger(live: GateProcess, venue: Venue1) -> None:
    g = live
    bid, _ = touch(venue)
    mark(g, venue)
    g.start()
    gate_state(g, subscribed(venue, 1), "the private stream subscribed")
    prices = [round(bid * (0.998 - 0.0003 * i), 1) for i in range(3)]
    for i, price in enumerate(prices):
        mark(g, venue)
        g.pub["intents"].publish(on(venue, intent(f"e{i}", price=price, qty=0.05, tif=Tif.GTC)))
    g.wait(lambda seen: all(of(f"e{i}", ExecKind.ACK)(seen) for i in range(3)), "three ACKs")
    for kind in ("duplicate", "reorder", "delay"):
        fault(venue, kind, count=3)
    steer(venue, prices[0] * 0.9999)                       # e0 fills (in parts, events duplicated/reordered/late)
    g.wait(ended("e0"), "e0 filled")
    fault(venue, "drop")
    steer(venue, prices[1] * 0.9999)                       # e1 fills while the stream reconnects
    g.wait(ended("e1"), "e1 filled")
    gate_state(g, subscribed(venue, 2), "the stream back after the drop")
    deposit(g, venue, "USDT", "1234.5")
    if venue.name == "binance":
        fault(venue, "terminate")
        gate_state(g, subscribed(venue, 3), "the stream back after eventStreamTerminated")
    steer(venue, None)
    g.pub["manual"].publish(on(venue, intent("e2", action=Action.CANCEL)))
    g.wait(ended("e2"), "e2 cancelled")
    check_ledger(g, venue)
    fired = requests.get(f"{venue.rest}/_sim/private-stats", timeout=5).json()[venue.name]
    assert all(fired[k] > 0 for k in ("duplicated", "reordered", "delayed", "dropped")), fired


def test_a_deposit_pushed_while_the_stream_is_down_reaches_the_gate_when_it_is_back(live: GateProcess,
                                                                                   venue: Venue1) -> None:
    """The venue's push of a deposit made as the stream drops goes nowhere; the REST balances read on the
    resubscription (kairos/execution/reconcile.py) bring it, with no order moving the asset."""
    g = live
    mark(g, venue)
    g.start()
    gate_state(g, subscribed(venue, 1), "the private stream subscribed")
    fault(venue, "drop")                                   # aborts the connection before the deposit's push
    resp = requests.post(f"{venue.rest}/_sim/balance", json={"asset": "USDT", "delta": "1234.5"}, timeout=5)
    assert resp.status_code == 200, resp.text
    after = float(resp.json()["free"]) + float(resp.json()["locked"])
    gate_state(g, subscribed(venue, 2), "the stream back after the drop")
    state = gate_state(g, lambda s: gate_total(s, venue, "USDT") == pytest.approx(after, rel=1e-12),
                       "the deposit, from the balances read on the resubscription", 5.0)
    assert state["executors"][venue.name]["balances_pushed"] >= 2, state["executors"][venue.name]


def gate_total(state: dict[str, Any], venue: Venue1, asset: str) -> float:
    return next(b["free"] + b["locked"] for b in state["balances"] if b["venue"] == venue.name and b["asset"] == asset)


def deposit(g: GateProcess, venue: Venue1, asset: str, amount: str) -> None:
    """Out of band: the venue pushes the new balance and the gate shows it within a couple of seconds."""
    resp = requests.post(f"{venue.rest}/_sim/balance", json={"asset": asset, "delta": amount}, timeout=5)
    assert resp.status_code == 200, resp.text
    after = float(resp.json()["free"]) + float(resp.json()["locked"])
    gate_state(g, lambda s: gate_total(s, venue, asset) == pytest.approx(after, rel=1e-12), "the deposit", 3.0)


def check_ledger(g: GateProcess, venue: Venue1) -> None:
    settings = config.load(env=g.env)
    cfg = dataclasses.replace(settings.venues[venue.name], endpoint="sim")
    ex = live_executor(venue.name, dataclasses.replace(settings, venues={venue.name: cfg}),
                       InstrumentTable(settings.instruments))
    ex.start()
    try:
        for coid in ("e0", "e1", "e2"):
            view = ex._query_view(coid, SYMBOL[venue.name])
            fee = view.fee_cum if view.fee_cum is not None else view.cum_qty * cfg.maker_fee_bps / 1e4
            fills = [e for e in g.seen if e["client_order_id"] == coid.encode() and e["kind"] == ExecKind.FILL]
            assert sum(float(e["qty"]) for e in fills) == pytest.approx(view.cum_qty, abs=1e-12), coid
            assert sum(float(e["fee"]) for e in fills) == pytest.approx(fee, rel=1e-9, abs=1e-15), coid
        venue_balances = ex.snapshot().balances
    finally:
        ex.close()
    state = gate_state(g, lambda s: not s["orders"], "no open orders")
    gate_balances = {b["asset"]: b["free"] + b["locked"] for b in state["balances"] if b["venue"] == venue.name}
    for asset in ("BTC", "USDT"):
        assert gate_balances[asset] == pytest.approx(sum(venue_balances[asset]), rel=1e-12), asset
    stats = state["executors"][venue.name]
    assert stats["stream_bad_frames"] == 0 and stats["stream_fills"] > 0
    pushes = state["balance_pushes"][venue.name]                  # the deposit (at least) set a balance
    assert pushes["applied"] > 0 and pushes["bad"] == 0, pushes
    row = next(r for r in g.board.snapshot() if r.role == "gate")  # the totals on the row kairosctl status reads
    assert row.counters["push.applied"] >= pushes["applied"], row.counters  # as new, or newer
