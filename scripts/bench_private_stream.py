"""Venue fill -> FILL report: the private stream against REST polling, through the real simulator.

``python -m scripts.bench private_stream [--json] [--quick]``. The whole simulator (`SimServer`, book
walking at ``sim.rate_hz``) runs in this process; per venue, a resting buy is placed just under the
touch and the book is steered through it. ``venue fill`` is stamped by a listener on the simulator's
exchange when it books the fill (``perf_counter_ns``); the sample ends when the executor's ``drain()``
(called as the gate's duty cycle does: asleep on the doorbell the executor rings with each report)
returns that order's first FILL report.

- ``stream``: the executor with its private stream (``execution.reconcile_s`` REST reconciliation).
- ``polling`` (same-run baseline): the same executor without a stream, polling every
  ``execution.sync_interval_ms`` (250 ms by default): the engine before issue 12.

Targets (issue 12): stream p50 <= 5 ms, p99 <= 20 ms. Latencies in microseconds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from typing import Any

from kairos import config
from kairos.config import EndpointConfig, Secret, Settings
from kairos.execution import EXECUTORS, STREAMS, OrderRequest
from kairos.execution.rest import RestExecution
from kairos.instruments import InstrumentTable
from kairos.records import ExecKind, OrderType, Side, Tif, Venue
from kairos.sim.exchange import OrderUpdate
from kairos.sim.local import ephemeral
from kairos.sim.server import SimServer
from scripts.bench_execution import drain_until, pct_us

VENUES = {"binance": Venue.BINANCE, "okx": Venue.OKX}
KEYS = {"api_key": Secret("k"), "api_secret": Secret("s"), "passphrase": Secret("p")}


def _settings() -> Settings:
    base = config.load(env={})
    venues = {name: dataclasses.replace(base.venues[name], **KEYS) for name in VENUES}
    return dataclasses.replace(base, venues=venues, sim=ephemeral(base.sim),
                               execution=dataclasses.replace(base.execution, mode="live"))


def _executor(server: SimServer, settings: Settings, name: str, streamed: bool) -> RestExecution:
    urls = server.urls(VENUES[name])
    endpoint = EndpointConfig(urls.rest_url, "", urls.private_url if streamed else "")
    cfg = dataclasses.replace(settings.venues[name], endpoints={"sim": endpoint}, endpoint="sim")
    ex = EXECUTORS[name](cfg, settings.execution, InstrumentTable(settings.instruments), stream=STREAMS[name])
    ex.start()
    for _ in range(500):
        if not streamed or (ex.stream is not None and ex.stream.healthy):
            return ex
        time.sleep(0.01)
    raise RuntimeError(f"{name}: private stream not subscribed within 5 s")


def samples(server: SimServer, ex: RestExecution, name: str, label: str, count: int) -> list[int]:
    venue = VENUES[name]
    symbol = InstrumentTable(server.settings.instruments).by_id(1).venue_symbols[venue]
    filled: dict[str, int] = {}

    def on_update(update: OrderUpdate) -> None:
        if update.exec_type == "TRADE":
            filled.setdefault(update.order.client_order_id, time.perf_counter_ns())

    server.exchanges[venue].add_listener(on_update)
    out = []
    for i in range(count):
        bid = server.market.best(venue, symbol)[0].price
        price = float(ex.filters(1).round_price(float(bid) * 0.9995, Side.BUY))
        coid = f"{label[0]}{i}"
        ex.submit(OrderRequest(coid, 1, symbol, Side.BUY, OrderType.LIMIT, Tif.GTC, price, 0.001, time.time_ns()))
        drain_until(ex, coid)
        server.market.set_mid(venue, symbol, price * 0.999)
        drain_until(ex, coid, ExecKind.FILL)
        seen = time.perf_counter_ns()
        server.market.set_mid(venue, symbol, None)
        out.append(seen - filled[coid])
    return out


@contextlib.contextmanager
def running_sim() -> Iterator[tuple[SimServer, Settings]]:
    settings = _settings()
    server = SimServer(settings)
    server.start()
    try:
        yield server, settings
    finally:
        server.close()


def run(quick: bool) -> dict[str, Any]:
    count = 20 if quick else 100
    rows, ratios, targets = [], {}, {}
    with running_sim() as (server, settings):
        for name in VENUES:
            result = {}
            for label, streamed in (("stream", True), ("polling", False)):
                ex = _executor(server, settings, name, streamed)
                try:
                    result[label] = pct_us(samples(server, ex, name, label, count))
                finally:
                    ex.close()
                rows.append({"venue": name, "path": label} | result[label])
            ratios[f"{name}_stream_p50_vs_polling"] = round(result["stream"]["p50_us"] / result["polling"]["p50_us"], 3)
            targets[f"{name}_stream_p50_le_5ms"] = result["stream"]["p50_us"] <= 5000
            targets[f"{name}_stream_p99_le_20ms"] = result["stream"]["p99_us"] <= 20000
    return {"rows": rows, "ratios": ratios, "targets": targets,
            "notes": [f"{count} fills per venue and path; venue fill stamped in the simulator's exchange"]}


if __name__ == "__main__":
    import sys

    from scripts.bench import render

    print(render("private_stream", run("--quick" in sys.argv)))
