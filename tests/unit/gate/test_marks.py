"""Marks: market records -> bid/ask per (venue, instrument), the same for a one-tick batch and a long one."""

from __future__ import annotations

import numpy as np
import pytest

from kairos import config
from kairos.gate.marks import SMALL, Marks
from kairos.instruments import InstrumentTable
from kairos.records import MARKET_DATA, BookStatus, Kind, Venue
from kairos.risk import Grid, RiskState


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
    s, changed = state(), set()
    trades = [(1, Kind.TRADE, 1, 99.0, 0.0)] * padding
    Marks(s, Venue.BINANCE, changed)(records(*trades, *TICKS))
    k1, k2 = s.grid.key(Venue.BINANCE, 1), s.grid.key(Venue.BINANCE, 2)
    assert (s.bid[k1], s.ask[k1], s.bid[k2], s.ask[k2]) == (100.0, 101.0, 10.0, 11.0)
    assert changed == {k1, k2}
    assert sum(1 for v in s.bid if v) == 2


@pytest.mark.parametrize("padding", [0, SMALL], ids=["one tick", "long batch"])
def test_status_clears_a_mark_until_fresh_data(padding: int) -> None:
    s, changed = state(), set()
    marks = Marks(s, Venue.BINANCE, changed)
    filler = [(1, Kind.BBO, 0, 100.0, 101.0)] * padding
    marks(records(*filler, (1, Kind.BBO, 0, 100.0, 101.0), (1, Kind.STATUS, int(BookStatus.RESYNCING), 0.0, 0.0)))
    k = s.grid.key(Venue.BINANCE, 1)
    assert (s.bid[k], s.ask[k], s.mark(k)) == (0.0, 0.0, 0.0)
    marks(records((1, Kind.BBO, 0, 102.0, 103.0)))
    assert s.mark(k) == 102.5
    assert changed == {k}
