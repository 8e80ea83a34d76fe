"""The simulator's venue-local shocks: off by default, and when on they open a cross-venue edge."""

from __future__ import annotations

import dataclasses

from kairos import config
from kairos.records import Venue
from kairos.sim.market import SimMarket, build_specs


def _market(**sim: float) -> SimMarket:
    settings = config.load(env={})
    cfg = dataclasses.replace(settings.sim, **sim)
    return SimMarket(build_specs(settings.instruments, cfg), cfg, lambda *_: None)


def _widest_edge_bps(market: SimMarket, steps: int) -> float:
    widest = 0.0
    for _ in range(steps):
        market.step()
        b_bid, b_ask = market.best(Venue.BINANCE, "BTCUSDT")
        o_bid, o_ask = market.best(Venue.OKX, "BTC-USDT")
        edge = max(float(b_bid.price) / float(o_ask.price), float(o_bid.price) / float(b_ask.price)) - 1.0
        widest = max(widest, edge * 1e4)
    return widest


def test_no_dislocation_keeps_venues_within_noise() -> None:
    assert _widest_edge_bps(_market(dislocation_probability=0.0), 300) < 5.0


def test_dislocations_open_an_edge_beyond_fees() -> None:
    assert _widest_edge_bps(_market(dislocation_probability=0.05, dislocation_bps=40.0), 300) > 25.0
