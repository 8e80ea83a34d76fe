"""The `strategy` agent: market data and exec events in through one Waiter, order intents out.

Duty cycle (``do_work``)::

    md.binance ─┐ poll ─► MarketView.update ─► strategy.on_market ─┐
    md.okx     ─┘                                                  ├─► IntentSink ─► intents ring
    events ────── poll ─► by strategy id ──► strategy.on_event ────┤
    every TIMER_MS ─────────────────────────► strategy.on_timer ───┘

An overrun on an md ring (we fell a lap behind and the ring dropped records) may have hidden a
STATUS record, so every book of that venue is dropped until fresh data rebuilds it. An intents
batch refused with RingFull is counted, logged (rate-limited) and dropped; its strategies then get
locally made REJECT / CANCEL_REJECT events (reason INTENT_DROPPED), so no leg or quote waits for an
answer that will never come.

Venues the gate has not reconciled are closed to every strategy: on the timer, every
``venues.REFRESH_NS``, the host rewrites the shared per-venue flags from the gate's state blob
(`kairos.strategy.venues`, reading the typed contract of kairos/gatestate.py); strategies check them
with one index, the blob is never read per batch. A blob of the wrong shape counts in ``gate_state_bad``
and closes every venue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

import numpy as np

from kairos.config import Settings
from kairos.errors import RingFull
from kairos.gate.snapshot import GateStateReader
from kairos.instruments import VENUE_NAMES
from kairos.logs import ErrorTally
from kairos.records import EXEC_EVENT, MARKET_DATA, ORDER_INTENT, Action, ExecKind, OrderState, RejectReason
from kairos.ring import GatedPoller, OverwritePoller, Ring, Waiter
from kairos.status import Counter, Slot
from kairos.strategy import build_strategies
from kairos.strategy.api import (
    INTENT_ROW,
    ROW_CREATED,
    ROW_ORIGIN,
    Clock,
    IntentSink,
    LiveClock,
    MarketView,
    Strategy,
    id_prefix,
    new_run_id,
)
from kairos.strategy.recovery import Recovery
from kairos.strategy.venues import OpenVenues

log = logging.getLogger(__name__)

ROLE: Final = "strategy"
MD_LIMIT: Final = 1024
EVENT_LIMIT: Final = 256
TIMER_NS: Final = 20_000_000
SUMMARY_NS: Final = 60_000_000_000
HOST_COUNTERS: Final = ("md_records", "md_overruns", "md_bad", "events", "intents_out", "intents_dropped",
                        "venues_closed", "gate_state_bad")
MdPoller = OverwritePoller | GatedPoller


class StrategyHost:
    """Hosts the enabled strategies; build with `StrategyHost.build`, run with AgentRunner(host, host.idle, slot)."""

    role: str = ROLE

    def __init__(self, strategies: list[Strategy], view: MarketView, clock: Clock, md: dict[int, Ring],
                 events: Ring, intents: Ring, slot: Slot, venues: OpenVenues, wait: str = "block",
                 publish_timeout_s: float = 1.0, recovery: Recovery | None = None, spin_us: int = 0) -> None:
        self._strategies, self._view, self._clock, self._slot = strategies, view, clock, slot
        self.venues = venues
        self._sink = IntentSink(clock)
        self._by_id = [(s.strategy_id, s) for s in strategies]
        self._recovery = recovery
        self._on_market = [] if recovery else [s.on_market for s in strategies]  # filled once recovered
        self._local: list[np.ndarray] = []
        self.stats = dict.fromkeys(HOST_COUNTERS, 0)
        self._counters: dict[str, Counter] = {name: slot.counter(name) for name in HOST_COUNTERS}
        self._decision = slot.histogram("decision_ns")
        self._read_to_out = slot.histogram("read_to_out_ns")
        self._tally = ErrorTally(log)
        self._next_timer = self._next_summary = 0
        self._rings = [*md.values(), events, intents]
        self._md: list[tuple[int, MdPoller]] = [(venue, ring.consumer(ROLE)) for venue, ring in md.items()]
        self._seen_overruns = {venue: c.overruns for venue, c in self._md}
        self._inputs = [(c.poll, self._market_handler(venue, c)) for venue, c in self._md]
        self._events = events.consumer(ROLE)
        self._producer = intents.producer(timeout_s=publish_timeout_s)
        self._waiter = Waiter([c for _, c in self._md] + [self._events], name=ROLE, wait=wait,
                              timeout_s=TIMER_NS / 1e9, spin_us=spin_us)
        self.idle: Callable[[int], None] = self._waiter.idle

    @classmethod
    def build(cls, settings: Settings, slot: Slot, clock: Clock | None = None) -> StrategyHost:
        """Attach the rings the supervisor created (RingNotFound if it has not) and build the strategies."""
        clock = clock or LiveClock()
        prefix, view, run_id = settings.shm_prefix, MarketView(len(settings.instruments)), new_run_id(clock.now_ns())
        venues = OpenVenues(GateStateReader(prefix))
        strategies = build_strategies(settings, view, clock, run_id, venues.flags)
        cfg = settings.strategy
        recovery = Recovery(GateStateReader(prefix), strategies,
                            {s.strategy_id: id_prefix(s.strategy_id, run_id) for s in strategies},
                            cfg.recover_cancel_timeout_s) if cfg.recover_on_start and strategies else None
        rings: list[Ring] = []
        try:
            md = {VENUE_NAMES[name]: Ring.attach(f"md.{name}", MARKET_DATA, prefix=prefix)
                  for name, cfg in sorted(settings.venues.items()) if cfg.enabled}
            rings.extend(md.values())
            events = Ring.attach("events", EXEC_EVENT, prefix=prefix)
            rings.append(events)
            intents = Ring.attach("intents", ORDER_INTENT, prefix=prefix)
            rings.append(intents)
            return cls(strategies, view, clock, md, events, intents, slot, venues, settings.wait_for(ROLE),
                       settings.rings.block_timeout_ms / 1000, recovery, settings.rings.spin_us)
        except BaseException:
            for ring in rings:
                ring.close()
            venues.close()
            if recovery is not None:
                recovery.close()
            raise

    @property
    def recovering(self) -> bool:
        """True until the previous run is settled with the gate (no strategy trades before)."""
        return self._recovery is not None

    def on_start(self) -> None:
        names = ", ".join(s.name for s in self._strategies) or "none (all disabled)"
        log.info("strategy host: strategies %s; md rings %s", names, [v for v, _ in self._md])

    def do_work(self) -> int:
        work = 0
        if self._local:
            work += self._dispatch_events(self._local.pop(0))
        for poll, handler in self._inputs:
            work += poll(handler, MD_LIMIT)
        work += self._events.poll(self._dispatch_events, EVENT_LIMIT)
        now = self._clock.now_ns()
        if now >= self._next_timer:
            self._tick(now)
        return work

    def on_close(self) -> None:
        self._export()
        log.info("strategy host stopping: %s", self._summary())
        if self._recovery is not None:
            self._recovery.close()
        self.venues.close()
        self._waiter.close()
        for ring in self._rings:
            ring.close()

    def _market_handler(self, venue: int, consumer: MdPoller) -> Callable[[np.ndarray], None]:
        """The md batch handler: decide, publish, and only then the bookkeeping (clear, count)."""
        update, clear, sink, now_ns = self._view.update, self._view.clear_touched, self._sink, self._clock.now_ns
        stats, seen, strategies, flush = self.stats, self._seen_overruns, self._on_market, self._flush

        def on_market(batch: np.ndarray) -> None:
            t_read = now_ns()
            if consumer.overruns != seen[venue]:
                self._overrun(venue, consumer)
            update(batch)
            for strategy_on_market in strategies:
                strategy_on_market(batch, sink)
            if len(sink):
                flush(t_read)
            clear()
            stats["md_records"] += len(batch)

        return on_market

    def _dispatch_events(self, events: np.ndarray) -> int:
        """Hand each strategy its own events (the view is valid only during this call)."""
        owner = events["strategy"]
        for sid, strategy in self._by_id:
            mine = events[owner == sid]
            if len(mine):
                strategy.on_event(mine, self._sink)
        self.stats["events"] += len(events)
        if len(self._sink):
            self._flush(0)
        return len(events)

    def _flush(self, t_read: int) -> None:
        """Publish the sink, each intent packed straight into the ring; ``t_read`` > 0 marks intents decided
        on market data (latencies recorded after the publish, from the same tuples)."""
        rows, producer = self._sink.take_rows(), self._producer
        before = producer.published
        try:
            producer.publish_rows(rows, INTENT_ROW)
        except RingFull as exc:
            dropped = np.array(rows[producer.published - before :], ORDER_INTENT)  # over one lap: in pieces
            self._dropped(dropped, exc)
            return
        if t_read:
            self._read_to_out.record(self._clock.now_ns() - t_read)
            record = self._decision.record
            for row in rows:
                record(row[ROW_CREATED] - row[ROW_ORIGIN])
        self.stats["intents_out"] += len(rows)

    def _recover(self, now: int) -> None:
        """Until the previous run is settled (kairos.strategy.recovery) no strategy sees data or timers."""
        if self._recovery.step(now, self._sink):  # type: ignore[union-attr]
            self._recovery = None
            self._on_market.extend(s.on_market for s in self._strategies)
            log.info("strategy host: recovered, trading")

    def _dropped(self, intents: np.ndarray, exc: RingFull) -> None:
        self.stats["intents_dropped"] += len(intents)
        self._tally("intents_ring_full", f"dropped {len(intents)} intent(s): {exc}")
        self._local.append(dropped_events(intents, self._clock.now_ns()))

    def _overrun(self, venue: int, consumer: MdPoller) -> None:
        overruns = consumer.overruns
        self.stats["md_overruns"] += overruns - self._seen_overruns[venue]
        self._seen_overruns[venue] = overruns
        self._view.invalidate_venue(venue)
        self._tally("md_overrun", f"venue {venue}: fell a lap behind ({overruns} records lost in total); "
                                  "its books are dropped until fresh data arrives")

    def _tick(self, now: int) -> None:
        self._next_timer = now + TIMER_NS
        self.venues.refresh(now)
        flags = self.venues.flags
        self.stats["venues_closed"] = sum(not flags[venue] for venue, _ in self._md)
        self.stats["gate_state_bad"] = self.venues.bad
        for venue, consumer in self._md:
            if consumer.overruns != self._seen_overruns[venue]:
                self._overrun(venue, consumer)
        if self._recovery is not None:
            self._recover(now)
        else:
            for strategy in self._strategies:
                strategy.on_timer(now, self._sink)
        if len(self._sink):
            self._flush(0)
        self._export()
        if now >= self._next_summary:
            if self._next_summary:
                log.info("strategy host: %s", self._summary())
            self._next_summary = now + SUMMARY_NS

    def _export(self) -> None:
        """Counters to the status board (16 per row: the host's and each strategy's key ones)."""
        bad = self._view.rejected - self.stats["md_bad"]
        if bad:
            self._tally("bad_market_record", f"{bad} record(s) with unknown venue/instrument/status ignored")
            self.stats["md_bad"] = self._view.rejected
        for name, value in self.stats.items():
            self._counters[name].set(value)
        counters = self._counters
        for strategy in self._strategies:
            for name, value in strategy.counters().items():
                if name not in counters:
                    counters[name] = self._slot.counter(name)
                counters[name].set(value)

    def _summary(self) -> str:
        full = [f"{s.name} {getattr(s, 'stats', {})}" for s in self._strategies]
        return f"host {self.stats}; " + "; ".join(full)


def dropped_events(intents: np.ndarray, now_ns: int) -> np.ndarray:
    """What the gate would have said had it seen these intents: NEW -> REJECT, CANCEL -> CANCEL_REJECT."""
    events = np.zeros(len(intents), EXEC_EVENT)
    for name in ("client_order_id", "instrument", "venue", "strategy", "side", "price", "ts_origin_ns"):
        events[name] = intents[name]
    new = intents["action"] == Action.NEW
    events["kind"] = np.where(new, ExecKind.REJECT, ExecKind.CANCEL_REJECT)
    events["state"] = np.where(new, OrderState.REJECTED, OrderState.UNKNOWN)
    events["order_qty"] = intents["qty"]
    events["reason"] = RejectReason.INTENT_DROPPED
    events["ts_event_ns"] = now_ns
    return events
