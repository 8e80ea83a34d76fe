"""The gate in-process on real rings: intents -> risk -> paper venue -> EXEC_EVENTs, commands, post-trade."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from kairos.records import (
    Action,
    ExecKind,
    IntentFlag,
    OrderState,
    OrderType,
    RejectReason,
    Side,
    Tif,
    TradingState,
    Venue,
)

from .conftest import Harness, intent

FILL, REJECT, STATE = ExecKind.FILL, ExecKind.REJECT, ExecKind.STATE


def has(kind: ExecKind, coid: str = "", count: int = 1) -> Callable[[list[np.void]], bool]:
    def done(events: list[np.void]) -> bool:
        return sum(1 for e in events if e["kind"] == kind and (not coid or e["client_order_id"] == coid.encode())) \
            >= count
    return done


def test_intent_becomes_ack_then_fill_with_origin_and_sequence(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    gate = h.gate()
    h.mark(100.0, 101.0)
    sent = intent("o1", price=101.0, qty=0.1)
    h.send(sent)
    ack, fill = h.run(gate, has(FILL))
    assert (ack["kind"], ack["state"], fill["kind"], fill["state"]) == (ExecKind.ACK, OrderState.ACK, FILL,
                                                                        OrderState.FILLED)
    assert fill["event_seq"] == ack["event_seq"] + 1
    assert ack["ts_origin_ns"] == fill["ts_origin_ns"] == sent["ts_origin_ns"][0]
    assert (fill["price"], fill["qty"], fill["cum_qty"], fill["order_qty"]) == (101.0, 0.1, 0.1, 0.1)
    assert fill["fee"] == pytest.approx(101.0 * 0.1 * 10 / 1e4)
    assert (fill["venue"], fill["instrument"], fill["strategy"], fill["side"]) == (Venue.BINANCE, 1, 7, Side.BUY)
    assert gate.state.position[gate.state.grid.key(Venue.BINANCE, 1)] == pytest.approx(0.1)
    counters = h.board.snapshot()[0].counters
    assert (counters["intents"], counters["orders_sent"], counters["fills"]) == (1, 1, 1)
    assert h.board.snapshot()[0].histograms["gate_latency_ns"].count == 1


def test_risk_reject_carries_reason_and_nothing_reaches_the_venue(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(risk__max_order_qty="0.5")
    gate = h.gate()
    h.mark(100.0, 101.0)
    h.send(intent("big", qty=0.6))
    h.send(intent("far", price=120.0))                      # outside the 200 bps band
    h.send(intent("nomark", venue=Venue.OKX))
    h.send(intent("bad-id"))                                # not alphanumeric
    h.send(intent("noinst", instrument=9))
    events = h.run(gate, has(REJECT, count=5))
    assert [(e["client_order_id"], RejectReason(e["reason"])) for e in events] == [
        (b"big", RejectReason.MAX_ORDER_QTY), (b"far", RejectReason.PRICE_BAND), (b"nomark", RejectReason.NO_MARK),
        (b"bad-id", RejectReason.INVALID_ORDER), (b"noinst", RejectReason.UNKNOWN_INSTRUMENT)]
    assert all(e["state"] == OrderState.REJECTED for e in events)
    h.run(gate, cycles=5)
    paper = gate._executors[Venue.BINANCE]
    assert paper.snapshot().open_orders == [] and paper.query("big", "BTCUSDT") is None
    row = h.board.snapshot()[0].counters
    assert row["orders_sent"] == 0 and row["rejects"] == 5 and row["rej.MAX_ORDER_QTY"] == 1


def test_duplicate_intent_makes_one_order(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    gate = h.gate()
    h.mark(100.0, 101.0)
    h.send(intent("dup1", tif=Tif.GTC, price=100.5))
    h.run(gate, has(ExecKind.ACK, "dup1"))
    h.send(intent("dup1", tif=Tif.GTC, price=100.5))
    events = h.run(gate, has(REJECT, "dup1"))
    dup = events[-1]
    assert (RejectReason(dup["reason"]), OrderState(dup["state"])) == (RejectReason.DUPLICATE_ORDER, OrderState.ACK)
    assert h.kinds("dup1") == [ExecKind.ACK, REJECT]
    assert h.board.snapshot()[0].counters["orders_sent"] == 1


def test_redelivered_intent_is_a_replay_not_a_duplicate(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(risk__max_order_qty="1")
    gate = h.gate()
    h.mark(100.0, 101.0)
    ok, refused = intent("r1"), intent("r2", qty=5.0)
    h.send(ok)
    h.send(refused)
    h.run(gate, has(FILL, "r1"))
    h.send(ok)                                              # the same records again, as after a crash
    h.send(refused)
    h.run(gate, has(REJECT, "r2", count=2))
    h.run(gate, cycles=5)
    assert h.kinds("r1") == [ExecKind.ACK, FILL]            # no second order, no DUPLICATE reject
    assert [RejectReason(e["reason"]) for e in h.seen if e["client_order_id"] == b"r2"] == \
        [RejectReason.MAX_ORDER_QTY] * 2                    # the same decision, sent again
    assert h.board.snapshot()[0].counters["replayed"] == 2


def test_halted_rejects_new_orders_but_cancels_work(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    gate = h.gate()
    h.mark(100.0, 101.0)
    h.send(intent("rest", price=100.0, tif=Tif.GTC))
    h.run(gate, has(ExecKind.ACK, "rest"))
    h.send(intent("", action=Action.SET_STATE, flags=TradingState.HALTED), ring="manual")
    state = h.run(gate, has(STATE))[-1]
    assert state["flags"] == TradingState.HALTED and state["kind"] == STATE
    h.send(intent("late", price=101.0))
    h.send(intent("rest", action=Action.CANCEL), ring="manual")
    h.run(gate, has(ExecKind.CANCELED, "rest"))
    late = [e for e in h.seen if e["client_order_id"] == b"late"]
    assert [(e["kind"], RejectReason(e["reason"])) for e in late] == [(REJECT, RejectReason.TRADING_HALTED)]
    assert h.blob(gate, lambda b: b["trading_state"] == "HALTED")["trading_state_id"] == TradingState.HALTED


def test_set_state_from_the_strategy_ring_is_refused(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    gate = h.gate()
    h.send(intent("", action=Action.SET_STATE, flags=TradingState.HALTED))
    [event] = h.run(gate, has(REJECT))
    assert event["reason"] == RejectReason.INVALID_ORDER and gate.state.trading == TradingState.ACTIVE


def test_reduce_only_state_accepts_only_reducing_orders(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    gate = h.gate()
    h.mark(100.0, 101.0)
    h.send(intent("long", qty=0.3))
    h.run(gate, has(FILL, "long"))
    h.send(intent("", action=Action.SET_STATE, flags=TradingState.REDUCE_ONLY), ring="manual")
    h.send(intent("more", qty=0.1))
    h.send(intent("less", side=Side.SELL, price=100.0, qty=0.2))
    h.send(intent("flip", side=Side.SELL, price=100.0, qty=0.2))   # 0.2 + 0.2 pending > 0.3 long
    h.run(gate, has(FILL, "less"))
    assert h.kinds("more") == [REJECT] and h.kinds("flip") == [REJECT]
    assert [e["reason"] for e in h.seen if e["kind"] == REJECT] == [RejectReason.REDUCE_ONLY] * 2


def test_cancel_unknown_and_cancel_all(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    gate = h.gate()
    h.mark(100.0, 101.0)
    h.send(intent("c1", price=100.0, tif=Tif.GTC))
    h.send(intent("c2", price=99.5, tif=Tif.GTC))
    h.run(gate, has(ExecKind.ACK, count=2))
    h.send(intent("nope", action=Action.CANCEL))
    h.send(intent("", action=Action.CANCEL_ALL, venue=Venue.NONE, instrument=0), ring="manual")
    h.run(gate, has(ExecKind.CANCELED, count=2))
    [nope] = [e for e in h.seen if e["client_order_id"] == b"nope"]
    assert (nope["kind"], nope["reason"], nope["state"]) == (ExecKind.CANCEL_REJECT, RejectReason.UNKNOWN_ORDER,
                                                             OrderState.UNKNOWN)
    assert gate.state.open_orders == 0 and sum(gate.state.reserved) == pytest.approx(0.0)


def test_stop_loss_closes_the_position_reduce_only(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(risk__stop_loss_bps="50")
    gate = h.gate()
    h.mark(100.0, 101.0)
    h.send(intent("entry", qty=0.2))
    h.run(gate, has(FILL, "entry"))
    h.mark(99.9, 100.3)                                     # mid 100.1: -89 bps vs entry 101
    events = h.run(gate, has(FILL, count=2))
    close = events[-1]
    assert close["client_order_id"].startswith(b"KG") and close["side"] == Side.SELL
    assert close["flags"] & IntentFlag.REDUCE_ONLY and close["qty"] == pytest.approx(0.2)
    assert gate.state.position[gate.state.grid.key(Venue.BINANCE, 1)] == pytest.approx(0.0)


def test_daily_loss_limit_halts_with_a_state_event(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(risk__daily_loss_limit="1.0")
    gate = h.gate()
    h.mark(100.0, 101.0)
    h.send(intent("buy", qty=0.5))
    h.run(gate, has(FILL, "buy"))
    h.mark(98.0, 99.0)                                      # 0.5 x (98.5 - 101) = -1.25
    state = h.run(gate, has(STATE))[-1]
    assert state["flags"] == TradingState.HALTED and gate.state.trading == TradingState.HALTED
    h.send(intent("after", side=Side.SELL, price=98.0))
    assert h.run(gate, has(REJECT, "after"))[-1]["reason"] == RejectReason.TRADING_HALTED


def test_market_order_and_balance_check(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(execution__paper_balances="{USDT: 50.0, BTC: 0.0}", risk__max_order_notional="0")
    gate = h.gate()
    h.mark(100.0, 101.0)
    h.send(intent("sell", side=Side.SELL, price=0.0, order_type=OrderType.MARKET))
    h.send(intent("mbuy", price=0.0, qty=0.4, order_type=OrderType.MARKET))
    h.send(intent("toobig", price=101.0, qty=0.6))
    h.run(gate, has(REJECT, count=2))
    h.run(gate, has(FILL, "mbuy"))
    assert [(e["client_order_id"], e["reason"]) for e in h.seen if e["kind"] == REJECT] == [
        (b"sell", RejectReason.INSUFFICIENT_BALANCE), (b"toobig", RejectReason.INSUFFICIENT_BALANCE)]
    blob = h.blob(gate, lambda b: b["counters"]["fills"] == 1)
    usdt = next(b for b in blob["balances"] if b["venue"] == "binance" and b["asset"] == "USDT")
    assert usdt["free"] == pytest.approx(50.0 - 0.4 * 101.0101 * 1.001, rel=1e-6) and usdt["locked"] == 0.0


def test_full_events_ring_holds_intents_back_and_loses_nothing(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(events_capacity=4, rings__block_timeout_ms="5", risk__max_order_qty="0.5")
    gate = h.gate()
    batch = np.concatenate([intent(f"f{i}", qty=1.0) for i in range(10)])   # ten rejects in one ring batch
    h.send(batch)
    for _ in range(5):
        gate.do_work()                                      # the ring takes 4 events, then stays full
    assert gate._intents.cursor == -1                       # the batch is not consumed: it will come back
    assert h.events_in.lag == 4
    h.run(gate, lambda seen: gate._intents.cursor == 9)   # redelivered once the events went out
    events = h.run(gate, cycles=5)
    assert [int(e["event_seq"]) for e in events] == list(range(10))           # no gap, no reuse, in order
    assert sorted(e["client_order_id"] for e in events) == sorted(f"f{i}".encode() for i in range(10))
    assert all(e["reason"] == RejectReason.MAX_ORDER_QTY for e in events)   # each once: the replay re-sent none
    assert h.board.snapshot()[0].counters["replayed"] == 10
