"""A gate abandoned mid-flight (no on_close: what kill -9 leaves) and a new one on the same journal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from kairos.records import ExecKind, OrderState, RejectReason, Tif, Venue

from .conftest import Harness, intent
from .test_desk import has


def ledger_news(h: Harness) -> list[str]:
    path = Path(h.settings.risk.journal_dir) / f"{h.prefix}.paper.binance.jsonl"
    return [e["c"] for e in map(orjson.loads, path.read_bytes().splitlines()) if e["t"] == "N"]


def test_restart_recovers_orders_positions_and_sends_nothing_twice(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    first = h.gate()
    h.mark(100.0, 101.0)
    h.send(intent("p1", qty=0.2))
    h.send(intent("g1", price=100.0, tif=Tif.GTC))
    h.run(first, has(ExecKind.ACK, count=2))
    h.run(first, has(ExecKind.FILL, "p1"))
    last_seq = h.seen[-1]["event_seq"]
    h.send(intent("p1", qty=0.2))                            # a duplicate arriving while the gate is down
    second = h.gate()
    h.run(second, has(ExecKind.REJECT, "p1"))
    k = second.state.grid.key(Venue.BINANCE, 1)
    assert second.state.position[k] == pytest.approx(0.2)
    assert list(second.desk.blotter.orders.open) == [b"g1"]
    assert second.desk.blotter.orders.open[b"g1"].state == OrderState.ACK
    assert second.state.open_orders == 1 and second.state.reserved[second.state.grid.quote_slot[k]] > 0.0
    assert h.seen[-1]["reason"] == RejectReason.DUPLICATE_ORDER and h.seen[-1]["event_seq"] == last_seq + 1
    blob = h.blob(second, lambda b: b["reconciled"])
    assert [o["client_order_id"] for o in blob["orders"]] == ["g1"] and blob["orders"][0]["state"] == OrderState.ACK
    [pos] = blob["positions"]
    assert (pos["venue"], pos["instrument"], pos["quantity"]) == ("binance", "BTC-USDT", pytest.approx(0.2))
    assert pos["avg_price"] == pytest.approx(101.0) and "binance" in blob["executors"]
    [net] = blob["strategies"]                               # what a restarted strategy host recovers from
    assert (net["strategy"], net["instrument"], net["net_quantity"]) == (7, "BTC-USDT", pytest.approx(0.2))
    h.mark(100.0, 101.0)                                     # marks are not persisted: NO_MARK until fresh data
    h.send(intent("p2", qty=0.1))
    h.run(second, has(ExecKind.FILL, "p2"))
    assert ledger_news(h) == ["p1", "g1", "p2"]


def test_order_lost_in_flight_is_rejected_not_reconciled(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(execution__paper_latency_ms="300")
    first = h.gate()
    h.mark(100.0, 101.0)
    h.send(intent("lost", qty=0.1))
    h.run(first, cycles=3)                                   # accepted, journaled, still travelling
    assert first.desk.blotter.orders.open[b"lost"].state == OrderState.NEW
    second = h.gate()
    [event] = h.run(second, has(ExecKind.REJECT, "lost"))
    assert (event["reason"], event["state"]) == (RejectReason.NOT_RECONCILED, OrderState.REJECTED)
    assert second.state.open_orders == 0 and ledger_news(h) == []


def test_fill_the_journal_missed_is_recovered_from_the_venue(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    first = h.gate()
    h.mark(100.0, 101.0)
    h.send(intent("rest", price=100.0, qty=0.3, tif=Tif.GTC))
    h.run(first, has(ExecKind.ACK, "rest"))
    h.mark(99.0, 100.0)
    first._marks_in()                                        # the paper venue fills; the gate dies before draining
    second = h.gate()
    h.run(second, has(ExecKind.FILL, "rest"))
    fill = h.seen[-1]
    assert (fill["qty"], fill["cum_qty"], fill["state"], fill["price"]) == (0.3, 0.3, OrderState.FILLED, 100.0)
    assert fill["fee"] == pytest.approx(100.0 * 0.3 * 10 / 1e4)     # venue fee, pro rata (all of it)
    assert second.state.position[second.state.grid.key(Venue.BINANCE, 1)] == pytest.approx(0.3)
    assert second.state.open_orders == 0


def test_intents_wait_in_the_ring_until_reconciled(make_harness: Callable[..., Harness], shm_prefix: str) -> None:
    h = make_harness(execution__mode="live", venues__binance__api_key="k", venues__binance__api_secret="s",
                     venues__okx__enabled="false",
                     venues__binance__endpoints="{sim: {rest_url: 'http://127.0.0.1:9', ws_url: 'ws://127.0.0.1:9'}}")
    gate = h.gate()
    h.send(intent("waits"))
    h.run(gate, cycles=3)
    assert gate._intents.cursor == -1 and not gate._ready   # venue unreachable: nothing read
    assert h.board.snapshot()[0].state.name == "DEGRADED" and h.seen == []
