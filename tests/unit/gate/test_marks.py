"""Marks: market records -> the last valid bid/ask per (venue, instrument), the same for a one-tick batch
and a long one; bad quotes never become marks, and a stale mark refuses orders on its venue only."""

from __future__ import annotations

import numpy as np
import pytest

from kairos import config
from kairos.config import RiskConfig
from kairos.gate.book import Book
from kairos.gate.marks import SMALL, Marks
from kairos.instruments import InstrumentTable
from kairos.records import MARKET_DATA, BookStatus, Kind, OrderType, RejectReason, Side, Venue
from kairos.risk import Grid, PreTrade, RiskState
from kairos.risk.state import NEVER
from tests.unit.risk.conftest import BTC_RULES

CFG = RiskConfig(mark_max_age_ms=5000, mark_max_move_bps=1000.0)
S = 1_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 100 * S

    def __call__(self) -> int:
        return self.now


def state() -> RiskState:
    return RiskState.empty(Grid(InstrumentTable(config.load(env={}).instruments)), 100)


def records(*rows: tuple[int, int, int, float, float]) -> np.ndarray:
    """(instrument, kind, flags, price, price2) per record, on Binance."""
    out = np.zeros(len(rows), MARKET_DATA)
    for i, (inst, kind, flags, px, px2) in enumerate(rows):
        out[i]["instrument"], out[i]["kind"], out[i]["flags"] = inst, kind, flags
        out[i]["price"], out[i]["price2"], out[i]["venue"] = px, px2, Venue.BINANCE
    return out


TICKS = [(1, Kind.BBO, 0, 100.0, 101.0), (2, Kind.DEPTH, 0, 10.0, 11.0), (2, Kind.DEPTH, 1, 9.0, 12.0),
         (1, Kind.TRADE, 2, 100.5, 0.0), (9, Kind.BBO, 0, 1.0, 2.0)]


@pytest.mark.parametrize("padding", [0, SMALL], ids=["one tick", "long batch"])
def test_bbo_and_depth_top_move_marks_trades_deeper_levels_and_unknown_instruments_do_not(padding: int) -> None:
    s, changed, clock = state(), set(), Clock()
    trades = [(1, Kind.TRADE, 1, 99.0, 0.0)] * padding
    Marks(s, Venue.BINANCE, changed, CFG, clock)(records(*trades, *TICKS))
    k1, k2 = s.grid.key(Venue.BINANCE, 1), s.grid.key(Venue.BINANCE, 2)
    assert (s.bid[k1], s.ask[k1], s.bid[k2], s.ask[k2]) == (100.0, 101.0, 10.0, 11.0)
    assert (s.mark_ns[k1], s.mark_ns[k2]) == (clock.now, clock.now)
    assert changed == {k1, k2}
    assert sum(1 for v in s.bid if v) == 2


@pytest.mark.parametrize("padding", [0, SMALL], ids=["one tick", "long batch"])
def test_status_makes_a_mark_unavailable_but_keeps_its_value_until_fresh_data(padding: int) -> None:
    s, changed, clock = state(), set(), Clock()
    marks = Marks(s, Venue.BINANCE, changed, CFG, clock)
    filler = [(1, Kind.BBO, 0, 100.0, 101.0)] * padding
    marks(records(*filler, (1, Kind.BBO, 0, 100.0, 101.0), (1, Kind.STATUS, int(BookStatus.RESYNCING), 0.0, 0.0)))
    k = s.grid.key(Venue.BINANCE, 1)
    assert (s.mark(k), s.mark_ns[k]) == (100.5, NEVER)
    clock.now += 1
    marks(records((1, Kind.BBO, 0, 150.0, 151.0)))            # after a gap, any valid quote is the new mark
    assert (s.mark(k), s.mark_ns[k]) == (150.5, clock.now)
    assert changed == {k}


BAD = {"crossed": (101.0, 100.0), "locked": (100.0, 100.0), "1e15 ask": (100.0, 1e15), "1e-8 bid": (1e-8, 101.0),
       "1e15 both sides": (1e15, 1.0000001e15), "NaN": (float("nan"), 101.0), "inf": (100.0, float("inf")),
       "one-sided": (0.0, 101.0), "negative": (-100.0, 101.0), "too wide": (100.0, 111.0)}


@pytest.mark.parametrize("quote", BAD.values(), ids=BAD.keys())
@pytest.mark.parametrize("padding", [0, SMALL], ids=["one tick", "long batch"])
def test_bad_quotes_never_become_marks_and_are_counted(quote: tuple[float, float], padding: int) -> None:
    s, changed, clock = state(), set(), Clock()
    marks = Marks(s, Venue.BINANCE, changed, CFG, clock)
    marks(records((1, Kind.BBO, 0, 100.0, 101.0)))
    changed.clear()
    clock.now += S
    filler = [(1, Kind.TRADE, 1, 99.0, 0.0)] * padding
    marks(records(*filler, (1, Kind.BBO, 0, *quote), (1, Kind.DEPTH, 0, *quote)))
    k = s.grid.key(Venue.BINANCE, 1)
    assert (s.bid[k], s.ask[k], s.mark_ns[k]) == (100.0, 101.0, 100 * S)
    assert not changed and marks.bad == 2
    assert marks.last_bad[0] == k


def test_a_stale_mark_refuses_orders_on_its_venue_only_and_still_values_exposure() -> None:
    s, changed, clock = state(), set(), Clock()
    bn, okx = Marks(s, Venue.BINANCE, changed, CFG, clock), Marks(s, Venue.OKX, changed, CFG, clock)
    kb, ko = s.grid.key(Venue.BINANCE, 1), s.grid.key(Venue.OKX, 1)
    for k in (kb, ko):
        s.rules.load(k, BTC_RULES)
        s.balance[s.grid.quote_slot[k]] = 1e6
    bn(records((1, Kind.BBO, 0, 60000.0, 60001.0)))
    okx_md = records((1, Kind.BBO, 0, 60000.0, 60001.0))
    okx_md["venue"] = Venue.OKX
    okx(okx_md)
    s.position[kb] = 1.0
    pre = PreTrade(config.load(env={}).risk, [0.0, 10.0, 10.0])

    def verdict(k: int) -> RejectReason:
        return RejectReason(pre.check(s, k // s.grid.stride, k, Side.BUY, OrderType.LIMIT, 60000.0, 0.01, False,
                                      clock.now))

    assert verdict(kb) == verdict(ko) == RejectReason.NONE
    for _ in range(6):                                        # binance only sends garbage for 6 s: 1e15, crossed
        clock.now += S
        bn(records((1, Kind.BBO, 0, 1e15, 1.0000001e15), (1, Kind.BBO, 0, 60002.0, 59000.0)))
        okx(okx_md)
    assert verdict(kb) == RejectReason.MARK_UNAVAILABLE
    assert verdict(ko) == RejectReason.NONE
    book = Book(s)
    book.refresh_gross()
    assert s.gross == 60000.5                                 # the last good binance mark, not 1e15


def test_a_real_jump_is_taken_once_another_venue_shows_it() -> None:
    s, changed, clock = state(), set(), Clock()
    bn, okx = Marks(s, Venue.BINANCE, changed, CFG, clock), Marks(s, Venue.OKX, changed, CFG, clock)
    kb, ko = s.grid.key(Venue.BINANCE, 1), s.grid.key(Venue.OKX, 1)
    okx_at = records((1, Kind.BBO, 0, 100.0, 101.0))
    okx_at["venue"] = Venue.OKX
    bn(records((1, Kind.BBO, 0, 100.0, 101.0)))
    okx(okx_at)
    clock.now += 6 * S                                        # both marks stale, then the market is 20 % higher
    bn(records((1, Kind.BBO, 0, 120.0, 121.0)))
    assert s.mark(kb) == 100.5 and bn.bad == 1                # held: 20 % off its own last mark
    okx_at["price"], okx_at["price2"] = 120.0, 121.0
    okx(okx_at)
    assert s.mark(ko) == 100.5                                # held too: binance is not fresh either
    s.mark_ns[ko] = NEVER                                     # okx resyncs (STATUS): its first quote is taken
    okx(okx_at)
    assert s.mark(ko) == 120.5
    bn(records((1, Kind.BBO, 0, 120.0, 121.0)))               # and binance follows the fresh okx mark
    assert s.mark(kb) == 120.5 and s.mark_ns[kb] == clock.now
