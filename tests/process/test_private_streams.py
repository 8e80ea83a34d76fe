"""Private order streams against the real simulator (``procs.sim`` child): fills reach the executor over the
stream, REST reconciliation is sparse while it is healthy, and every fault (dropped connection, duplicated,
reordered and delayed events, Binance's eventStreamTerminated) ends with the executor's orders, fills, fees
and balances equal to the simulator's ledger: no fill lost, none counted twice.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from kairos.config import EndpointConfig
from kairos.execution import EXECUTORS, STREAMS, ExecReport
from kairos.execution.rest import RestExecution
from kairos.instruments import InstrumentTable
from kairos.ratelimit.budget import RateDeferred
from kairos.records import ExecKind, OrderState, Side
from tests.process.test_executors_sim import VENUES, Sim, collect, ended, of, order, sim, symbol, touch

__all__ = ["sim"]
FAULTS = ("drop", "duplicate", "reorder", "delay", "terminate")
VENUE_FAULTS = [(name, kind) for name in STREAMS for kind in FAULTS
                if kind != "terminate" or name == "binance"]  # eventStreamTerminated is Binance's


def private_stats(sim: Sim, name: str) -> dict[str, Any]:
    return requests.get(f"{sim.urls[VENUES[name]]}/_sim/private-stats", timeout=5).json()[name]


def streamed(sim: Sim, name: str, private_url: str = "", **exec_changes: Any) -> RestExecution:
    """A started executor with its private stream, pointed at this simulator (or at ``private_url``)."""
    stats = private_stats(sim, name)
    private_url = private_url or f"ws://127.0.0.1:{stats['port']}{stats['path']}"
    endpoint = EndpointConfig(sim.urls[VENUES[name]], "", private_url)
    venue_cfg = dataclasses.replace(sim.settings.venues[name], endpoints={"sim": endpoint})
    exec_cfg = dataclasses.replace(sim.settings.execution, **({"stream_watchdog_s": 2.0} | exec_changes))
    ex = EXECUTORS[name](venue_cfg, exec_cfg, InstrumentTable(sim.settings.instruments), stream=STREAMS[name])
    sim.executors.append(ex)
    ex.start()
    if private_url.endswith(stats["path"]):
        wait_for(lambda: ex.stream is not None and ex.stream.healthy, "stream subscribed")
    return ex


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if condition():
            return
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for: {what}")


def fault(sim: Sim, name: str, kind: str, **extra: Any) -> None:
    resp = requests.post(f"{sim.urls[VENUES[name]]}/_sim/private-fault", json={"kind": kind} | extra, timeout=5)
    assert resp.status_code == 200, resp.text


def venue_order(sim: Sim, name: str, ex: RestExecution, coid: str) -> tuple[float, float, OrderState]:
    """(filled qty, cumulative fee, state) of one order as the simulator's signed REST tells it."""
    view = ex._query_view(coid, symbol(name))
    assert view is not None, coid
    if view.fee_cum is None:  # Binance GET order has no commission: maker fills pay maker_fee_bps of the qty
        return view.cum_qty, view.cum_qty * sim.settings.venues[name].maker_fee_bps / 1e4, view.state
    return view.cum_qty, view.fee_cum, view.state


@pytest.mark.parametrize("name", STREAMS)
def test_a_fill_arrives_over_the_stream_and_rest_stays_quiet(sim: Sim, name: str) -> None:
    ex = streamed(sim, name, sync_interval_ms=60_000)       # polling alone would not see it within the test
    bid, _ = touch(sim, name)
    price = ex.filters(1).round_price(bid * 0.999, Side.BUY)
    ex.submit(order(sim, name, "s1", Side.BUY, price, 0.01))
    collect(ex, lambda rs: (ExecKind.ACK, OrderState.ACK) in of(rs, "s1"))
    sim.steer(name, price * 0.9995)
    reports = collect(ex, ended("s1"), timeout_s=20)
    fills = [r for r in reports if r.kind is ExecKind.FILL]
    assert sum(r.last_qty for r in fills) == pytest.approx(0.01) and fills[-1].state is OrderState.FILLED
    assert all(r.fee > 0 and r.fee_asset == "BTC" for r in fills)
    stats = ex.stats()
    assert stats["stream_healthy"] and stats["stream_fills"] >= len(fills) and stats["stream_bad_frames"] == 0
    venue_btc = ex.snapshot().balances["BTC"]
    wait_for(lambda: ex.stream_sink.balances().get("BTC") == pytest.approx(venue_btc), "stream balance = venue's")


@pytest.mark.parametrize("name", STREAMS)
def test_resting_orders_with_a_healthy_stream_are_reconciled_every_reconcile_s(sim: Sim, name: str) -> None:
    ex = streamed(sim, name, reconcile_s=1.0)                   # the fixture polls every 20 ms without a stream
    bid, _ = touch(sim, name)
    for i in range(2):
        ex.submit(order(sim, name, f"r{i}", Side.BUY, ex.filters(1).round_price(bid * (0.99 - 0.001 * i), Side.BUY),
                        0.01))
    collect(ex, lambda rs: all(of(rs, f"r{i}") for i in range(2)))
    start, before = time.monotonic(), ex.stats().get("syncs", 0)
    for _ in range(150):                                       # 3 s of duty cycles
        ex.drain()
        time.sleep(0.02)
    elapsed_s = time.monotonic() - start
    assert ex.stats().get("syncs", 0) - before <= elapsed_s / 1.0 + 1
    assert ex.stream.healthy


@pytest.mark.parametrize("name", STREAMS)
def test_fills_are_polled_while_the_stream_cannot_connect(sim: Sim, name: str) -> None:
    ex = streamed(sim, name, private_url="ws://127.0.0.1:9/nothing-listens", stream_backoff_max_s=0.2)
    bid, _ = touch(sim, name)
    price = ex.filters(1).round_price(bid * 0.999, Side.BUY)
    ex.submit(order(sim, name, "p1", Side.BUY, price, 0.01))
    collect(ex, lambda rs: bool(of(rs, "p1")))
    sim.steer(name, price * 0.9995)
    reports = collect(ex, ended("p1"), timeout_s=20)
    assert of(reports, "p1")[-1] == (ExecKind.FILL, OrderState.FILLED)
    assert not ex.stream.healthy and ex.stream.counts["connects"] >= 1 and ex.stats()["syncs"] >= 1


@pytest.mark.parametrize("name", STREAMS)
def test_a_dropped_stream_reconnects_and_resubscribes(sim: Sim, name: str) -> None:
    ex = streamed(sim, name, stream_backoff_max_s=0.5)
    assert ex._sync_period_ns() == int(ex._cfg.reconcile_s * 1e9)
    connects = ex.stream.counts["subscribed"]
    fault(sim, name, "drop")
    wait_for(lambda: ex.stream.counts["disconnects"] >= 1, "stream saw the drop")
    wait_for(lambda: ex.stream.healthy and ex.stream.counts["subscribed"] > connects, "stream back")
    assert ex.stream.counts["connects"] >= 2


@pytest.mark.parametrize(("name", "kind"), VENUE_FAULTS)
def test_every_fill_once_with_faults_matches_the_ledger(sim: Sim, name: str, kind: str) -> None:
    ex = streamed(sim, name, stream_backoff_max_s=0.5)
    bid, _ = touch(sim, name)
    rules = ex.filters(1)
    prices = [rules.round_price(bid * (0.999 - 0.0002 * i), Side.BUY) for i in range(3)]
    for i, price in enumerate(prices):
        ex.submit(order(sim, name, f"f{i}", Side.BUY, price, 0.2))
    reports = collect(ex, lambda rs: all((ExecKind.ACK, OrderState.ACK) in of(rs, f"f{i}") for i in range(3)))
    fault(sim, name, kind, count=6, delay_ms=150)
    sim.steer(name, prices[1] * 0.9999)                          # f0 and f1 fill (in parts), f2 rests
    reports += collect(ex, lambda rs: ended("f0")(rs) and ended("f1")(rs), timeout_s=30)
    ex.cancel("f2", 1, symbol(name))
    reports += collect(ex, ended("f2"), timeout_s=15)
    sim.steer(name, None)
    check_ledger(sim, name, ex, reports)
    fired = {"drop": "dropped", "duplicate": "duplicated", "reorder": "reordered", "delay": "delayed",
             "terminate": "terminated"}[kind]
    assert private_stats(sim, name)[fired] > 0
    if kind in ("drop", "terminate"):
        assert ex.stream.counts["subscribed"] >= 2


def check_ledger(sim: Sim, name: str, ex: RestExecution, reports: list[ExecReport]) -> None:
    for coid in ("f0", "f1", "f2"):
        fills = [r for r in reports if r.client_order_id == coid and r.kind is ExecKind.FILL]
        filled, fee, state = venue_order(sim, name, ex, coid)
        assert sum(r.last_qty for r in fills) == pytest.approx(filled, abs=1e-12), coid
        assert sum(r.fee for r in fills) == pytest.approx(fee, rel=1e-9, abs=1e-15), coid
        assert of(reports, coid)[-1][1] is state is (OrderState.FILLED if coid != "f2" else OrderState.CANCELED)
    wait_for(lambda: ex.stream.healthy, "stream healthy at the end")
    venue = venue_balances(ex)
    wait_for(lambda: all(ex.stream_sink.balances().get(a) == pytest.approx(venue[a]) for a in ("BTC", "USDT")),
             "stream balances equal the venue's")


def test_binance_fills_found_by_rest_carry_their_own_commission(sim: Sim) -> None:
    """No stream: polled fills are completed by myTrades, so the fee is the venue's, not the configured estimate."""
    ex = sim.executor("binance", maker_fee_bps=2.0)                   # the simulator charges its own 10 bps
    bid, _ = touch(sim, "binance")
    price = ex.filters(1).round_price(bid * 0.999, Side.BUY)
    ex.submit(order(sim, "binance", "m1", Side.BUY, price, 0.2))
    collect(ex, lambda rs: bool(of(rs, "m1")))
    sim.steer("binance", price * 0.9995)
    fills = [r for r in collect(ex, ended("m1"), timeout_s=20) if r.kind is ExecKind.FILL]
    filled = sum(r.last_qty for r in fills)
    venue_fee = sim.settings.venues["binance"].maker_fee_bps / 1e4
    assert filled == pytest.approx(0.2) and sum(r.fee for r in fills) == pytest.approx(filled * venue_fee, rel=1e-9)
    assert ex.stats()["trades_fetched"] >= 1


def venue_balances(ex: RestExecution, timeout_s: float = 10.0) -> dict[str, tuple[float, float]]:
    """The venue's balances by REST; a snapshot the shared budget defers (nothing sent: after a fault's reconnect
    storm the reconciliations may have spent the window) is asked again once the window has room, as the gate does."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return ex.snapshot().balances
        except RateDeferred as exc:
            if time.monotonic() > deadline:
                raise
            time.sleep(min(max(exc.wait_s, 0.05), 1.0))
