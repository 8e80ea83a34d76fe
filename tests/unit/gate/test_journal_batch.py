"""Write-ahead for a batch of intents: each order is journaled before it is sent, a pair whose journal
cannot be written sends neither leg, a command in a batch acts after the orders before it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson

from kairos.records import Action, ExecKind, RejectReason, Side, Tif, TradingState, Venue
from tests.service.tmpfs import small_disk

from .conftest import Harness, intent
from .test_desk import has
from .test_journal_disk_full import exhaust, fill

__all__ = ["small_disk"]


def journaled(h: Harness) -> list[str]:
    path = Path(h.settings.risk.journal_dir) / f"{h.prefix}.gate.jsonl"
    return [e["c"] for e in map(orjson.loads, path.read_bytes().splitlines()) if e["t"] == "A"]


def calls(h: Harness, gate: object) -> list[tuple[str, str, list[str]]]:
    """What the Binance paper executor is asked, in order, with the orders journaled at that moment."""
    seen: list[tuple[str, str, list[str]]] = []
    paper = gate._executors[Venue.BINANCE]  # type: ignore[attr-defined]
    submit, cancel = paper.submit, paper.cancel
    paper.submit = lambda req: (seen.append(("submit", req.client_order_id, journaled(h))), submit(req))[1]
    paper.cancel = lambda coid, *a: (seen.append(("cancel", coid, journaled(h))), cancel(coid, *a))[1]
    return seen


def test_each_leg_of_a_pair_is_journaled_before_it_is_sent_and_replays(
        make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    gate = h.gate()
    h.mark(100.0, 101.0)
    seen = calls(h, gate)
    h.send(np.concatenate([intent("leg1", Side.BUY, 101.0), intent("leg2", Side.SELL, 100.0)]))
    h.run(gate, has(ExecKind.FILL, count=2))
    assert [(what, coid) for what, coid, _ in seen] == [("submit", "leg1"), ("submit", "leg2")]
    assert seen[0][2][-1:] == ["leg1"] and seen[1][2][-2:] == ["leg1", "leg2"], "each entry before its send"
    restarted = h.gate()
    assert {b"leg1", b"leg2"} <= set(restarted.desk.blotter.orders.all)


def test_a_cancel_in_the_batch_goes_out_after_the_order_it_cancels(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    gate = h.gate()
    h.mark(100.0, 101.0)
    seen = calls(h, gate)
    rest = intent("rest", Side.BUY, 99.0, tif=Tif.GTC)
    h.send(np.concatenate([rest, intent("rest", action=Action.CANCEL), intent("next", Side.BUY, 101.0)]))
    h.run(gate, lambda _: h.kinds("rest")[-1:] == [ExecKind.CANCELED] and ExecKind.FILL in h.kinds("next"))
    assert [(what, coid) for what, coid, _ in seen] == [("submit", "rest"), ("cancel", "rest"), ("submit", "next")]


def test_a_pair_that_cannot_be_journaled_sends_neither_leg(
        make_harness: Callable[..., Harness], small_disk: Callable[[str, str], Path]) -> None:
    disk = small_disk("journal", "256k")
    h = make_harness(risk__journal_dir=str(disk))
    gate = h.gate()
    h.mark(100.0, 101.0)
    seen = calls(h, gate)
    filler = fill(disk)
    exhaust(gate.desk.blotter.journal)
    h.send(np.concatenate([intent("nospace1", Side.BUY, 101.0), intent("nospace2", Side.SELL, 100.0)]))
    h.run(gate, has(ExecKind.REJECT, count=2))
    assert not seen, "nothing sent"
    for coid in ("nospace1", "nospace2"):
        assert [(e["kind"], e["reason"]) for e in h.seen if e["client_order_id"] == coid.encode()] == [
            (ExecKind.REJECT, RejectReason.TRADING_HALTED)]
        assert coid.encode() not in gate.desk.blotter.orders.all
    s = gate.state
    assert not s.open_orders and not any(s.reserved) and not any(s.open_buy) and not any(s.open_sell)
    assert s.trading == TradingState.HALTED and gate.desk.blotter.why.startswith("DISK_FULL")
    filler.unlink()
    assert journaled(h) == []
