"""Market making: one post-only bid and ask per instrument around mid or microprice, skewed by inventory.

Quotes: ``fair * (1 + (shift -/+ spread_bps / 2) / 1e4)`` with ``shift = -skew_bps_per_unit * inventory``
(long inventory lowers both quotes so the ask fills first). A quote that would cross the book joins
the touch instead. A side whose fill would take ``|inventory|`` beyond ``max_inventory`` is not quoted.

Each side is a small state machine driven by exec events (never by assumption)::

    IDLE --new--> PENDING_NEW --ack/fill--> LIVE --moved > requote_bps / pulled--> PENDING_CANCEL
      ^               | reject (wait reject_backoff_ms)                                  |
      +---------------+--------------- canceled / expired / filled ---------------------+

Cancel/replace is cancel first, then a new order once the CANCELED event arrives, so a side never
has two orders resting. Inventory changes only on FILL events (by ``cum_qty``, so a repeat is harmless).

While the gate has the venue closed (``open_venues[venue]`` False, `kairos.strategy.venues`) nothing is
quoted there (counted ``venue_closed``, logged rate-limited) and live quotes are pulled; a cancel the
gate refuses NOT_RECONCILED is retried after ``reject_backoff_ms``, not on every tick.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

import numpy as np

from kairos.config import MarketMakingConfig
from kairos.logs import ErrorTally
from kairos.records import ExecKind, OrderType, RejectReason, Side, Tif
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
from kairos.strategy.venues import ALL_OPEN

log = logging.getLogger(__name__)

MARKET_MAKING_ID: Final = 2
EPS: Final = 1e-9
COUNTERS: Final = ("quotes", "requotes", "pulls", "fills", "rejects", "cancel_rejects", "unknown_events",
                   "venue_closed")
BOARD: Final = ("quotes", "fills", "rejects", "venue_closed")
_NOT_RECONCILED: Final = int(RejectReason.NOT_RECONCILED)


class QuoteState(IntEnum):
    IDLE = 0
    PENDING_NEW = 1
    LIVE = 2
    PENDING_CANCEL = 3


@dataclass(slots=True)
class Quote:
    side: Side
    cid: bytes = b""
    price: float = 0.0
    state: QuoteState = QuoteState.IDLE
    retry_ns: int = 0


class MarketMaker:
    """Pure strategy: quotes one venue's instruments from the shared MarketView."""

    strategy_id: int = MARKET_MAKING_ID
    name: str = "market_making"

    def __init__(self, cfg: MarketMakingConfig, venue: int, instruments: tuple[int, ...], view: MarketView,
                 ids: OrderIds, clock: Clock, limits: OrderLimits = NO_LIMITS,
                 open_venues: Sequence[bool] = ALL_OPEN) -> None:
        self._cfg, self._venue, self._instruments, self._open = cfg, venue, instruments, open_venues
        self._view, self._ids, self._clock, self._limits = view, ids, clock, limits
        self._max_age = cfg.max_book_age_ms * 1_000_000
        self._tops = {i: view.top(venue, i) for i in instruments}
        self.quotes = {i: (Quote(Side.BUY), Quote(Side.SELL)) for i in instruments}
        self.inventory = dict.fromkeys(instruments, 0.0)
        self._owner: dict[bytes, tuple[int, Quote]] = {}
        self._cum: dict[bytes, float] = {}
        self.stats = dict.fromkeys(COUNTERS, 0)
        self._tally = ErrorTally(log)

    def counters(self) -> dict[str, int]:
        """The status-board subset (a row holds 32 counters); ``stats`` has them all."""
        stats = self.stats
        return {"mm_cancels": stats["requotes"] + stats["pulls"], **{f"mm_{k}": stats[k] for k in BOARD}}

    def on_market(self, batch: np.ndarray, out: IntentSink) -> None:
        touched, now = self._view.touched, self._clock.now_ns()
        for inst in self._instruments:
            if inst in touched:
                self._requote(inst, now, out)

    def on_event(self, events: np.ndarray, out: IntentSink) -> None:
        now, changed = self._clock.now_ns(), set()
        for u in exec_updates(events):
            owner = self._owner.get(u.cid)
            if owner is None:
                self.stats["unknown_events"] += 1
                continue
            self._apply(owner[0], owner[1], u, now)
            changed.add(owner[0])
        for inst in changed:
            self._requote(inst, now, out)

    def on_timer(self, now_ns: int, out: IntentSink) -> None:
        for inst in self._instruments:
            self._requote(inst, now_ns, out)

    def recover(self, nets: dict[int, float], now_ns: int, out: IntentSink) -> None:
        """The previous run's fills are this run's starting inventory (its quotes were cancelled)."""
        for inst in self._instruments:
            self.inventory[inst] = nets.get(inst, 0.0)

    def targets(self, inst: int, now: int) -> tuple[float | None, float | None, float]:
        """Desired (bid, ask) prices (None: do not quote that side) and the order size."""
        top, cfg = self._tops[inst], self._cfg
        if not top.tradeable(now, self._max_age):
            return None, None, 0.0
        bid, ask, bq, aq = top.bid, top.ask, top.bid_qty, top.ask_qty
        fair = (bid * aq + ask * bq) / (bq + aq) if cfg.use_microprice and bq + aq > 0.0 else (bid + ask) / 2
        inv = self.inventory[inst]
        shift, half = -cfg.skew_bps_per_unit * inv, cfg.spread_bps / 2
        q_bid, q_ask = fair * (1 + (shift - half) / 1e4), fair * (1 + (shift + half) / 1e4)
        q_bid, q_ask = (bid if q_bid >= ask else q_bid), (ask if q_ask <= bid else q_ask)
        size = self._limits.cap(cfg.size, fair)
        can_buy, can_sell = inv + size <= cfg.max_inventory + EPS, inv - size >= -cfg.max_inventory - EPS
        return (q_bid if can_buy else None), (q_ask if can_sell else None), size

    def _requote(self, inst: int, now: int, out: IntentSink) -> None:
        bid_q, ask_q = self.quotes[inst]
        target_bid, target_ask, size = self.targets(inst, now)
        if not self._open[self._venue] and (target_bid is not None or target_ask is not None):
            self._venue_closed(inst, target_bid is not None and bid_q.state == QuoteState.IDLE,
                               target_ask is not None and ask_q.state == QuoteState.IDLE)
            target_bid = target_ask = None
        origin = self._tops[inst].ts_recv
        self._steer(inst, bid_q, target_bid, size, now, origin, out)
        self._steer(inst, ask_q, target_ask, size, now, origin, out)

    def _venue_closed(self, inst: int, bid_held: bool, ask_held: bool) -> None:
        """Quotes not placed because the gate has the venue closed: counted, logged rate-limited."""
        held = bid_held + ask_held
        if held:
            self.stats["venue_closed"] += held
            self._tally(f"mm instrument {inst}: quote not placed, venue {self._venue} is closed by the gate",
                        f"{held} side(s) held back")

    def _steer(self, inst: int, q: Quote, target: float | None, size: float, now: int, origin: int,
               out: IntentSink) -> None:
        if q.state == QuoteState.LIVE and now >= q.retry_ns:
            if target is None or abs(target - q.price) > q.price * self._cfg.requote_bps / 1e4:
                out.cancel(self.strategy_id, q.cid, self._venue, inst, origin)
                q.state = QuoteState.PENDING_CANCEL
                self.stats["pulls" if target is None else "requotes"] += 1
        elif q.state == QuoteState.IDLE and target is not None and now >= q.retry_ns:
            cid = self._ids.next()
            out.new(self.strategy_id, cid, self._venue, inst, q.side, OrderType.LIMIT_MAKER, Tif.GTC, target,
                    size, origin)
            q.cid, q.price, q.state = cid, target, QuoteState.PENDING_NEW
            self._owner[cid] = (inst, q)
            self.stats["quotes"] += 1

    def _apply(self, inst: int, q: Quote, u: ExecUpdate, now: int) -> None:
        if u.kind == ExecKind.FILL:
            self._fill(inst, q, u)
        gone = is_terminal(u) or (u.kind == ExecKind.CANCEL_REJECT and u.reason == RejectReason.UNKNOWN_ORDER)
        if gone:
            del self._owner[u.cid]
            self._cum.pop(u.cid, None)
            q.state = QuoteState.IDLE
            if u.kind == ExecKind.REJECT:
                q.retry_ns = now + self._cfg.reject_backoff_ms * 1_000_000
                self.stats["rejects"] += 1
        elif u.kind in (ExecKind.ACK, ExecKind.FILL) and q.state == QuoteState.PENDING_NEW:
            q.state = QuoteState.LIVE
        elif u.kind == ExecKind.CANCEL_REJECT and q.state == QuoteState.PENDING_CANCEL:
            q.state = QuoteState.LIVE
            self.stats["cancel_rejects"] += 1
            if u.reason == _NOT_RECONCILED:  # the venue is closed: asking again at once would churn
                q.retry_ns = now + self._cfg.reject_backoff_ms * 1_000_000

    def _fill(self, inst: int, q: Quote, u: ExecUpdate) -> None:
        prev = self._cum.get(u.cid, 0.0)
        cum = u.cum_qty if u.cum_qty > 0.0 else prev + u.qty
        if cum <= prev:
            return
        self._cum[u.cid] = cum
        self.inventory[inst] += (cum - prev) if q.side == Side.BUY else -(cum - prev)
        self.stats["fills"] += 1
