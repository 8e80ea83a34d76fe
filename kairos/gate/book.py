"""Positions, PnL, balances and reservations: the gate's ledger, written into the `RiskState`.

Position per (venue, instrument) is the signed base quantity traded since the journal began, at
average cost; realised PnL (quote, fees included) accrues when a fill shrinks it. Balances are the
venue's totals (free + locked at reconciliation) moved by every fill and replaced by the venue's own
pushes when those are the truth (`kairos.gate.pushes`); an open order reserves what the pre-trade
check priced (``Order.reserved``) until it fills or ends. Daily PnL = today's
realised + the unrealised PnL of every position at the current mark (UTC days).
"""

from __future__ import annotations

from collections.abc import Mapping

from kairos.execution.base import BalancePush
from kairos.gate.orders import Order
from kairos.gate.pushes import Pushes
from kairos.records import Side
from kairos.risk.state import RiskState

EPS = 1e-12
_BUY = int(Side.BUY)  # an IntEnum member read costs ~70 ns: `open` is on the path to the executor
DAY_NS = 86_400 * 10**9


class Book:
    __slots__ = ("day", "entry", "grid", "nets", "pushes", "realised", "realised_day", "s")

    def __init__(self, state: RiskState) -> None:
        self.s = state
        self.grid = state.grid
        self.entry = [0.0] * state.grid.size
        self.realised = [0.0] * state.grid.size
        self.realised_day = 0.0
        self.day = 0
        self.pushes = Pushes(state.grid)
        self.nets: dict[tuple[int, int], float] = {}
        """(strategy, instrument) -> signed base quantity its fills added, over all venues: what a
        restarted strategy must know to hedge a residual it no longer remembers."""

    def reserve_slot(self, order: Order) -> int:
        """Balance slot an order locks: quote for a buy, base for a sell."""
        grid = self.grid
        return grid.quote_slot[order.k] if order.side == Side.BUY else grid.base_slot[order.k]

    def open(self, order: Order) -> None:
        """Count a newly accepted order: open quantity, open-order count, reservation."""
        s, k, leaves = self.s, order.k, order.leaves
        reserved = order.reserved = order.reserve_per_qty * leaves
        if order.side == _BUY:
            s.reserved[self.grid.quote_slot[k]] += reserved
            s.open_buy[k] += leaves
        else:
            s.reserved[self.grid.base_slot[k]] += reserved
            s.open_sell[k] += leaves
        s.open_orders += 1

    def fill(self, order: Order, px: float, qty: float, fee: float, fee_asset: str, wall_ns: int,
             ts_exchange_ns: int = 0) -> None:
        """Move balances and the position; release the reservation this quantity held. ``ts_exchange_ns``:
        the venue's trade time (0: unknown, taken as ``wall_ns``), which tells which pushes include it."""
        s, grid, k = self.s, self.grid, order.k
        release = min(order.reserved, order.reserve_per_qty * qty)
        order.reserved -= release
        s.reserved[self.reserve_slot(order)] -= release
        sign = 1.0 if order.side == Side.BUY else -1.0
        open_qty = s.open_buy if sign > 0 else s.open_sell
        open_qty[k] = max(open_qty[k] - qty, 0.0)
        s.balance[grid.base_slot[k]] += sign * qty
        s.balance[grid.quote_slot[k]] -= sign * qty * px
        fee_slot = grid.asset_slot(order.venue, fee_asset) if fee_asset else grid.quote_slot[k]
        if fee_slot >= 0:
            s.balance[fee_slot] -= fee
        self.pushes.filled((grid.base_slot[k], grid.quote_slot[k], fee_slot), (ts_exchange_ns or wall_ns) // 10**6)
        fee_quote = fee * px if fee_slot == grid.base_slot[k] else fee if fee_slot >= 0 else 0.0
        self.roll(wall_ns)
        self._trade(k, sign * qty, px, fee_quote)
        net = (order.strategy, order.instrument)
        self.nets[net] = self.nets.get(net, 0.0) + sign * qty

    def _trade(self, k: int, signed: float, px: float, fee_quote: float) -> None:
        """Average-cost position update; realised PnL on the part that closes."""
        pos, avg = self.s.position[k], self.entry[k]
        new = pos + signed
        pnl = -fee_quote
        if pos * signed >= 0.0:
            self.entry[k] = (avg * abs(pos) + px * abs(signed)) / abs(new) if abs(new) > EPS else 0.0
        else:
            closed = min(abs(signed), abs(pos))
            pnl += closed * (px - avg) * (1.0 if pos > 0.0 else -1.0)
            if abs(new) <= EPS:
                new, self.entry[k] = 0.0, 0.0
            elif new * pos < 0.0:
                self.entry[k] = px
        self.s.position[k] = new
        self.realised[k] += pnl
        self.realised_day += pnl

    def close(self, order: Order) -> None:
        """An order ended: release what it still reserved and its unfilled quantity."""
        s = self.s
        s.reserved[self.reserve_slot(order)] -= order.reserved
        order.reserved = 0.0
        open_qty = s.open_buy if order.side == Side.BUY else s.open_sell
        open_qty[order.k] = max(open_qty[order.k] - order.leaves, 0.0)
        s.open_orders -= 1

    def restore(self, keys: Mapping[int, tuple[float, float, float]], realised_day: float, day: int,
                nets: Mapping[tuple[int, int], float]) -> None:
        """Positions, average costs, realised PnL and strategy nets from a compacted journal (`kairos.gate.compact`)."""
        for k, (position, entry, realised) in keys.items():
            self.s.position[k], self.entry[k], self.realised[k] = position, entry, realised
        self.realised_day, self.day = realised_day, day
        self.nets = dict(nets)

    def set_balances(self, venue: int, balances: Mapping[str, tuple[float, float]]) -> None:
        """Totals from the venue (free + locked) for every asset the instruments trade."""
        grid, balance = self.grid, self.s.balance
        for index, asset in enumerate(grid.assets):
            free, locked = balances.get(asset, (0.0, 0.0))
            balance[grid.slot(venue, index)] = free + locked
        self.pushes.reset(venue)

    def settle(self, venue: int, pushed: Mapping[str, BalancePush]) -> int:
        """After a batch of the venue's reports: take its new pushes, apply those that are now the truth."""
        if pushed:
            self.pushes.pushed(venue, pushed)
        return self.pushes.settle(self.s.balance)

    def refresh_gross(self) -> None:
        """Gross exposure = sum of |position| x mark (recomputed: a handful of keys, no drift)."""
        s = self.s
        s.gross = sum(abs(p) * s.mark(k) for k, p in enumerate(s.position) if p)

    def unrealised_at(self, k: int) -> float:
        """Unrealised PnL of one position at the current mark (0 without a mark)."""
        mark = self.s.mark(k)
        return self.s.position[k] * (mark - self.entry[k]) if mark else 0.0

    def unrealised(self) -> float:
        return sum(self.unrealised_at(k) for k, p in enumerate(self.s.position) if p)

    def roll(self, wall_ns: int) -> None:
        """Start a new UTC day: today's realised PnL restarts at zero."""
        day = wall_ns // DAY_NS
        if day != self.day:
            self.day = day
            self.realised_day = 0.0
