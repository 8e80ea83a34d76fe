"""Submit -> ACK: orders over the venue's WebSocket against REST keep-alive, through the real simulator.

``python -m scripts.bench order_ack [--json] [--quick]``. The simulator runs as its own process
(``procs.sim`` on ephemeral loopback ports, book walking), so it does not share this process's GIL. Per
venue, two started executors, each with its private stream:

- ``ws``: ``execution.ws_orders: true``: place over the order socket (Binance WS API ``order.place``, OKX
  private WS ``order`` by instIdCode).
- ``rest`` (same-run baseline): ``execution.ws_orders: false``: the same place over the executor's keep-alive
  ``requests.Session``.

A sample is ``submit()`` until ``drain()``, called as the gate's duty cycle does (asleep on the doorbell the
executor rings with each report, at most ``INFLIGHT_SLEEP_S``), returns the order's ACK. Orders are IOC far
below the touch (they expire at once, the book is untouched); the two paths alternate, paced under the venues'
order limits (OKX 60 per 2 s per endpoint, shared by both executors at the simulator). Target (issue 12): WS
p50 at least 3x lower than REST.

Binance runs twice: with an HMAC key (each order signed) and with an Ed25519 key (venue ``binance_ed25519``: the
order socket logs on once with ``session.logon`` and its orders go unsigned; REST signs each call with Ed25519,
and the simulator, holding the key pair, checks each REST signature), each against its own simulator.

The ``*_wire`` rows are the transports alone, measured in the same run: the same signed place sent from this
thread over the connected order socket (``OrderSocket.request``) and over a bare keep-alive session; the
difference to ``ws``/``rest`` is the executor's own part (thread hand-offs, budget, tracker, drain).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from kairos import config
from kairos.config import EndpointConfig, Secret, Settings
from kairos.execution import EXECUTORS, STREAMS, OrderRequest
from kairos.execution.rest import RestExecution
from kairos.instruments import InstrumentTable
from kairos.records import OrderType, Side, Tif, Venue
from kairos.sim.local import EPHEMERAL_ENV, sim_process
from scripts.bench_execution import PACE_S, drain_until, pct_us

ROOT: Final = Path(__file__).resolve().parents[1]
VENUES: Final = {"binance": Venue.BINANCE, "okx": Venue.OKX}
KEYS: Final = {"api_key": "k", "api_secret": "s", "passphrase": "p"}
READY_S: Final = 20.0


def _sim_env(log_dir: str, binance_secret: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAIROS__")} | EPHEMERAL_ENV
    env |= {"KAIROS__SHM_PREFIX": f"kbench{os.getpid()}", "KAIROS__LOGGING__DIR": log_dir,
            "KAIROS__LOGGING__CONSOLE": "false", "PYTHONPATH": str(ROOT)}
    for name in VENUES:
        env |= {f"KAIROS__VENUES__{name.upper()}__{key.upper()}": value for key, value in KEYS.items()}
    return env | {"KAIROS__VENUES__BINANCE__API_SECRET": binance_secret}


def ed25519_pem() -> str:
    """A fresh Ed25519 private key as PKCS#8 PEM (what Binance's key generator writes)."""
    return Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


@contextlib.contextmanager
def bench_sim(binance_secret: str = KEYS["api_secret"]) -> Iterator[dict[str, int]]:
    """``procs.sim --print-ports`` on ephemeral ports, logging into a temporary folder; yields its ports."""
    with tempfile.TemporaryDirectory(prefix="kairos-bench-") as log_dir, \
            sim_process(_sim_env(log_dir, binance_secret), Path(log_dir) / "sim.stderr", READY_S) as ports:
        yield ports


def _executor(settings: Settings, name: str, rest_url: str, private_url: str, ws_orders: bool,
              secret: str) -> RestExecution:
    keys = {key: Secret(value) for key, value in KEYS.items()} | {"api_secret": Secret(secret)}
    venue = dataclasses.replace(settings.venues[name], endpoint="sim", **keys,
                                endpoints={"sim": EndpointConfig(rest_url, "", private_url)})
    execution = dataclasses.replace(settings.execution, mode="live", ws_orders=ws_orders)
    ex = EXECUTORS[name](venue, execution, InstrumentTable(settings.instruments), stream=STREAMS[name])
    ex.start()
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        stream_up = ex.stream is not None and ex.stream.healthy
        if stream_up and (not ws_orders or (ex.orders is not None and ex.orders.ready)):
            return ex
        time.sleep(0.01)
    ex.close()
    raise RuntimeError(f"{name}: private stream or order socket not up within {READY_S} s")


def _sample(ex: RestExecution, coid: str, symbol: str, price: float) -> int:
    req = OrderRequest(coid, 1, symbol, Side.BUY, OrderType.LIMIT, Tif.IOC, price, 0.001, time.time_ns())
    start = time.perf_counter_ns()
    ex.submit(req)
    drain_until(ex, coid)
    return time.perf_counter_ns() - start


def venue_samples(settings: Settings, ports: dict[str, int], name: str, count: int,
                  secret: str = KEYS["api_secret"]) -> dict[str, list[int]]:
    """``count`` ACK latencies per path, the paths alternating."""
    rest_url = f"http://127.0.0.1:{ports[f'{name}_rest']}"
    path = requests.get(f"{rest_url}/_sim/private-stats", timeout=5).json()[name]["path"]
    private_url = f"ws://127.0.0.1:{ports[f'{name}_private']}{path}"
    paths = {"ws": _executor(settings, name, rest_url, private_url, True, secret),
             "rest": _executor(settings, name, rest_url, private_url, False, secret)}
    out: dict[str, list[int]] = {label: [] for label in paths}
    symbol = InstrumentTable(settings.instruments).by_id(1).venue_symbols[VENUES[name]]
    try:
        price = paths["ws"].filters(1).round_price(_touch_bid(rest_url, name, symbol) * 0.9, Side.BUY)
        for i in range(count):
            for label, ex in paths.items():
                out[label].append(_sample(ex, f"{label}{i}x{time.time_ns() % 10**6}", symbol, price))
                time.sleep(PACE_S)
        assert paths["ws"].stats().get("ws_replies", 0) >= count, "ws path did not go over the socket"
        assert paths["rest"].orders is None
        out |= wire_samples(paths["ws"], symbol, price, count)
    finally:
        for ex in paths.values():
            ex.close()
    return out


def wire_samples(ex: RestExecution, symbol: str, price: float, count: int) -> dict[str, list[int]]:
    """The place alone over each transport, from this thread: the order socket's request/reply and a bare
    keep-alive POST (no worker hand-off, no tracker), alternating."""
    socket = ex.orders
    assert socket is not None
    session = requests.Session()
    session.headers.update(ex.session_headers())
    out: dict[str, list[int]] = {"ws_wire": [], "rest_wire": []}
    try:
        for i in range(count):
            req = OrderRequest(f"w{i}x{time.time_ns() % 10**6}", 1, symbol, Side.BUY, OrderType.LIMIT, Tif.IOC,
                               price, 0.001, 0)
            rid = socket.next_id()
            frame = ex.ws_place(rid, req, str(price), "0.001")
            start = time.perf_counter_ns()
            socket.request(rid, frame)
            out["ws_wire"].append(time.perf_counter_ns() - start)
            time.sleep(PACE_S)
            call = ex.place_call(dataclasses.replace(req, client_order_id=f"{req.client_order_id}r"), str(price),
                                 "0.001")
            start = time.perf_counter_ns()
            session.request(call.method, ex._base_url + call.path, data=call.body.encode() or None,
                            headers=call.headers, timeout=5).raise_for_status()
            out["rest_wire"].append(time.perf_counter_ns() - start)
            time.sleep(PACE_S)
    finally:
        session.close()
    return out


def _record(label: str, samples: dict[str, list[int]], rows: list[dict[str, Any]], ratios: dict[str, float],
            targets: dict[str, bool]) -> None:
    result = {path: pct_us(values) for path, values in samples.items()}
    rows += [{"venue": label, "path": path} | stats for path, stats in result.items()]
    ratio = round(result["rest"]["p50_us"] / result["ws"]["p50_us"], 2)
    ratios[f"{label}_rest_p50_over_ws"] = ratio
    ratios[f"{label}_rest_p99_over_ws"] = round(result["rest"]["p99_us"] / result["ws"]["p99_us"], 2)
    ratios[f"{label}_wire_rest_p50_over_ws"] = round(result["rest_wire"]["p50_us"] / result["ws_wire"]["p50_us"], 2)
    targets[f"{label}_ws_p50_3x_lower"] = ratio >= 3.0


def _touch_bid(rest_url: str, name: str, symbol: str) -> float:
    """The best bid from the venue's public REST book, once per venue: IOC orders 10% below it never fill."""
    if name == "okx":
        book = requests.get(f"{rest_url}/api/v5/market/books", params={"instId": symbol, "sz": "1"}, timeout=5).json()
        return float(book["data"][0]["bids"][0][0])
    book = requests.get(f"{rest_url}/api/v3/depth", params={"symbol": symbol, "limit": "5"}, timeout=5).json()
    return float(book["bids"][0][0])


def run(quick: bool) -> dict[str, Any]:
    count = 30 if quick else 150
    settings = config.load(env={})
    rows: list[dict[str, Any]] = []
    ratios: dict[str, float] = {}
    targets: dict[str, bool] = {}
    pem = ed25519_pem()
    with bench_sim() as ports:
        for name in VENUES:
            _record(name, venue_samples(settings, ports, name, count), rows, ratios, targets)
    with bench_sim(pem) as ports:
        _record("binance_ed25519", venue_samples(settings, ports, "binance", count, pem), rows, ratios, targets)
    return {"rows": rows, "ratios": ratios, "targets": targets,
            "notes": [f"{count} IOC orders per venue and row, the paths alternating {PACE_S * 1000:.0f} ms apart; "
                      "simulator in its own process on loopback"]}


if __name__ == "__main__":
    from scripts.bench import render

    print(render("order_ack", run("--quick" in sys.argv)))
