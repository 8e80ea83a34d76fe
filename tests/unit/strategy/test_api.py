"""Strategy API pieces: client order ids, run ids, clocks, the intent sink and the market view."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from kairos.records import (
    CLIENT_ORDER_ID_LEN,
    ORDER_INTENT,
    Action,
    BookStatus,
    ExecKind,
    Kind,
    OrderState,
    Side,
    Venue,
)
from kairos.strategy.api import (
    IntentSink,
    LiveClock,
    ManualClock,
    MarketView,
    OrderIds,
    OrderLimits,
    base36,
    exec_updates,
    is_terminal,
    new_run_id,
)
from kairos.strategy.book import DEDUPE_MIN
from tests.unit.strategy.helpers import T0, batch, bbo, event, status

B, X = Venue.BINANCE, Venue.OKX  # X: OKX
SEC = 1_000_000_000


def test_order_ids_are_alnum_bounded_and_unique() -> None:
    ids = OrderIds(2, new_run_id(T0))
    cids = [ids.next() for _ in range(5000)]
    assert len(set(cids)) == 5000
    assert all(re.fullmatch(rb"K02[0-9a-z]{8}[0-9a-z]+", c) and len(c) <= CLIENT_ORDER_ID_LEN for c in cids)
    assert cids[0].startswith(b"K02" + new_run_id(T0).encode())


def test_order_id_sequence_counts_in_base36_across_every_carry() -> None:
    ids, prefix = OrderIds(3, new_run_id(T0)), b"K03" + new_run_id(T0).encode()
    for seq in range(1, 36**3 + 2):  # 1 .. 1000 (base 36): carries into a second and a third digit
        assert ids.next() == prefix + base36(seq).encode()


def test_run_ids_differ_per_millisecond_and_keep_width() -> None:
    assert new_run_id(T0) != new_run_id(T0 + 1_000_000)
    assert len(new_run_id(T0)) == len(new_run_id(2**62)) == 8
    a, b = OrderIds(1, new_run_id(T0)), OrderIds(1, new_run_id(T0 + 1_000_000))
    assert {a.next() for _ in range(100)}.isdisjoint({b.next() for _ in range(100)})


def test_order_ids_reject_bad_inputs() -> None:
    with pytest.raises(ValueError):
        OrderIds(0, "abcdefgh")
    with pytest.raises(ValueError):
        OrderIds(1, "abc-efgh")


def test_clocks() -> None:
    live = LiveClock()
    first = live.now_ns()
    assert abs(first - time.time_ns()) < SEC
    assert live.now_ns() >= first
    manual = ManualClock(5)
    manual.advance(10)
    assert manual.now_ns() == 15


def test_sink_writes_rows_and_grows() -> None:
    clock = ManualClock(T0)
    sink = IntentSink(clock, capacity=2)
    sink.new(1, b"Kabc", X, 3, Side.SELL, 1, 2, 101.5, 0.25, T0 - 7)
    clock.advance(1)
    sink.cancel(1, b"Kabc", X, 3, T0)
    sink.new(2, b"Kdef", B, 1, Side.BUY, 3, 1, 99.0, 1.0, T0)
    assert len(sink) == 3
    rows = sink.take()
    assert len(sink) == 0 and len(rows) == 3
    assert rows[0]["client_order_id"] == b"Kabc" and rows[0]["price"] == 101.5 and rows[0]["qty"] == 0.25
    assert rows[0]["ts_created_ns"] == T0 and rows[0]["ts_origin_ns"] == T0 - 7
    assert rows[0]["action"] == Action.NEW and rows[0]["side"] == Side.SELL and rows[0]["venue"] == X
    assert rows[1]["action"] == Action.CANCEL and rows[1]["price"] == 0 and rows[1]["ts_created_ns"] == T0 + 1
    assert rows[2]["strategy"] == 2 and rows[2]["order_type"] == 3


def test_order_limits_cap_by_qty_and_notional() -> None:
    assert OrderLimits(0.5, 1000.0).cap(2.0, 100.0) == 0.5
    assert OrderLimits(5.0, 100.0).cap(2.0, 100.0) == 1.0
    assert OrderLimits().cap(2.0, 100.0) == 2.0


def test_exec_updates_and_terminal() -> None:
    row = np.zeros(1, ORDER_INTENT)[0]
    row["client_order_id"] = b"Kx1"
    evs = batch(event(row, ExecKind.ACK, OrderState.ACK), event(row, ExecKind.FILL, OrderState.FILLED, 1, 1))
    acked, filled = exec_updates(evs)
    assert acked.cid == b"Kx1" and not is_terminal(acked)
    assert filled.cum_qty == 1.0 and is_terminal(filled)


def test_view_last_record_per_book_wins_and_marks_touched() -> None:
    view = MarketView(3)
    view.update(batch(bbo(B, 1, 100, 101, ts=T0), bbo(X, 1, 200, 201), bbo(B, 1, 102, 103, 5, 6, ts=T0 + 9)))
    assert (view.top(B, 1).bid, view.top(B, 1).ask, view.top(B, 1).bid_qty, view.top(B, 1).ask_qty) == (102, 103, 5, 6)
    assert view.top(B, 1).ts_recv == T0 + 9 and view.top(X, 1).bid == 200
    assert view.touched == {1}
    view.clear_touched()
    assert not view.touched


def test_view_uses_depth_level_zero_and_ignores_trades_and_deeper_levels() -> None:
    view = MarketView(1)
    view.update(batch(bbo(B, 1, 99, 100, kind=Kind.DEPTH), bbo(B, 1, 98, 101, kind=Kind.DEPTH, level=1),
                      bbo(B, 1, 50, 0, kind=Kind.TRADE)))
    assert (view.top(B, 1).bid, view.top(B, 1).ask) == (99, 100)


def test_view_status_drops_book_in_record_order() -> None:
    view = MarketView(2)
    view.update(batch(bbo(B, 1, 100, 101), status(B, 1, BookStatus.RESYNCING), bbo(B, 2, 10, 11)))
    assert view.top(B, 1).status == BookStatus.RESYNCING and np.isnan(view.top(B, 1).bid)
    assert not view.tradeable(B, 1, T0, SEC) and view.tradeable(B, 2, T0, SEC)
    view.update(batch(status(B, 2, BookStatus.DISCONNECTED), bbo(B, 2, 12, 13)))
    assert view.top(B, 2).status == BookStatus.SYNCED and view.tradeable(B, 2, T0, SEC)
    view.update(bbo(B, 1, 100, 101))
    assert view.tradeable(B, 1, T0, SEC)
    view.update(status(B, 1, BookStatus.SYNCED))
    assert not view.tradeable(B, 1, T0, SEC), "every STATUS drops the book; data rebuilds it"


def test_view_tradeable_needs_fresh_uncrossed_two_sided_book() -> None:
    view = MarketView(1)
    assert not view.tradeable(B, 1, T0, SEC)
    view.update(bbo(B, 1, 100, 101))
    assert view.tradeable(B, 1, T0 + SEC, SEC) and not view.tradeable(B, 1, T0 + SEC + 1, SEC)
    view.update(bbo(B, 1, 101, 100))
    assert not view.tradeable(B, 1, T0, SEC)
    view.update(bbo(B, 1, 0, 100))
    assert not view.tradeable(B, 1, T0, SEC)


def test_view_counts_bad_records_and_keeps_good_ones() -> None:
    view = MarketView(1)
    view.update(batch(bbo(7, 1, 1, 2), bbo(B, 9, 1, 2), bbo(B, 1, 100, 101), status(B, 5, BookStatus.RESYNCING),
                      status(B, 1, 9)))
    assert view.rejected == 4 and view.top(B, 1).bid == 100 and view.top(B, 1).status == BookStatus.SYNCED


def test_invalidate_venue_drops_all_its_books() -> None:
    view = MarketView(2)
    view.update(batch(bbo(B, 1, 100, 101), bbo(B, 2, 10, 11), bbo(X, 1, 100, 101)))
    view.invalidate_venue(B)
    assert not view.tradeable(B, 1, T0, SEC) and not view.tradeable(B, 2, T0, SEC)
    assert view.tradeable(X, 1, T0, SEC)


def test_long_batches_keep_the_last_record_per_book_in_order() -> None:
    view, short = MarketView(3), MarketView(3)
    rng = np.random.default_rng(7)
    records = []
    for i in range(400):
        venue, inst = int(rng.integers(1, 3)), int(rng.integers(0, 5))
        pick = rng.integers(0, 4)
        if pick == 0:
            records.append(status(venue, inst, BookStatus(int(rng.integers(0, 3))), ts=T0 + i))
        else:
            kind = (Kind.BBO, Kind.DEPTH, Kind.TRADE)[pick - 1]
            records.append(bbo(venue, inst, 100 + i, 101 + i, ts=T0 + i, kind=kind, level=int(rng.integers(0, 2))))
    md = batch(*records)
    assert len(md) > DEDUPE_MIN
    view.update(md)
    for rec in records:
        short.update(rec)
    for venue in (B, X):
        for inst in (1, 2, 3):
            a, b = view.top(venue, inst), short.top(venue, inst)
            assert (a.status, a.ts_recv, a.bid_qty) == (b.status, b.ts_recv, b.bid_qty)
            assert a.bid == b.bid or (np.isnan(a.bid) and np.isnan(b.bid))
    assert view.touched == short.touched and view.rejected == short.rejected > 0


def test_top_of_unknown_book_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        MarketView(1).top(B, 2)
