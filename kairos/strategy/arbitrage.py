"""Cross-exchange arbitrage: buy the cheap ask and sell the rich bid when the gap pays both taker fees.

Fires when ``(bid_sell / ask_buy - 1) * 1e4 > taker_fee_buy + taker_fee_sell + min_edge_bps`` on two
tradeable books, with two IOC LIMIT legs sized ``min(ask size, bid size, max_qty, limits)``. A gross
edge above ``max_edge_bps`` is a data error (a 1e15 or 1e-8 quote on one venue), not an opportunity:
that pair is skipped, counted ``bad_edge`` and logged at most once per 10 s; a hedge waits
(deferred) while two books are that far apart.

Leg-risk policy (docs/STRATEGIES.md): one trade per instrument at a time. When both legs are done,
or ``leg_timeout_ms`` has passed (pending legs then get a CANCEL), a net residual of at least
``min_qty`` is a leg failure: it is logged, counted and hedged with an IOC on the venue with the best
price for it, ``hedge_slippage_bps`` through the touch. A hedge that leaves a residual is retried;
after ``max_hedge_attempts`` the instrument stops arbitraging and an ERROR names the open residual.
Nothing new is fired on an instrument while a trade or hedge on it is outstanding.

Closed venues (``open_venues[venue]`` False: the gate has not reconciled it, `kairos.strategy.venues`)
are never traded: a pair involving one is not fired (counted ``venue_closed``, logged rate-limited),
and a hedge goes to the best open venue. A hedge with no open, tradeable book waits, at most
``HEDGE_WAIT_NS``; then the instrument halts as if its attempts were exhausted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from kairos.config import ArbitrageConfig
from kairos.logs import ErrorTally
from kairos.records import ExecKind, OrderType, Side, Tif
from kairos.strategy.api import (
    NO_LIMITS,
    Clock,
    ExecUpdate,
    IntentSink,
    MarketView,
    OrderIds,
    OrderLimits,
    exec_updates,
    is_terminal,
)
from kairos.strategy.book import Top
from kairos.strategy.venues import ALL_OPEN

log = logging.getLogger(__name__)

ARBITRAGE_ID: Final = 1
# Plain ints on the fire path: an IntEnum member read costs ~70 ns, eight per pair of legs.
_BUY, _SELL, _LIMIT, _IOC = int(Side.BUY), int(Side.SELL), int(OrderType.LIMIT), int(Tif.IOC)
COUNTERS: Final = ("fired", "too_small", "completed", "missed", "leg_failures", "leg_timeouts", "hedges_sent",
                   "hedges_filled", "hedges_failed", "hedges_deferred", "hedges_abandoned", "dust",
                   "unknown_events", "recovered", "bad_edge", "venue_closed")
BOARD: Final = ("fired", "bad_edge", "venue_closed", "leg_failures", "hedges_sent", "hedges_filled",
                 "hedges_failed", "hedges_abandoned")
IDS_AHEAD: Final = 16
"""Client order ids made ahead on the timer and on exec events, off the market-data path (8 pairs)."""
HEDGE_WAIT_NS: Final = 30_000_000_000
"""How long a residual may wait for an open, tradeable book before the instrument halts (ERROR)."""


@dataclass(slots=True)
class Leg:
    cid: bytes
    venue: int
    side: int
    qty: float
    hedge: bool = False
    filled: float = 0.0
    done: bool = False

    def apply(self, u: ExecUpdate) -> None:
        if u.kind == ExecKind.FILL:
            self.filled = max(self.filled, u.cum_qty if u.cum_qty > 0.0 else self.filled + u.qty)
        self.done = self.done or is_terminal(u)


@dataclass(slots=True)
class Trade:
    instrument: int
    deadline_ns: int
    legs: list[Leg] = field(default_factory=list)
    hedges: int = 0
    failed: bool = False
    timed_out: bool = False
    deferred_ns: int = 0
    """When the hedge started waiting for a book (0: not waiting)."""

    def exposure(self) -> float:
        """Net base-asset position the trade has left: buys minus sells, hedges included."""
        return sum(leg.filled if leg.side == Side.BUY else -leg.filled for leg in self.legs)

    def describe(self) -> str:
        return " ".join(f"{leg.cid.decode()}:{Side(leg.side).name}@{leg.venue} {leg.filled:g}/{leg.qty:g}"
                        + ("" if leg.done else "(open)") for leg in self.legs)


class CrossArbitrage:
    """Pure strategy: reads the shared MarketView, writes IOC legs and hedges, tracks them by exec events."""

    strategy_id: int = ARBITRAGE_ID
    name: str = "arbitrage"

    def __init__(self, cfg: ArbitrageConfig, fees_bps: dict[int, float], venues: dict[int, tuple[int, ...]],
                 view: MarketView, ids: OrderIds, clock: Clock, limits: OrderLimits = NO_LIMITS,
                 open_venues: Sequence[bool] = ALL_OPEN) -> None:
        self._cfg, self._fees, self._open = cfg, fees_bps, open_venues
        self._view, self._ids, self._clock, self._limits = view, ids, clock, limits
        self._instruments = tuple(i for i, vs in venues.items() if len(vs) >= 2)
        self._tops = {i: [(v, view.top(v, i)) for v in vs] for i, vs in venues.items()}
        self._pairs = {i: [(buy, a, sell, b, fees_bps[buy], fees_bps[sell]) for buy, a in tops for sell, b in tops
                           if buy != sell] for i, tops in self._tops.items()}
        """Per instrument, every (buy venue, its book, sell venue, its book, their fees): built once."""
        self._max_age = cfg.max_book_age_ms * 1_000_000
        self._leg_timeout = cfg.leg_timeout_ms * 1_000_000
        self._cooldown = cfg.cooldown_ms * 1_000_000
        self._next_ok = dict.fromkeys(self._instruments, 0)
        self._active: dict[int, Trade] = {}
        self._by_cid: dict[bytes, Trade] = {}
        self.halted: set[int] = set()
        self.stats = dict.fromkeys(COUNTERS, 0)
        self._tally = ErrorTally(log)

    def counters(self) -> dict[str, int]:
        """The status-board subset (a row holds 32 counters); ``stats`` has them all."""
        return {f"arb_{k}": self.stats[k] for k in BOARD}

    def on_market(self, batch: np.ndarray, out: IntentSink) -> None:
        touched, now, active, halted = self._view.touched, self._clock.now_ns(), self._active, self.halted
        for inst in self._instruments:
            if inst in touched and now >= self._next_ok[inst] and inst not in active and inst not in halted:
                self._check(inst, now, out)

    def on_event(self, events: np.ndarray, out: IntentSink) -> None:
        self._ids.prepare(IDS_AHEAD)
        now = self._clock.now_ns()
        for u in exec_updates(events):
            trade = self._by_cid.get(u.cid)
            if trade is None:
                self.stats["unknown_events"] += 1
                continue
            leg = next(leg for leg in trade.legs if leg.cid == u.cid)
            was_done = leg.done
            leg.apply(u)
            if leg.hedge and leg.done and not was_done:
                self._hedge_outcome(trade, leg)
            self._review(trade, now, out)

    def on_timer(self, now_ns: int, out: IntentSink) -> None:
        self._ids.prepare(IDS_AHEAD)
        for trade in list(self._active.values()):
            self._review(trade, now_ns, out)

    def recover(self, nets: dict[int, float], now_ns: int, out: IntentSink) -> None:
        """A residual the previous run left (its legs' fills do not net out) becomes a trade to hedge."""
        for inst in self._instruments:
            net = nets.get(inst, 0.0)
            if abs(net) < self._cfg.min_qty:
                continue
            self.stats["recovered"] += 1
            log.warning("arb instrument %d: a previous run left a residual of %+.8f: hedging it", inst, net)
            trade = Trade(inst, now_ns)
            trade.legs.append(Leg(b"recovered", 0, Side.BUY if net > 0 else Side.SELL, abs(net), filled=abs(net),
                                  done=True))
            self._active[inst] = trade
            self._review(trade, now_ns, out)

    def _check(self, inst: int, now: int, out: IntentSink) -> None:
        pair = self._best_pair(inst, now)
        if pair is None:
            return
        (buy, a), (sell, b) = pair
        qty = self._limits.cap(min(a.ask_qty, b.bid_qty, self._cfg.max_qty), a.ask)
        if qty < self._cfg.min_qty:
            self.stats["too_small"] += 1
            return
        origin, ids, sid = max(a.ts_recv, b.ts_recv), self._ids, self.strategy_id
        buy_id, sell_id = ids.next(), ids.next()
        # Both intents first, then the bookkeeping: the second leg is stamped (and published) no later than it must.
        out.new(sid, buy_id, buy, inst, _BUY, _LIMIT, _IOC, a.ask, qty, origin)
        out.new(sid, sell_id, sell, inst, _SELL, _LIMIT, _IOC, b.bid, qty, origin)
        trade = Trade(inst, now + self._leg_timeout, [Leg(buy_id, buy, _BUY, qty), Leg(sell_id, sell, _SELL, qty)])
        self._by_cid[buy_id] = self._by_cid[sell_id] = trade
        self._active[inst] = trade
        self._next_ok[inst] = now + self._cooldown
        self.stats["fired"] += 1

    def _live(self, inst: int, now: int) -> list[tuple[int, Top]]:
        """(venue, book) for every tradeable book of ``inst``."""
        return [vt for vt in self._tops[inst] if vt[1].tradeable(now, self._max_age)]

    def _best_pair(self, inst: int, now: int) -> tuple[tuple[int, Top], tuple[int, Top]] | None:
        """(buy venue, its book), (sell venue, its book) of two open venues with the largest edge beyond
        fees + min_edge_bps and not beyond max_edge_bps; a better pair with a closed venue is counted only
        when no open pair fires (the open flags are read only once a pair would fire)."""
        min_edge, max_edge, is_open, age = self._cfg.min_edge_bps, self._cfg.max_edge_bps, self._open, self._max_age
        best, margin, closed = None, 0.0, None
        for buy, a, sell, b, fee_buy, fee_sell in self._pairs[inst]:  # the edge first: books only where it counts
            ask = a.ask
            if not ask > 0.0:  # no book (NaN), or a bad one: not tradeable anyway
                continue
            edge = (b.bid / ask - 1.0) * 1e4
            m = edge - fee_buy - fee_sell - min_edge
            if (edge > max_edge or m > margin) and a.tradeable(now, age) and b.tradeable(now, age):
                if edge > max_edge:
                    self._bad_edge(inst, buy, a, sell, b, edge)
                elif is_open[buy] and is_open[sell]:
                    best, margin = ((buy, a), (sell, b)), m
                else:
                    closed = (buy, sell)
        if best is None and closed is not None:
            self._venue_closed(inst, *closed)
        return best

    def _venue_closed(self, inst: int, buy: int, sell: int) -> None:
        self.stats["venue_closed"] += 1
        self._tally(f"arb instrument {inst}: opportunity not traded, a venue is closed by the gate",
                    f"buy on venue {buy} (open: {self._open[buy]}), sell on venue {sell} (open: {self._open[sell]})")

    def _bad_edge(self, inst: int, buy: int, a: Top, sell: int, b: Top, edge: float) -> None:
        self.stats["bad_edge"] += 1
        self._tally(f"arb instrument {inst}: edge above max_edge_bps {self._cfg.max_edge_bps:g} is bad data, "
                    "not traded", f"{edge:.0f} bps: ask {a.ask!r} on venue {buy}, bid {b.bid!r} on venue {sell}")

    def _send_hedge(self, trade: Trade, out: IntentSink, venue: int, side: int, price: float, qty: float,
                    now: int) -> None:
        """A hedge leg of ``trade`` (the pair's two legs are written together in `_check`)."""
        cid = self._ids.next()
        out.new(self.strategy_id, cid, venue, trade.instrument, side, _LIMIT, _IOC, price, qty, now)
        trade.legs.append(Leg(cid, venue, side, qty, hedge=True))
        self._by_cid[cid] = trade

    def _review(self, trade: Trade, now: int, out: IntentSink) -> None:
        """Decide what a trade needs: wait, time out its legs, hedge its residual, or close it."""
        pending = [leg for leg in trade.legs if not leg.done]
        if pending and now < trade.deadline_ns:
            return
        if pending and not trade.timed_out:
            self._time_out(trade, pending, now, out)
        if any(leg.hedge for leg in pending):
            return  # a hedge's outcome is unknown: never stack a second one on it
        exposure = trade.exposure()
        if abs(exposure) >= self._cfg.min_qty:
            self._hedge(trade, exposure, now, out)
        elif not pending:
            self._close(trade, exposure)

    def _time_out(self, trade: Trade, pending: list[Leg], now: int, out: IntentSink) -> None:
        trade.timed_out = True
        self.stats["leg_timeouts"] += len(pending)
        log.warning("arb instrument %d: %d leg(s) without outcome after %d ms, cancelling: %s",
                    trade.instrument, len(pending), self._cfg.leg_timeout_ms, trade.describe())
        for leg in pending:
            out.cancel(self.strategy_id, leg.cid, leg.venue, trade.instrument, now)

    def _hedge(self, trade: Trade, exposure: float, now: int, out: IntentSink) -> None:
        if not trade.failed:
            trade.failed = True
            self.stats["leg_failures"] += 1
            log.warning("arb leg failure instrument %d residual %+.8f: %s", trade.instrument, exposure,
                        trade.describe())
        if trade.hedges >= self._cfg.max_hedge_attempts:
            self._abandon(trade, exposure)
            return
        side = Side.SELL if exposure > 0 else Side.BUY
        target = self._hedge_target(trade.instrument, side, now)
        if target is None:
            self._defer(trade, exposure, now)
            return
        venue, price = target
        self._send_hedge(trade, out, venue, side, price, abs(exposure), now)
        trade.hedges, trade.deadline_ns, trade.timed_out, trade.deferred_ns = trade.hedges + 1, \
            now + self._leg_timeout, False, 0
        self.stats["hedges_sent"] += 1
        log.warning("arb hedge #%d instrument %d: %s %.8f on venue %d limit %.8f", trade.hedges,
                    trade.instrument, side.name, abs(exposure), venue, price)

    def _defer(self, trade: Trade, exposure: float, now: int) -> None:
        """No book to hedge on: wait (retried every timer tick), at most HEDGE_WAIT_NS, then halt."""
        if not trade.deferred_ns:
            trade.deferred_ns = now
            self.stats["hedges_deferred"] += 1
            closed = [v for v, _ in self._tops[trade.instrument] if not self._open[v]]
            log.warning("arb hedge deferred instrument %d residual %+.8f: no tradeable book on an open venue "
                        "(closed by the gate: %s), or books further apart than max_edge_bps (one is bad data); "
                        "waiting up to %.0f s", trade.instrument, exposure, closed or "none", HEDGE_WAIT_NS / 1e9)
        elif now - trade.deferred_ns >= HEDGE_WAIT_NS:
            log.error("arb instrument %d: no book to hedge on for %.0f s", trade.instrument, HEDGE_WAIT_NS / 1e9)
            self._abandon(trade, exposure)

    def _hedge_target(self, inst: int, side: Side, now: int) -> tuple[int, float] | None:
        """Best open venue for the hedge (highest bid to sell, lowest ask to buy) and a marketable limit;
        None without a tradeable book on an open venue or while two books are further apart than
        max_edge_bps (which one is bad is unknown: hedging on it would trade at a bad-data price)."""
        slip, max_edge, is_open = self._cfg.hedge_slippage_bps / 1e4, self._cfg.max_edge_bps, self._open
        books = self._live(inst, now)
        live = [vt for vt in books if is_open[vt[0]]]
        if not live or any((b.bid / a.ask - 1.0) * 1e4 > max_edge for _, a in books for _, b in books):
            return None
        if side == Side.SELL:
            venue, top = max(live, key=lambda vt: vt[1].bid)
            return venue, top.bid * (1.0 - slip)
        venue, top = min(live, key=lambda vt: vt[1].ask)
        return venue, top.ask * (1.0 + slip)

    def _hedge_outcome(self, trade: Trade, leg: Leg) -> None:
        ok = leg.filled >= leg.qty - self._cfg.min_qty
        self.stats["hedges_filled" if ok else "hedges_failed"] += 1
        log.warning("arb hedge %s instrument %d %s: filled %.8f of %.8f", leg.cid.decode(), trade.instrument,
                    "filled" if ok else "FAILED", leg.filled, leg.qty)

    def _abandon(self, trade: Trade, exposure: float) -> None:
        self.stats["hedges_abandoned"] += 1
        self.halted.add(trade.instrument)
        log.error("arb instrument %d HALTED: residual %+.8f still open after %d hedge attempts: %s",
                  trade.instrument, exposure, trade.hedges, trade.describe())
        self._forget(trade)

    def _close(self, trade: Trade, exposure: float) -> None:
        if abs(exposure) > 1e-12:
            self.stats["dust"] += 1
            log.warning("arb instrument %d closed with dust residual %+.10f below min_qty", trade.instrument,
                        exposure)
        if trade.failed:
            log.warning("arb instrument %d leg failure resolved after %d hedge(s)", trade.instrument, trade.hedges)
        else:
            self.stats["completed" if any(leg.filled for leg in trade.legs) else "missed"] += 1
        self._forget(trade)

    def _forget(self, trade: Trade) -> None:
        for leg in trade.legs:
            self._by_cid.pop(leg.cid, None)
        self._active.pop(trade.instrument, None)
