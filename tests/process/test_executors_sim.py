"""Signed REST executors against the simulator over real HTTP: place, fill, partial, cancel, rejects, snapshot.

The simulator is the real one: ``python -m procs.sim`` in a child process on ephemeral ports, its
book walking at ``sim.rate_hz``; tests steer it through ``POST /_sim/mid`` and arm faults through
``POST /_sim/trading-fault``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from kairos import config
from kairos.config import EndpointConfig, Secret, Settings
from kairos.execution import EXECUTORS, ExecReport, OrderRequest
from kairos.execution.rest import RestExecution
from kairos.instruments import InstrumentTable
from kairos.records import ExecKind, OrderState, OrderType, RejectReason, Side, Tif, Venue
from kairos.sim.local import EPHEMERAL_ENV, sim_process
from kairos.sim.market import build_specs

ROOT = Path(__file__).resolve().parents[2]
VENUES = {"binance": Venue.BINANCE, "okx": Venue.OKX, "bybit": Venue.BYBIT}
KEYS = {"binance": ("bin-key", "bin-secret", ""), "okx": ("okx-key", "okx-secret", "okx-pass"),
        "bybit": ("byb-key", "byb-secret", "")}
TERMINAL = (OrderState.FILLED, OrderState.CANCELED, OrderState.REJECTED, OrderState.EXPIRED)


@dataclass
class Sim:
    settings: Settings
    urls: dict[Venue, str]
    executors: list[RestExecution]

    def executor(self, name: str, **venue_changes: object) -> RestExecution:
        """A started executor for ``name`` pointed at this simulator."""
        cfg = dataclasses.replace(self.settings.venues[name], **venue_changes)
        ex = EXECUTORS[name](cfg, self.settings.execution, InstrumentTable(self.settings.instruments))
        self.executors.append(ex)
        ex.start()
        return ex

    def arm(self, venue: Venue, **fault: object) -> None:
        resp = requests.post(f"{self.urls[venue]}/_sim/trading-fault", json=fault, timeout=5)
        assert resp.status_code == 200, resp.text

    def steer(self, name: str, price: float | None) -> None:
        body = {"venue": name, "symbol": symbol(name), "price": price}
        assert requests.post(f"{self.urls[VENUES[name]]}/_sim/mid", json=body, timeout=5).status_code == 200


def symbol(name: str) -> str:
    return {"binance": "BTCUSDT", "okx": "BTC-USDT", "bybit": "BTCUSDT"}[name]


def _settings(urls: dict[str, str]) -> Settings:
    base = config.load(env={})
    venues = {}
    for name, (key, secret, passphrase) in KEYS.items():
        venues[name] = dataclasses.replace(
            base.venues[name], endpoint="sim", endpoints={"sim": EndpointConfig(urls.get(name, ""), "")},
            api_key=Secret(key), api_secret=Secret(secret), passphrase=Secret(passphrase), recv_window_ms=600)
    execution = dataclasses.replace(base.execution, mode="live", sync_interval_ms=20, http_timeout_s=1.0,
                                    max_retries=2, max_cancel_delay_s=5.0, workers=3)
    return dataclasses.replace(base, venues=venues, execution=execution)


def _sim_env(prefix: str, log_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAIROS__")}
    env |= {"KAIROS__SHM_PREFIX": prefix, "KAIROS__LOGGING__DIR": str(log_dir), "KAIROS__LOGGING__JSON_FILES": "false",
            "PYTHONPATH": str(ROOT)}
    env |= EPHEMERAL_ENV
    for name, (key, secret, passphrase) in KEYS.items():
        env |= {f"KAIROS__VENUES__{name.upper()}__API_KEY": key, f"KAIROS__VENUES__{name.upper()}__API_SECRET": secret}
        if passphrase:
            env[f"KAIROS__VENUES__{name.upper()}__PASSPHRASE"] = passphrase
    return env


@pytest.fixture
def sim(shm_prefix: str, tmp_path: Path) -> Iterator[Sim]:
    with running_sim(shm_prefix, tmp_path) as running:
        yield running


@contextmanager
def running_sim(shm_prefix: str, tmp_path: Path, env: dict[str, str] | None = None) -> Iterator[Sim]:
    """``procs.sim`` on ephemeral ports (``env``: extra KAIROS__ settings for it), stopped on exit."""
    executors: list[RestExecution] = []
    with sim_process(_sim_env(shm_prefix, tmp_path) | (env or {}), tmp_path / "sim.stderr") as ports:
        urls = {name: f"http://127.0.0.1:{ports[f'{name}_rest']}" for name in VENUES}
        try:
            yield Sim(_settings(urls), {VENUES[n]: u for n, u in urls.items()}, executors)
        finally:
            for ex in executors:
                ex.close()


def collect(ex: RestExecution, done: Callable[[list[ExecReport]], bool], timeout_s: float = 8.0,
            poke: Callable[[], None] | None = None) -> list[ExecReport]:
    """Drain until ``done(reports)``; bounded by rounds and time, fails with what arrived."""
    reports: list[ExecReport] = []
    deadline = time.monotonic() + timeout_s
    for _ in range(2000):
        reports += ex.drain()
        if done(reports):
            return reports
        if time.monotonic() > deadline:
            break
        if poke is not None:
            poke()
        time.sleep(0.01)
    seen = [(r.client_order_id, r.kind.name, r.state.name, r.venue_code, r.message) for r in reports]
    pytest.fail(f"condition not met; reports: {seen}")


def ended(coid: str) -> Callable[[list[ExecReport]], bool]:
    return lambda reports: any(r.client_order_id == coid and r.state in TERMINAL and r.kind is not ExecKind.STATE
                               for r in reports)


def of(reports: list[ExecReport], coid: str) -> list[tuple[ExecKind, OrderState]]:
    return [(r.kind, r.state) for r in reports if r.client_order_id == coid]


def order(sim: Sim, name: str, coid: str, side: Side, price: float, qty: float, order_type: OrderType = OrderType.LIMIT,
          tif: Tif = Tif.GTC) -> OrderRequest:
    inst = InstrumentTable(sim.settings.instruments).by_id(1)
    return OrderRequest(coid, 1, inst.venue_symbols[VENUES[name]], side, order_type, tif, price, qty, time.time_ns())


def touch(sim: Sim, name: str) -> tuple[float, float]:
    """(best bid, best ask) from the venue's public REST book."""
    url = sim.urls[VENUES[name]]
    if name == "binance":
        book = requests.get(f"{url}/api/v3/depth", params={"symbol": symbol(name), "limit": 5}, timeout=5).json()
    elif name == "okx":
        book = requests.get(f"{url}/api/v5/market/books", params={"instId": symbol(name), "sz": 5},
                            timeout=5).json()["data"][0]
    else:
        result = requests.get(f"{url}/v5/market/orderbook", params={"category": "spot", "symbol": symbol(name),
                                                                   "limit": 5}, timeout=5).json()["result"]
        book = {"bids": result["b"], "asks": result["a"]}
    return float(book["bids"][0][0]), float(book["asks"][0][0])


@pytest.mark.parametrize("name", VENUES)
def test_start_syncs_clock_and_loads_venue_filters(sim: Sim, name: str) -> None:
    ex = sim.executor(name)
    [spec] = [s for s, _ in build_specs(sim.settings.instruments, sim.settings.sim)
              if (s.venue, s.symbol) == (VENUES[name], symbol(name))]
    rules = ex.filters(1)
    min_qty = 0 if name == "bybit" else spec.min_qty  # Bybit's minOrderQty is deprecated: its minimum is the value
    assert (rules.tick, rules.step, rules.min_qty_d) == (spec.tick, spec.lot, min_qty)
    assert abs(ex.clock.offset_ms) < 1000 and ex.clock.synced_ns > 0


@pytest.mark.parametrize("name", VENUES)
def test_ioc_order_fills_and_moves_balances(sim: Sim, name: str) -> None:
    ex = sim.executor(name)
    before = ex.snapshot().balances
    _, ask = touch(sim, name)
    ex.submit(order(sim, name, "ioc1", Side.BUY, ask * 1.0005, 0.002, tif=Tif.IOC))
    reports = collect(ex, ended("ioc1"))
    kinds = of(reports, "ioc1")
    assert kinds[0] == (ExecKind.ACK, OrderState.ACK) and kinds[-1][1] in (OrderState.FILLED, OrderState.EXPIRED)
    fills = [r for r in reports if r.kind is ExecKind.FILL]
    filled = sum(r.last_qty for r in fills)
    assert filled > 0 and all(r.fee > 0 and r.fee_asset == "BTC" and r.ts_sent_ns > 0 for r in fills)
    after = ex.snapshot().balances
    assert after["BTC"][0] == pytest.approx(before["BTC"][0] + filled - sum(r.fee for r in fills), abs=1e-9)
    state = ex.query("ioc1", symbol(name))
    assert (state.kind, state.state, state.cum_qty) == (ExecKind.STATE, kinds[-1][1], pytest.approx(filled))
    assert state.last_px == pytest.approx(sum(r.last_px * r.last_qty for r in fills) / filled)
    assert state.fee == pytest.approx(sum(r.fee for r in fills)) and state.ts_sent_ns == fills[0].ts_sent_ns
    spent = sum(r.last_px * r.last_qty for r in fills)
    assert after["USDT"][0] == pytest.approx(before["USDT"][0] - spent, rel=1e-9)


@pytest.mark.parametrize("name", VENUES)
def test_resting_order_fills_in_parts_when_the_book_crosses_it(sim: Sim, name: str) -> None:
    ex = sim.executor(name)
    bid, _ = touch(sim, name)
    price = ex.filters(1).round_price(bid * 0.999, Side.BUY)
    ex.submit(order(sim, name, "rest1", Side.BUY, price, 0.3))
    collect(ex, lambda rs: (ExecKind.ACK, OrderState.ACK) in of(rs, "rest1"))
    assert ex.snapshot().balances["USDT"][1] == pytest.approx(price * 0.3)      # quote locked while resting
    sim.steer(name, price * 0.9995)
    reports = collect(ex, ended("rest1"), timeout_s=20)
    fills = [r for r in reports if r.client_order_id == "rest1" and r.kind is ExecKind.FILL]
    assert len(fills) >= 2 and fills[0].state is OrderState.PARTIAL and fills[-1].state is OrderState.FILLED
    assert sum(r.last_qty for r in fills) == pytest.approx(0.3) and fills[-1].cum_qty == pytest.approx(0.3)
    assert all(r.last_px == pytest.approx(price) for r in fills)                 # maker fills at its own price


@pytest.mark.parametrize("name", VENUES)
def test_cancel_releases_the_locked_balance(sim: Sim, name: str) -> None:
    ex = sim.executor(name)
    bid, _ = touch(sim, name)
    ex.submit(order(sim, name, "gtc1", Side.BUY, bid * 0.99, 0.01))
    collect(ex, lambda rs: bool(of(rs, "gtc1")))
    assert ex.snapshot().balances["USDT"][1] > 0
    ex.cancel("gtc1", 1, symbol(name))
    reports = collect(ex, ended("gtc1"))
    assert of(reports, "gtc1")[-1] == (ExecKind.CANCELED, OrderState.CANCELED)
    assert ex.snapshot().balances["USDT"][1] == 0


@pytest.mark.parametrize(("name", "code"), [("binance", "-2010"), ("okx", "51008"), ("bybit", "170131")])
def test_insufficient_balance_is_a_venue_reject(sim: Sim, name: str, code: str) -> None:
    ex = sim.executor(name)
    bid, _ = touch(sim, name)
    ex.submit(order(sim, name, "big1", Side.BUY, bid * 0.99, 50.0))
    report = collect(ex, ended("big1"))[-1]
    assert (report.kind, report.reason, report.venue_code) == (ExecKind.REJECT, RejectReason.VENUE_INSUFFICIENT_BALANCE,
                                                              code)
    assert "nsufficient" in report.message


@pytest.mark.parametrize(("name", "code"), [("binance", "-1013"), ("okx", "51121"), ("bybit", "170137")])
def test_venue_filter_failure_over_http(sim: Sim, name: str, code: str) -> None:
    ex = sim.executor(name)
    bid, _ = touch(sim, name)
    req = order(sim, name, "raw1", Side.BUY, bid * 0.99, 0.01)
    price = str(ex.filters(1).quantize_price(req.price, Side.BUY))
    reply = ex._send(ex.place_call, req, price, "0.0100001")                    # bypasses local rounding
    assert (reply.code, reply.reason) == (code, RejectReason.VENUE_FILTER)


@pytest.mark.parametrize("name", VENUES)
def test_local_filter_rejects_without_a_request(sim: Sim, name: str) -> None:
    ex = sim.executor(name)
    ex.submit(order(sim, name, "tiny1", Side.BUY, 100.0, 0.00000001))
    report = collect(ex, ended("tiny1"))[-1]
    assert (report.reason, report.venue_code, report.message) == (RejectReason.VENUE_FILTER, "LOCAL",
                                                                  "Filter failure: LOT_SIZE")


@pytest.mark.parametrize(("name", "expected"), [("binance", (ExecKind.REJECT, OrderState.REJECTED)),
                                                ("okx", (ExecKind.CANCELED, OrderState.CANCELED)),
                                                ("bybit", (ExecKind.CANCELED, OrderState.CANCELED))])
def test_post_only_that_would_take(sim: Sim, name: str, expected: tuple[ExecKind, OrderState]) -> None:
    ex = sim.executor(name)
    _, ask = touch(sim, name)
    ex.submit(order(sim, name, "mk1", Side.BUY, ask * 1.001, 0.01, OrderType.LIMIT_MAKER))
    reports = collect(ex, ended("mk1"))
    assert of(reports, "mk1")[-1] == expected
    if name == "binance":
        assert reports[-1].message == "Order would immediately match and take."


@pytest.mark.parametrize(("name", "change", "code"), [
    ("binance", {"api_secret": Secret("wrong")}, "-1022"), ("binance", {"api_key": Secret("nobody")}, "-2015"),
    ("okx", {"api_secret": Secret("wrong")}, "50113"), ("okx", {"api_key": Secret("nobody")}, "50111"),
    ("bybit", {"api_secret": Secret("wrong")}, "10004"), ("bybit", {"api_key": Secret("nobody")}, "10003"),
])
def test_bad_credentials_are_venue_auth_rejects(sim: Sim, name: str, change: dict, code: str) -> None:
    ex = sim.executor(name, **change)
    bid, _ = touch(sim, name)
    ex.submit(order(sim, name, "auth1", Side.BUY, bid * 0.99, 0.01))
    report = collect(ex, ended("auth1"))[-1]
    assert (report.kind, report.reason, report.venue_code) == (ExecKind.REJECT, RejectReason.VENUE_AUTH, code)


@pytest.mark.parametrize("name", VENUES)
def test_cancel_of_an_unknown_order_is_a_cancel_reject(sim: Sim, name: str) -> None:
    ex = sim.executor(name)
    ex.cancel("never-placed", 1, symbol(name))
    ex.submit(order(sim, name, "x1", Side.BUY, touch(sim, name)[0] * 0.99, 0.01))   # proves the executor carries on
    reports = collect(ex, lambda rs: any(r.kind is ExecKind.CANCEL_REJECT for r in rs) and bool(of(rs, "x1")))
    reject = next(r for r in reports if r.kind is ExecKind.CANCEL_REJECT)
    assert reject.client_order_id == "never-placed" and reject.reason is RejectReason.UNKNOWN_ORDER


@pytest.mark.parametrize("name", VENUES)
def test_snapshot_after_restart_lists_and_adopts_open_orders(sim: Sim, name: str) -> None:
    first = sim.executor(name)
    bid, _ = touch(sim, name)
    price = first.filters(1).round_price(bid * 0.999, Side.BUY)
    first.submit(order(sim, name, "keep1", Side.BUY, price, 0.01))
    collect(first, lambda rs: bool(of(rs, "keep1")))
    first.close()
    second = sim.executor(name)                                                  # "the gate restarted"
    snap = second.snapshot()
    [open_order] = [o for o in snap.open_orders if o.client_order_id == "keep1"]
    assert (open_order.state, open_order.instrument, open_order.side) == (OrderState.ACK, 1, Side.BUY)
    assert open_order.price == pytest.approx(price) and open_order.qty == pytest.approx(0.01)
    assert snap.balances["USDT"][1] == pytest.approx(price * 0.01)
    sim.steer(name, price * 0.9995)
    reports = collect(second, ended("keep1"), timeout_s=20)
    assert of(reports, "keep1")[-1] == (ExecKind.FILL, OrderState.FILLED)


def test_sim_rejects_a_stale_binance_timestamp(sim: Sim) -> None:
    ex = sim.executor("binance")
    ex.clock.offset_ms = -10_000                                                 # our clock is 10 s behind
    ex.submit(order(sim, "binance", "late1", Side.BUY, touch(sim, "binance")[0] * 0.99, 0.01))
    report = collect(ex, ended("late1"))[-1]
    assert (report.reason, report.venue_code) == (RejectReason.VENUE_AUTH, "-1021")
    collect(ex, lambda rs: abs(ex.clock.offset_ms) < 1000)                       # -1021 triggers a resync
    ex.submit(order(sim, "binance", "late2", Side.BUY, touch(sim, "binance")[0] * 0.99, 0.01))
    assert of(collect(ex, lambda rs: bool(of(rs, "late2"))), "late2")[0] == (ExecKind.ACK, OrderState.ACK)


def test_sim_rejects_a_skewed_okx_timestamp(sim: Sim) -> None:
    ex = sim.executor("okx")
    ex.clock.offset_ms = 40_000
    ex.submit(order(sim, "okx", "skew1", Side.BUY, touch(sim, "okx")[0] * 0.99, 0.01))
    report = collect(ex, ended("skew1"))[-1]
    assert (report.reason, report.venue_code) == (RejectReason.VENUE_AUTH, "50102")
    collect(ex, lambda rs: abs(ex.clock.offset_ms) < 1000)
