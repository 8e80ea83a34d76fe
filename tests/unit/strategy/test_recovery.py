"""Restart recovery: wait for the gate, cancel the previous run's orders, hand each strategy its nets."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest

from kairos.gate.snapshot import GateStateReader, GateStateWriter
from kairos.gatestate import GateState
from kairos.records import Action, Side, Tif, Venue
from kairos.strategy.api import IntentSink, ManualClock
from kairos.strategy.recovery import Recovery
from tests.unit.strategy import test_arbitrage, test_market_making
from tests.unit.strategy.helpers import T0, bbo, gate_state

B, X = Venue.BINANCE, Venue.OKX
MS = 1_000_000
THIS_RUN = {1: "K01thisrun1", 2: "K02thisrun1"}


class Gate:
    """What the gate's state says, changed by the test between steps."""

    def __init__(self) -> None:
        self.now: GateState | None = None
        self.closed, self.bad = False, 0

    def state(self) -> GateState | None:
        return self.now

    def close(self) -> None:
        self.closed = True


class Seen:
    """A strategy that records what recovery hands it."""

    def __init__(self, strategy_id: int, name: str) -> None:
        self.strategy_id, self.name = strategy_id, name
        self.nets: dict[int, float] | None = None

    def recover(self, nets: dict[int, float], now_ns: int, out: IntentSink) -> None:
        self.nets = nets


def order(cid: str, strategy: int = 1) -> dict[str, Any]:
    return {"client_order_id": cid, "strategy": strategy, "venue_id": int(X), "instrument_id": 1}


def rig() -> tuple[Gate, list[Seen], Recovery, IntentSink]:
    gate, strategies = Gate(), [Seen(1, "arbitrage"), Seen(2, "market_making")]
    return gate, strategies, Recovery(gate, strategies, THIS_RUN, cancel_timeout_s=1.0), IntentSink(ManualClock(T0))


@pytest.mark.parametrize("state", [None, gate_state(reconciled=False), gate_state(age_s=10.0)],
                         ids=["none", "not reconciled", "stale"])
def test_waits_for_a_fresh_state_from_a_reconciled_gate(state: GateState | None) -> None:
    gate, strategies, recovery, sink = rig()
    gate.now = state
    assert not recovery.step(T0, sink) and not recovery.step(T0 + 50 * MS, sink)
    assert strategies[0].nets is None and len(sink) == 0 and not gate.closed


def test_cancels_only_the_previous_runs_orders_once_then_recovers_with_the_nets() -> None:
    gate, strategies, recovery, sink = rig()
    nets = [{"strategy": 1, "instrument_id": 1, "net_quantity": 0.03},
            {"strategy": 2, "instrument_id": 2, "net_quantity": -0.01}]
    gate.now = gate_state(strategies=nets, orders=[
        order("K01oldrun1a"), order("K02oldrun1b", strategy=2), order("K01thisrun15"), order("manual1", 0)])
    assert not recovery.step(T0, sink)
    cancels = sink.take()
    assert list(cancels["client_order_id"]) == [b"K01oldrun1a", b"K02oldrun1b"]
    assert set(cancels["action"]) == {Action.CANCEL} and list(cancels["strategy"]) == [1, 2]
    assert not recovery.step(T0 + 20 * MS, sink) and len(sink) == 0, "each cancel is sent once"
    gate.now = gate_state(strategies=nets, orders=[order("K01thisrun15"), order("manual1", 0)])
    assert recovery.step(T0 + 40 * MS, sink)
    assert strategies[0].nets == {1: 0.03} and strategies[1].nets == {2: -0.01} and gate.closed


def test_orders_still_open_after_the_timeout_are_named_and_recovery_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    gate, strategies, recovery, sink = rig()
    gate.now = gate_state(orders=[order("K01oldrun1a")])
    assert not recovery.step(T0, sink)
    assert not recovery.step(T0 + 900 * MS, sink)
    with caplog.at_level(logging.ERROR):
        assert recovery.step(T0 + 1001 * MS, sink)
    assert "K01oldrun1a" in caplog.text and strategies[0].nets == {} and strategies[1].nets == {}


def test_arbitrage_hedges_a_residual_and_ignores_dust() -> None:
    arb = test_arbitrage.Rig()
    arb.market(bbo(B, 1, 99.9, 100.0, ts=T0), bbo(X, 1, 100.0, 100.1, ts=T0))
    arb.arb.recover({1: 0.00005}, T0, arb.sink)
    assert len(arb.sink) == 0 and arb.arb.stats["recovered"] == 0
    arb.arb.recover({1: -0.004}, T0, arb.sink)
    (hedge,) = arb.sink.take()
    assert (hedge["side"], hedge["venue"], hedge["tif"]) == (Side.BUY, B, Tif.IOC)
    assert hedge["qty"] == pytest.approx(0.004) and hedge["price"] == pytest.approx(100.0 * (1 + 20 / 1e4))
    assert arb.arb.stats["recovered"] == 1 and len(arb.cross(40.0)) == 0, "no new trade while it is hedged"


def test_market_making_starts_from_the_recovered_inventory() -> None:
    mm = test_market_making.Rig(skew_bps_per_unit=500.0)
    mm.mm.recover({1: 0.01}, T0, mm.sink)
    assert mm.mm.inventory[1] == pytest.approx(0.01) and len(mm.sink) == 0
    mm.book()
    t_bid, t_ask, _ = mm.mm.targets(1, mm.clock.now_ns())
    mid = test_market_making.MID
    assert t_bid == pytest.approx(mid * (1 - 10e-4)) and t_ask == pytest.approx(mid * (1 + 0e-4))


def test_a_blob_of_the_wrong_shape_is_never_acted_on_and_waited_out(shm_prefix: str,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """Through the real segment and reader: the typed contract refuses the blob, counted and logged once."""
    writer, reader = GateStateWriter(shm_prefix), GateStateReader(shm_prefix)
    strategies = [Seen(1, "arbitrage")]
    recovery, sink = Recovery(reader, strategies, THIS_RUN, cancel_timeout_s=1.0), IntentSink(ManualClock(T0))
    good = gate_state(orders=[order("K01oldrun1a")])
    try:
        raw = dataclasses.asdict(good) | {"strategies": "nonsense"}
        writer.write(raw)  # type: ignore[arg-type]
        with caplog.at_level(logging.ERROR):
            assert not recovery.step(T0, sink) and not recovery.step(T0 + 20 * MS, sink)
        assert caplog.text.count("wrong shape") == 1 and reader.bad == 2
        assert strategies[0].nets is None and len(sink) == 0, "nothing cancelled from a refused blob"
        writer.write(dataclasses.replace(good, orders=[]))
        assert recovery.step(T0 + 40 * MS, sink) and strategies[0].nets == {}
    finally:
        recovery.close()
        writer.close()
        GateStateReader.unlink(shm_prefix)


@pytest.mark.parametrize("bad", [{"client_order_id": "K01old" + "x" * 40}, {"client_order_id": "K01oldrun\u00e9"},
                                 {"venue_id": 99}, {"instrument_id": -1}], ids=["long", "non-ascii", "venue", "inst"])
def test_an_order_no_cancel_intent_can_carry_is_counted_and_never_sent(bad: dict[str, Any],
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    gate, _, recovery, sink = rig()
    gate.now = gate_state(orders=[order("K01oldrun1a"), order("K01oldrun1b") | bad])
    with caplog.at_level(logging.ERROR):
        assert not recovery.step(T0, sink) and not recovery.step(T0 + 20 * MS, sink)
    (cancel,) = sink.take()
    assert cancel["client_order_id"] == b"K01oldrun1a" and recovery.unusable == 2
    assert caplog.text.count("no cancel intent can carry") == 1
