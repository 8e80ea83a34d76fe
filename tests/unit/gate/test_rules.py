"""Venue rules and bad numbers at the gate, in paper AND live mode: each has its own reject reason and
nothing is sent; a passing order is rounded to the venue's grid (rules loaded from the simulator's REST,
which is the venue here); without a valid fresh mark orders get MARK_UNAVAILABLE on that venue only."""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from kairos import config
from kairos.gate.agent import GateAgent
from kairos.records import MARKET_DATA, Action, BookStatus, ExecKind, Kind, OrderType, RejectReason, Side, Tif, Venue
from kairos.sim.local import ephemeral, venue_sim
from kairos.sim.server import SimServer

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
    h.run(gate, lambda _: not gate._closed, cycles=10**6)
    assert gate._ready and not gate._closed
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
    counters = h.board.snapshot()[0].counters
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
    assert h.board.snapshot()[0].counters["bad_quotes"] == 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_venue_whose_rules_cannot_be_loaded_is_closed_alone_and_retried(
        make_harness: Callable[..., Harness], caplog: pytest.LogCaptureFixture) -> None:
    """OKX's REST is down: binance trades, OKX intents are rejected NOT_RECONCILED (never sent), status
    says which venue is closed; once OKX answers, the retry opens it and its orders go out."""
    port = free_port()                                               # nothing listens there (yet)
    h = make_harness(venues__okx__endpoints=f"{{sim: {{rest_url: 'http://127.0.0.1:{port}', "
                                            "ws_url: 'ws://127.0.0.1:9'}}")
    gate = h.gate()
    h.mark(BID, ASK)
    h.mark(BID, ASK, venue="okx")
    h.run(gate, lambda _: gate._ready, cycles=10**6)
    h.send(intent("bnb", price=59000.0, qty=0.001, tif=Tif.GTC))
    h.send(intent("okxno", price=59000.0, qty=0.001, tif=Tif.GTC, venue=Venue.OKX))
    assert reasons(h, gate, ["bnb", "okxno"]) == {"okxno": R.NOT_RECONCILED}
    assert set(gate.desk.blotter.orders.all) == {b"bnb"}             # the OKX order was never sent
    assert not any(gate.state.rules.loaded[gate.state.grid.key(Venue.OKX, i)] for i in (1, 2))
    row = h.board.snapshot()[0]
    assert row.state.name == "DEGRADED" and row.counters["closed.okx"] == 1
    assert row.counters["closed.binance"] == 0
    blob = h.blob(gate, lambda b: "binance" in b["venues_reconciled"])
    assert (blob["reconciled"], blob["venues_reconciled"]) == (False, ["binance"])   # restart recovery waits
    assert "OKX not reachable" in caplog.text and "still closed" in caplog.text and "OKX" in caplog.text
    base = config.load(env={})
    sim = ephemeral(base.sim, venues={"okx": {"rest_port": port}}, rate_hz=0.0)
    server = SimServer(dataclasses.replace(base, sim=sim))
    server.start()                                                   # OKX comes back
    try:
        h.run(gate, lambda _: not gate._closed, cycles=10**6)       # retried every second
        assert not gate._closed and gate.desk.reconciled[Venue.OKX]
        h.mark(BID, ASK, venue="okx")
        h.send(intent("okxyes", price=59000.0, qty=0.001, tif=Tif.GTC, venue=Venue.OKX))
        assert reasons(h, gate, ["okxyes"]) == {}
    finally:
        server.close()
    row = h.board.snapshot()[0]
    assert row.state.name == "RUNNING" and row.counters["closed.okx"] == 0
    assert b"okxyes" in gate.desk.blotter.orders.all


def test_a_venue_that_hangs_never_stalls_the_other(make_harness: Callable[..., Harness]) -> None:
    """OKX's address accepts connections and never answers: once binance trades, OKX's start is retried on
    the opener's thread, and binance orders are answered while that start still hangs."""
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(16)
        h = make_harness(execution__http_timeout_s="4", execution__max_retries="0",
                         venues__okx__endpoints=f"{{sim: {{rest_url: 'http://127.0.0.1:{hole.getsockname()[1]}', "
                                                "ws_url: 'ws://127.0.0.1:9'}}")
        gate = h.gate()
        h.mark(BID, ASK)
        h.run(gate, lambda _: gate._ready, cycles=10**6)            # before that, OKX's timeout is waited out here
        h.run(gate, lambda _: gate._opener.busy(Venue.OKX), cycles=10**6)
        assert gate._opener.busy(Venue.OKX) and Venue.OKX in gate._closed
        h.send(intent("during", price=59000.0, qty=0.001, tif=Tif.GTC))
        h.run(gate, lambda _: ExecKind.ACK in h.kinds("during"), cycles=10**6)
        assert ExecKind.ACK in h.kinds("during") and gate._opener.busy(Venue.OKX)   # answered while OKX hangs


def test_cancels_on_a_closed_venue_are_refused_not_sent(make_harness: Callable[..., Harness]) -> None:
    """An open OKX order from the journal, OKX closed at the restart: CANCEL gets CANCEL_REJECT
    NOT_RECONCILED (its executor is not started); CANCEL_ALL leaves it to reconciliation."""
    h = make_harness()
    first = ready(h)
    h.mark(BID, ASK, venue="okx")
    h.send(intent("rest", price=59000.0, qty=0.001, tif=Tif.GTC, venue=Venue.OKX))
    h.run(first, lambda seen: ExecKind.ACK in h.kinds("rest"), cycles=10**6)
    first.on_close()
    h.agents.remove(first)
    h.settings = dataclasses.replace(h.settings, venues={**h.settings.venues, "okx": dataclasses.replace(
        h.settings.venues["okx"], endpoints={"sim": dataclasses.replace(
            h.settings.venues["okx"].endpoints["sim"], rest_url=f"http://127.0.0.1:{free_port()}")})})
    second = h.gate()
    h.run(second, lambda _: second._ready, cycles=10**6)
    assert Venue.OKX in second._closed
    h.send(intent("rest", action=Action.CANCEL, venue=Venue.OKX), ring="manual")
    h.send(intent("all", action=Action.CANCEL_ALL, venue=Venue.OKX, instrument=0), ring="manual")
    h.run(second, lambda _: ExecKind.CANCEL_REJECT in h.kinds("rest"), cycles=10**6)
    reject = [e for e in h.seen if e["kind"] == ExecKind.CANCEL_REJECT][-1]
    assert RejectReason(reject["reason"]) == R.NOT_RECONCILED
    assert not second.desk.blotter.orders.open[b"rest"].cancel_pending      # nothing sent to the venue
