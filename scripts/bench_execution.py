"""Execution adapter costs: request signing/building, and submit -> ACK through the real simulator.

``python -m scripts.bench execution [--json] [--quick]``. Same-run baselines:

- build: ``binance_place_call`` (percent-encode + HMAC hex) against a bare ``hmac.new(...).hexdigest()``
  of the docs payload; ``okx_place_call`` (orjson body + ISO timestamp + HMAC base64) against a bare
  base64 HMAC; ``quantize`` (Decimal-exact tick/lot rounding of one price and one qty).
- round trip (localhost HTTP; the whole simulator, `SimServer` with its book walking, in this process):
  ``executor`` = ``submit()`` (non-blocking hand-off to a worker thread) until the ACK comes out of
  ``drain()``; ``baseline`` = the same signed
  request sent synchronously with one keep-alive ``requests.Session`` (no thread hop, no parsing).
  Orders are IOC far from the touch, so they expire at once and the book is untouched.
- ``handoff``: ``ts_sent_ns - ts_origin_ns`` (gate thread -> HTTP worker about to send).

Per-op costs in ns; latencies in microseconds; ratios are ours / baseline (the adapter's overhead).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import functools
import hashlib
import hmac
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import posix_ipc
import requests

from kairos import config
from kairos.config import EndpointConfig, Secret, Settings
from kairos.execution import EXECUTORS, OrderRequest
from kairos.execution.base import ExecReport
from kairos.execution.rest import RestExecution
from kairos.gate.agent import INFLIGHT_SLEEP_S
from kairos.instruments import InstrumentTable
from kairos.records import ExecKind, OrderType, Side, Tif, Venue
from kairos.sim.local import ephemeral
from kairos.sim.market import SimMarket
from kairos.sim.server import SimServer

VENUES = {"binance": Venue.BINANCE, "okx": Venue.OKX}
PACE_S = 0.04  # one order per 40 ms: 25/s, under OKX's 30/s place limit (60 per 2 s per endpoint, 50011 beyond)
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
PAYLOAD = ("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000"
           "&timestamp=1499827319559")


def per_op_ns(fn: Callable[[], Any], ops: int) -> float:
    """Median over 5 batches of ``ops`` calls, in ns per call."""
    batches = []
    for _ in range(5):
        start = time.perf_counter_ns()
        for _ in range(ops):
            fn()
        batches.append((time.perf_counter_ns() - start) / ops)
    return float(np.median(batches))


def pct_us(samples: list[int]) -> dict[str, float]:
    a = np.asarray(samples, dtype=np.float64) / 1000.0
    return {"n": int(a.size), "p50_us": round(float(np.percentile(a, 50)), 1),
            "p99_us": round(float(np.percentile(a, 99)), 1), "max_us": round(float(a.max()), 1)}


def _settings(urls: dict[str, str]) -> Settings:
    base = config.load(env={})
    venues = {name: dataclasses.replace(base.venues[name], endpoints={"sim": EndpointConfig(urls.get(name, ""), "")},
                                        endpoint="sim", api_key=Secret("k"), api_secret=Secret("s"),
                                        passphrase=Secret("p")) for name in VENUES}
    return dataclasses.replace(base, venues=venues, sim=ephemeral(base.sim),
                               execution=dataclasses.replace(base.execution, mode="live"))


def build_costs(ex: dict[str, RestExecution], ops: int) -> list[dict[str, Any]]:
    req = OrderRequest("bench1", 1, "BTCUSDT", Side.BUY, OrderType.LIMIT, Tif.GTC, 60000.0, 0.01, 0)
    okx_req = dataclasses.replace(req, symbol="BTC-USDT")
    key, msg = SECRET.encode(), PAYLOAD.encode()
    rules = ex["binance"].filters(1)
    costs = {
        "hmac_hex_baseline": per_op_ns(lambda: hmac.new(key, msg, hashlib.sha256).hexdigest(), ops),
        "binance_place_call": per_op_ns(lambda: ex["binance"].place_call(req, "60000", "0.01"), ops),
        "hmac_b64_baseline": per_op_ns(lambda: base64.b64encode(hmac.new(key, msg, hashlib.sha256).digest()), ops),
        "okx_place_call": per_op_ns(lambda: ex["okx"].place_call(okx_req, "60000.1", "0.01"), ops),
        "quantize": per_op_ns(lambda: (rules.quantize_price(60000.123, Side.BUY), rules.quantize_qty(0.0123456)), ops),
    }
    return [{"op": name, "ns_per_op": round(value)} for name, value in costs.items()]


def round_trips(ex: RestExecution, market: SimMarket, name: str, n: int) -> dict[str, Any]:
    venue = VENUES[name]
    symbol = market.symbols(venue)[0]
    session = requests.Session()
    session.headers.update(ex.session_headers())
    ours, base, handoff = [], [], []
    for i in range(n):
        bid = float(market.best(venue, symbol)[0].price)
        price = ex.filters(1).round_price(bid * 0.9, Side.BUY)
        req = OrderRequest(f"b{i}x{time.time_ns() % 10**9}", 1, symbol, Side.BUY, OrderType.LIMIT, Tif.IOC,
                           price, 0.001, time.time_ns())
        start = time.perf_counter_ns()
        ex.submit(req)
        ack = drain_until(ex, req.client_order_id)
        ours.append(time.perf_counter_ns() - start)
        handoff.append(ack.ts_sent_ns - req.ts_origin_ns)
        time.sleep(PACE_S)
        call = ex.place_call(dataclasses.replace(req, client_order_id=f"{req.client_order_id}s"),
                             str(ex.filters(1).quantize_price(price)), "0.001")
        start = time.perf_counter_ns()
        session.request(call.method, ex._base_url + call.path, data=call.body.encode() or None, headers=call.headers,
                        timeout=5).raise_for_status()
        base.append(time.perf_counter_ns() - start)
        time.sleep(PACE_S)
    session.close()
    return {"venue": name, "ours": pct_us(ours), "baseline": pct_us(base), "handoff": pct_us(handoff)}


def drain_until(ex: RestExecution, coid: str, kind: ExecKind = ExecKind.ACK, timeout_s: float = 5.0) -> ExecReport:
    """``drain()`` as the gate's duty cycle calls it while an order is in flight: asleep on a doorbell that the
    executor rings with each report (``Executor.wake``), at most ``INFLIGHT_SLEEP_S``; the report once seen."""
    bell = _gate_bell()
    ex.wake = bell.release
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for report in ex.drain():
            if report.client_order_id == coid and report.kind is kind:
                return report
            if report.client_order_id == coid and report.kind is ExecKind.REJECT:
                raise RuntimeError(f"{coid} rejected: {report.reason.name} {report.venue_code} {report.message}")
        with contextlib.suppress(posix_ipc.BusyError):
            bell.acquire(INFLIGHT_SLEEP_S)
    raise RuntimeError(f"no {kind.name} for {coid} within {timeout_s} s")


@functools.cache
def _gate_bell() -> posix_ipc.Semaphore:
    """One doorbell that every executor of this process rings, as the gate's: a POSIX semaphore, unlinked at once."""
    bell = posix_ipc.Semaphore(None, posix_ipc.O_CREX)
    bell.unlink()
    return bell


@contextlib.contextmanager
def running_sim() -> Iterator[tuple[SimMarket, dict[str, RestExecution]]]:
    """The simulator's market + REST side on ephemeral ports, and a started executor per venue."""
    server = SimServer(_settings({}))
    executors: dict[str, RestExecution] = {}
    try:
        server.start()
        settings = _settings({name: server.urls(venue).rest_url for name, venue in VENUES.items()})
        for name in VENUES:
            executors[name] = EXECUTORS[name](settings.venues[name], settings.execution,
                                              InstrumentTable(settings.instruments))
            executors[name].start()
        yield server.market, executors
    finally:
        for ex in executors.values():
            ex.close()
        server.close()


def run(quick: bool) -> dict[str, Any]:
    with running_sim() as (market, executors):
        rows = build_costs(executors, 2_000 if quick else 20_000)
        trips = [round_trips(executors[name], market, name, 50 if quick else 300) for name in VENUES]
    by_op = {row["op"]: row["ns_per_op"] for row in rows}
    ratios = {"binance_build_vs_bare_hmac": round(by_op["binance_place_call"] / by_op["hmac_hex_baseline"], 2),
              "okx_build_vs_bare_hmac": round(by_op["okx_place_call"] / by_op["hmac_b64_baseline"], 2)}
    for trip in trips:
        ratios[f"{trip['venue']}_ack_p50_vs_sync_post"] = round(trip["ours"]["p50_us"] / trip["baseline"]["p50_us"], 2)
    return {"rows": rows, "round_trips": {t["venue"]: {k: v for k, v in t.items() if k != "venue"} for t in trips},
            "ratios": ratios}


if __name__ == "__main__":
    import sys

    from scripts.bench import render

    print(render("execution", run("--quick" in sys.argv)))
