"""Feed pipeline throughput per venue: parse + normalise (+ L2 book) + publish to a real md ring.

Frames are rendered by the simulator's own dialects from its seeded random walk (one instrument,
BTC-USDT), so they have the venues' exact shapes:

- ``binance_bookticker``: combined-stream bookTicker -> one BBO record per frame.
- ``binance_depth``: depthUpdate (several absolute level changes each) -> L2 book -> a 10-level
  DEPTH burst whenever the top 10 changed (continuity checked on every frame).
- ``okx_books``: books updates (seqId/prevSeqId) -> L2 book -> DEPTH bursts.

Every frame goes through ``FeedAgent.ingest`` (the code the feed process runs per WS frame, minus
the socket read), and ``flush`` publishes to a real overwrite ring in /dev/shm every 128 frames
(``batch1``: after every frame, as when frames arrive one at a time). The baseline is the same
pipeline with stdlib ``json.loads`` in place of orjson (an adapter subclass), in the same run.
Reported rates are the median of the trials.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import orjson

from kairos import config
from kairos.config import EndpointConfig, InstrumentConfig
from kairos.feeds.agent import FeedAgent
from kairos.feeds.base import FeedAdapter
from kairos.feeds.binance import BinanceFeed
from kairos.feeds.okx import OkxFeed
from kairos.feeds.stats import FeedStats
from kairos.records import MARKET_DATA, Venue
from kairos.ring import Overflow, Ring
from kairos.sim.binance import BinanceDialect
from kairos.sim.book import Event
from kairos.sim.market import SimMarket, build_specs
from kairos.sim.okx import OkxDialect
from kairos.sim.router import Request, Router

URLS = EndpointConfig("http://unused", "ws://unused")


class JsonBinance(BinanceFeed):
    loads = staticmethod(json.loads)


class JsonOkx(OkxFeed):
    loads = staticmethod(json.loads)


class Ready:
    """Snapshot bodies taken from the simulator before the frames were rendered."""

    def __init__(self, bodies: dict[str, bytes]) -> None:
        self.bodies = bodies

    def fetch(self, url: str, params: dict[str, str]) -> Future[bytes]:
        future: Future[bytes] = Future()
        future.set_result(self.bodies[params.get("symbol") or params["instId"]])
        return future

    def close(self) -> None:
        return None


def _frames(steps: int) -> tuple[dict[str, list[bytes]], dict[str, bytes]]:
    """Render ``steps`` walk steps in both dialects; returns frames by stream and the starting snapshots."""
    base = config.load()
    btc = InstrumentConfig("BTC-USDT", "BTC", "USDT", {"binance": "BTCUSDT", "okx": "BTC-USDT"})
    settings = dataclasses.replace(base, instruments=(btc,))
    events: list[Event] = []
    market = SimMarket(build_specs(settings.instruments, settings.sim), settings.sim, events.append)
    dialects = {Venue.BINANCE: BinanceDialect(market, settings.sim), Venue.OKX: OkxDialect(market, settings.sim)}
    router = Router()
    dialects[Venue.BINANCE].register(router)
    dialects[Venue.OKX].register(router)
    snapshots = {"BTCUSDT": _get(router, "/api/v3/depth", {"symbol": "BTCUSDT", "limit": "1000"}),
                 "BTC-USDT": _get(router, "/api/v5/market/books", {"instId": "BTC-USDT", "sz": "400"})}
    for _ in range(steps):
        market.step()
    frames: dict[str, list[bytes]] = {}
    for event in events:
        for key, frame in dialects[event.spec.venue].render(event):
            frames.setdefault(key, []).append(frame.encode())
    return frames, snapshots


def _get(router: Router, path: str, query: dict[str, str]) -> bytes:
    return router.dispatch(Request("GET", path, "", query, {}, b"", Venue.NONE)).body


def _okx_ws_snapshot(rest_body: bytes) -> bytes:
    data = orjson.loads(rest_body)["data"][0]
    data.update({"checksum": 0, "prevSeqId": -1})
    return orjson.dumps({"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": "snapshot", "data": [data]})


def _agent(adapter_cls: type[FeedAdapter], symbol: str, snapshots: dict[str, bytes], ring: Ring) -> FeedAgent:
    cfg = config.load().feeds
    adapter = adapter_cls({symbol: 1}, ("bbo", "trades", "depth"))
    agent = FeedAgent(adapter, URLS, cfg, ring.producer(), FeedStats(None), fetcher=Ready(snapshots))
    agent.sync.start()
    return agent


def _run(agent: FeedAgent, warmup: list[bytes], frames: list[bytes], batch: int) -> float:
    """Seconds to push ``frames`` through ingest + flush after ``warmup`` synced the books."""
    for frame in warmup:
        agent.ingest(frame, 0)
    for _ in range(10):  # the first poll asks for the snapshot, the next one splices it
        agent.poll_books()
    agent.flush()
    if warmup and agent.sync.counts["snapshots"] != len(agent.sync.tracks):
        raise RuntimeError(f"books did not sync before timing: {agent.sync.counts}")
    ingest, flush, mask = agent.ingest, agent.flush, batch - 1
    rx = time.monotonic_ns()
    start = time.perf_counter()
    for i, frame in enumerate(frames):
        ingest(frame, rx)
        if i & mask == mask:
            flush()
    flush()
    elapsed = time.perf_counter() - start
    if agent.tally.total or agent.sync.counts["gaps"] or not agent.stats.records:
        raise RuntimeError(f"pipeline did not run clean: {agent.tally.counts} {agent.sync.counts}")
    return elapsed


Case = tuple[str, dict[str, type[FeedAdapter]], str, Callable[[dict[str, list[bytes]], dict[str, bytes]],
                                                                tuple[list[bytes], list[bytes]]], int]


def _cases(n_ticker: int) -> list[Case]:
    def ticker(frames: dict[str, list[bytes]], snaps: dict[str, bytes]) -> tuple[list[bytes], list[bytes]]:
        unique = frames["btcusdt@bookTicker"]
        return [], (unique * (n_ticker // len(unique) + 1))[:n_ticker]

    def depth(frames: dict[str, list[bytes]], snaps: dict[str, bytes]) -> tuple[list[bytes], list[bytes]]:
        stream = frames["btcusdt@depth@100ms"]
        return stream[:1], stream[1:]

    def okx(frames: dict[str, list[bytes]], snaps: dict[str, bytes]) -> tuple[list[bytes], list[bytes]]:
        return [_okx_ws_snapshot(snaps["BTC-USDT"])], frames["books:BTC-USDT"]

    binance = {"orjson": BinanceFeed, "json": JsonBinance}
    return [("binance_bookticker", binance, "BTCUSDT", ticker, 128),
            ("binance_bookticker_batch1", binance, "BTCUSDT", ticker, 1),
            ("binance_depth", binance, "BTCUSDT", depth, 128),
            ("okx_books", {"orjson": OkxFeed, "json": JsonOkx}, "BTC-USDT", okx, 128)]


def _trial(adapter_cls: type[FeedAdapter], symbol: str, snapshots: dict[str, bytes], warmup: list[bytes],
           timed: list[bytes], batch: int, prefix: str) -> tuple[float, int]:
    """One timed pass on a fresh ring; returns (seconds, records published)."""
    ring = Ring.create("md.bench", MARKET_DATA, 65536, Overflow.OVERWRITE, ("bench",), prefix=prefix)
    try:
        agent = _agent(adapter_cls, symbol, snapshots, ring)
        return _run(agent, warmup, timed, batch), agent.stats.records
    finally:
        ring.close()
        Ring.unlink("md.bench", prefix=prefix)


def run(quick: bool) -> dict[str, Any]:
    steps, n_ticker, trials = (6_000, 40_000, 3) if quick else (30_000, 300_000, 5)
    frames, snapshots = _frames(steps)
    prefix = f"kairos-bench{os.getpid()}-{uuid.uuid4().hex[:6]}"
    rows, ratios = [], {}
    for name, decoders, symbol, select, batch in _cases(n_ticker):
        warmup, timed = select(frames, snapshots)
        seconds: dict[str, list[float]] = {d: [] for d in decoders}
        records: dict[str, int] = {}
        for _ in range(trials):  # decoders interleaved, so both see the same machine load
            for decoder, adapter_cls in decoders.items():
                elapsed, records[decoder] = _trial(adapter_cls, symbol, snapshots, warmup, timed, batch, prefix)
                seconds[decoder].append(elapsed)
        for decoder, samples in seconds.items():
            median = statistics.median(samples)
            rows.append({"feed": name, "decoder": decoder, "msgs": len(timed), "msgs_per_s": len(timed) / median,
                         "best_msgs_per_s": len(timed) / min(samples), "records_per_s": records[decoder] / median,
                         "us_per_msg": 1e6 * median / len(timed)})
        ratios[f"{name}_orjson_vs_json"] = statistics.median(
            j / o for o, j in zip(seconds["orjson"], seconds["json"], strict=True))
    return _report(rows, ratios, frames["btcusdt@depth@100ms"], trials)


def _report(rows: list[dict[str, Any]], ratios: dict[str, float], depth_frames: list[bytes], trials: int) -> dict:
    by = {(r["feed"], r["decoder"]): r["msgs_per_s"] for r in rows}
    levels = sum(len(orjson.loads(f)["data"]["b"]) + len(orjson.loads(f)["data"]["a"]) for f in depth_frames)
    return {
        "rows": rows,
        "ratios": ratios,
        "targets": {"binance_bookticker >= 200k msgs/s (median)": by[("binance_bookticker", "orjson")] >= 200_000,
                    "binance_depth >= 50k msgs/s (median)": by[("binance_depth", "orjson")] >= 50_000},
        "notes": [f"depth frames carry {levels / len(depth_frames):.1f} level changes on average; bursts are 10 levels",
                  f"{trials} interleaved trials per cell; rates are medians, ratios medians of per-trial ratios",
                  "one process on one core of a shared 2-core machine: absolute numbers move with its load"],
    }
