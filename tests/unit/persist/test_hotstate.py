"""Hot-state changes without Redis: coalescing order, open orders, the fill high-water mark."""

from __future__ import annotations

import numpy as np

from kairos.persist.batch import Batch
from kairos.persist.hotstate import HotState
from kairos.persist.synthetic import exec_events, market_data
from kairos.records import BookStatus, ExecKind, Kind


def md_batch(md: np.ndarray) -> Batch:
    return Batch(md=[md], rows=len(md))


def ev_batch(events: np.ndarray) -> Batch:
    return Batch(events=[events], rows=len(events))


def test_a_status_after_the_last_quote_only_flags_the_book() -> None:
    state = HotState("p", {1: "BTC-USDT"})
    md = market_data(3, instruments=1)
    md["kind"] = [Kind.BBO, Kind.BBO, Kind.STATUS]
    md["flags"] = [0, 0, BookStatus.RESYNCING]
    changes = state.changes(md_batch(md))
    assert changes.sets["p:bbo:binance:BTC-USDT"]["venue_seq"] == str(md[1]["venue_seq"])
    assert changes.sets["p:bbo:binance:BTC-USDT"]["book_status"] == "RESYNCING"
    md["kind"] = [Kind.STATUS, Kind.BBO, Kind.BBO]
    assert state.changes(md_batch(md)).sets["p:bbo:binance:BTC-USDT"]["book_status"] == "SYNCED"


def test_positions_count_each_fill_once_and_a_recreated_ring_still_counts() -> None:
    state = HotState("p", {1: "BTC-USDT", 2: "ETH-USDT"})
    events = exec_events(2)  # order 0 sells 1.0 of instrument 1, order 1 buys 0.4 of instrument 2
    state.apply(state.changes(ev_batch(events)))
    state.apply(state.changes(ev_batch(events)))  # replay
    assert state.hashes["p:positions:binance"] == {"BTC-USDT": "-1.0", "ETH-USDT": "0.4"}
    later = exec_events(1, t0_ns=int(events["ts_event_ns"].max()) + 10**9)  # event_seq from 0 again
    state.apply(state.changes(ev_batch(later)))
    assert state.hashes["p:positions:binance"]["BTC-USDT"] == "-2.0"


def test_open_orders_leave_when_terminal() -> None:
    state = HotState("p", {})
    events = exec_events(2)
    state.apply(state.changes(ev_batch(events[events["kind"] == ExecKind.ACK])))
    assert set(state.hashes["p:orders:open:binance"]) == {"ord00000000", "ord00000001"}
    state.apply(state.changes(ev_batch(events)))
    assert state.hashes["p:orders:open:binance"] == {}
