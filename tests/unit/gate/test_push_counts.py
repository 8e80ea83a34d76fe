"""What the book made of a venue's balance pushes is published: per venue in the gate-state blob
(``balance_pushes``, read by /metrics) and the gate's totals on its status-board row (read by kairosctl status)."""

from __future__ import annotations

from collections.abc import Callable

from kairos.execution.base import BalancePush
from kairos.records import Venue

from .conftest import Harness


class Pushed:
    """A venue's stream sink that hands the gate one batch of balance pushes per duty cycle."""

    def __init__(self, *batches: dict[str, BalancePush]) -> None:
        self._batches = list(batches)

    def take_pushes(self) -> dict[str, BalancePush]:
        return self._batches.pop(0) if self._batches else {}


def test_push_outcomes_reach_the_blob_per_venue_and_the_board_as_totals(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    agent = h.gate()
    h.blob(agent, lambda s: "binance" in s["venues_reconciled"])  # reconciling takes (and drops) earlier pushes
    agent.gate.executors[Venue.BINANCE].stream_sink = Pushed(  # type: ignore[union-attr]
        {"USDT": (5000.0, 0.0, 10), "DOGE": (1.0, 0.0, 10)},      # applied; foreign (no instrument trades DOGE)
        {"USDT": (1.0, 0.0, 5)},                                  # stale: older than the push already kept
        {"BTC": (float("nan"), 0.0, 11)})                         # bad: ignored, logged
    state = h.blob(agent, lambda s: s["balance_pushes"]["binance"]["bad"] == 1)
    assert state["balance_pushes"]["binance"] == {"applied": 1, "held": 0, "stale": 1, "foreign": 1, "bad": 1}
    assert all(n == 0 for venue, counts in state["balance_pushes"].items() if venue != "binance"
               for n in counts.values())
    usdt = next(b for b in state["balances"] if b["venue"] == "binance" and b["asset"] == "USDT")
    assert usdt["free"] + usdt["locked"] == 5000.0
    [row] = [r for r in h.board.snapshot() if r.role == "gate"]
    assert {k: v for k, v in row.counters.items() if k.startswith("push.")} == {
        "push.applied": 1, "push.held": 0, "push.stale": 1, "push.foreign": 1, "push.bad": 1}
