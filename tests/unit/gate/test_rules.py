"""Venue rules and bad numbers at the gate, in paper AND live mode: each has its own reject reason and
nothing is sent; a passing order is rounded to the venue's grid (rules loaded from the simulator's REST,
which is the venue here); without a valid fresh mark orders get MARK_UNAVAILABLE on that venue only."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from kairos.gate.agent import GateAgent
from kairos.records import MARKET_DATA, BookStatus, ExecKind, Kind, OrderType, RejectReason, Side, Tif, Venue
from kairos.sim.local import venue_sim

from .conftest import Harness, intent

R = RejectReason
KEYS = {"KAIROS__VENUES__BINANCE__API_KEY": "rules-key", "KAIROS__VENUES__BINANCE__API_SECRET": "rules-secret",
        "KAIROS__VENUES__OKX__API_KEY": "okx-key", "KAIROS__VENUES__OKX__API_SECRET": "okx-secret",
        "KAIROS__VENUES__OKX__PASSPHRASE": "okx-pass"}
BID, ASK = 60000.0, 60000.01


@pytest.fixture(params=["paper", "live"])
def harness(request: pytest.FixtureRequest, make_harness: Callable[..., Harness]) -> Iterator[Callable[..., Harness]]:
    """Makes harnesses (env overrides as keywords) in paper mode (session simulator) or live mode (a
    simulator with its API keys)."""
    if request.param == "paper":
        yield make_harness
        return
    with venue_sim(KEYS) as urls:
        live = {k.removeprefix("KAIROS__").lower(): v for k, v in (KEYS | urls).items()}
        yield lambda **env: make_harness(execution__mode="live", **live, **env)


def ready(h: Harness) -> GateAgent:
    """A gate that has started and reconciled every venue (live: over HTTP, a few duty cycles)."""
    gate = h.gate()
    h.run(gate, lambda _: gate._ready, cycles=10**6)
    assert gate._ready
    return gate


def reasons(h: Harness, gate: GateAgent, coids: list[str]) -> dict[str, RejectReason]:
    """REJECT reasons of ``coids`` once each has an event (live ACKs come over HTTP: bounded by 5 s)."""
    events = h.run(gate, lambda seen: {e["client_order_id"].decode() for e in seen} >= set(coids), cycles=10**6)
    assert {e["client_order_id"].decode() for e in events} >= set(coids)
    return {e["client_order_id"].decode(): RejectReason(e["reason"]) for e in events
            if e["kind"] == ExecKind.REJECT and e["client_order_id"].decode() in coids}


CASES = {  # coid: (order type, price, qty, reason); venue rules: tick 0.01, lot 0.00001, min qty 0.0001, min 5 USDT
    "zeroprice": (OrderType.LIMIT, 0.0, 0.01, R.TICK_SIZE),
    "negprice": (OrderType.LIMIT, -60000.0, 0.01, R.TICK_SIZE),
    "subtick": (OrderType.LIMIT, 0.004, 0.01, R.TICK_SIZE),
    "nanprice": (OrderType.LIMIT, float("nan"), 0.01, R.NON_NORMAL_NUMBER),
    "infprice": (OrderType.LIMIT, float("inf"), 0.01, R.NON_NORMAL_NUMBER),
    "subnormalqty": (OrderType.LIMIT, 59000.0, 5e-324, R.NON_NORMAL_NUMBER),
    "nanqty": (OrderType.MARKET, 0.0, float("nan"), R.NON_NORMAL_NUMBER),
    "tinyqty": (OrderType.LIMIT, 59000.0, 1e-7, R.LOT_SIZE),
    "underminqty": (OrderType.MARKET, 0.0, 0.00009, R.LOT_SIZE),
    "dust": (OrderType.LIMIT, 59000.0, 0.0001, R.NONE),           # 5.9 USDT: passes
    "undernotional": (OrderType.LIMIT, 40000.0, 0.0001, R.MIN_NOTIONAL),
}


def test_every_rule_has_its_reason_and_nothing_off_the_rules_is_sent(harness: Callable[..., Harness]) -> None:
    h = harness()
    gate = ready(h)
    h.mark(BID, ASK)
    for coid, (otype, price, qty, _) in CASES.items():
        h.send(intent(coid, price=price, qty=qty, order_type=otype, tif=Tif.GTC if otype != OrderType.MARKET
                      else Tif.IOC))
    got = reasons(h, gate, list(CASES))
    assert got == {coid: reason for coid, (*_, reason) in CASES.items() if reason}
    assert set(gate.desk.blotter.orders.all) == {b"dust"}               # the only order sent
    counters = h.board.snapshot()[0]["counters"]
    assert counters["rejects"] == len(got)


def test_a_passing_order_is_rounded_to_the_grid_never_more_aggressive(harness: Callable[..., Harness]) -> None:
    h = harness()
    gate = ready(h)
    h.mark(BID, ASK)
    h.send(intent("buyr", price=59000.019, qty=0.0123456, tif=Tif.GTC))
    h.send(intent("sellr", side=Side.SELL, price=60999.991, qty=0.001, tif=Tif.GTC))
    events = h.run(gate, lambda seen: sum(e["kind"] == ExecKind.ACK for e in seen) == 2, cycles=10**6)
    assert [ExecKind(e["kind"]) for e in events] == [ExecKind.ACK, ExecKind.ACK]
    orders = gate.desk.blotter.orders.all
    assert (orders[b"buyr"].price, orders[b"buyr"].qty) == (59000.01, 0.01234)
    assert (orders[b"sellr"].price, orders[b"sellr"].qty) == (61000.0, 0.001)
    assert sorted(e["order_qty"] for e in events) == [0.001, 0.01234]


def status(venue: Venue, book: BookStatus) -> np.ndarray:
    rec = np.zeros(1, MARKET_DATA)
    rec["kind"], rec["instrument"], rec["venue"], rec["flags"] = Kind.STATUS, 1, venue, book
    return rec


def test_without_a_valid_fresh_mark_orders_there_get_mark_unavailable_others_trade(
        harness: Callable[..., Harness]) -> None:
    h = harness(risk__mark_max_age_ms="50")
    gate = ready(h)
    h.mark(BID, ASK)
    h.mark(BID, ASK, venue="okx")
    h.send(intent("before", price=59000.0, qty=0.001, tif=Tif.GTC))
    assert reasons(h, gate, ["before"]) == {}
    h.producers["md.binance"].publish(status(Venue.BINANCE, BookStatus.RESYNCING))
    h.mark(BID, ASK, venue="okx")                                   # okx stays fresh (age limit 50 ms)
    h.send(intent("resync", price=59000.0, qty=0.001, tif=Tif.GTC))
    h.send(intent("okxok", price=59000.0, qty=0.001, tif=Tif.GTC, venue=Venue.OKX))
    assert reasons(h, gate, ["resync", "okxok"]) == {"resync": R.MARK_UNAVAILABLE}
    h.mark(BID, ASK)                                                 # fresh data: binance trades again
    h.send(intent("fresh", price=59000.0, qty=0.001, tif=Tif.GTC))
    assert reasons(h, gate, ["fresh"]) == {}
    time.sleep(0.06)                                                 # then only crossed and 1e15 quotes for > 50 ms
    h.mark(60100.0, 59400.0)
    h.mark(1e15, 1.0000001e15)
    h.mark(BID, ASK, venue="okx")
    h.send(intent("crossed", side=Side.BUY, price=0.0, qty=0.001, order_type=OrderType.MARKET))
    h.send(intent("okxtoo", price=59000.0, qty=0.001, tif=Tif.GTC, venue=Venue.OKX))
    assert reasons(h, gate, ["crossed", "okxtoo"]) == {"crossed": R.MARK_UNAVAILABLE}
    assert gate.state.mark(gate.state.grid.key(Venue.BINANCE, 1)) == (BID + ASK) / 2
    assert h.board.snapshot()[0]["counters"]["bad_quotes"] == 2


def test_a_venue_whose_rules_cannot_be_loaded_keeps_the_gate_closed(make_harness: Callable[..., Harness],
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    closed = "{sim: {rest_url: 'http://127.0.0.1:9', ws_url: 'ws://127.0.0.1:9'}}"   # nothing listens there
    h = make_harness(venues__okx__endpoints=closed)
    gate = h.gate()
    h.mark(BID, ASK)
    h.send(intent("waits", price=59000.0, qty=0.001, tif=Tif.GTC))
    h.run(gate, cycles=50)
    assert not gate._ready and h.seen == []                         # fail closed: the intent waits in its ring
    assert "OKX not reachable" in caplog.text and "filters" in caplog.text
    assert not any(gate.state.rules.loaded[gate.state.grid.key(Venue.OKX, i)] for i in (1, 2))
