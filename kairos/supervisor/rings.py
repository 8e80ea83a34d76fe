"""The engine's rings as data: who produces, who consumes, what happens when full.

The supervisor creates them before any child starts (a dead creator's leftovers are reclaimed by
`Ring.create`), keeps them across child restarts (cursors live in the segments, so a restarted
consumer resumes), and unlinks them only on a clean shutdown. Under systemd (--watch) a restarted
supervisor adopts the rings of still-running processes instead of recreating them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from kairos.config import Settings
from kairos.errors import RingNotFound
from kairos.ratelimit import LIMITS, Budget, VenueLimits, engine_limits
from kairos.records import EXEC_EVENT, MARKET_DATA, ORDER_INTENT, ORDER_TRACE
from kairos.ring import Overflow, Ring

TRACE_CAPACITY: Final = 8192
"""``trace``: one ORDER_TRACE per order the gate hands to an executor (stage latencies); overwrite,
so a reader that is away (or none at all) never slows the gate."""


@dataclass(frozen=True, slots=True)
class RingSpec:
    name: str
    dtype: np.dtype
    capacity: int
    overflow: Overflow
    consumers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CursorStats:
    ring: str
    consumer: str
    depth: int
    overruns: int


def budget_specs(settings: Settings) -> tuple[tuple[VenueLimits, float, float], ...]:
    """One shared REST rate budget per enabled venue with a limits table: (limits, reserve %, background wait s)."""
    ex = settings.execution
    return tuple((engine_limits(settings, venue), ex.rate_reserve_pct, ex.rate_wait_s)
                 for venue, cfg in sorted(settings.venues.items()) if cfg.enabled and venue in LIMITS)


def ring_specs(settings: Settings) -> tuple[RingSpec, ...]:
    """md.<venue> for each enabled venue; a disabled persister is no consumer (it would block events)."""
    persister = ("persister",) if settings.persister.enabled else ()
    rings = settings.rings
    md = tuple(
        RingSpec(f"md.{venue}", MARKET_DATA, rings.md_capacity, Overflow.OVERWRITE, ("strategy", "gate", *persister))
        for venue, cfg in sorted(settings.venues.items()) if cfg.enabled
    )
    return (
        *md,
        RingSpec("intents", ORDER_INTENT, rings.intents_capacity, Overflow.BLOCK, ("gate",)),
        RingSpec("manual", ORDER_INTENT, rings.manual_capacity, Overflow.BLOCK, ("gate",)),
        RingSpec("events", EXEC_EVENT, rings.events_capacity, Overflow.BLOCK, ("strategy", *persister, "supervisor")),
        RingSpec("trace", ORDER_TRACE, TRACE_CAPACITY, Overflow.OVERWRITE, ("supervisor",)),
    )


class RingSet:
    """The mapped rings of one supervisor run, and the venues' rate budgets (created and kept alike)."""

    __slots__ = ("budget_specs", "budgets", "prefix", "rings", "specs")

    def __init__(self, specs: tuple[RingSpec, ...], prefix: str,
                 budgets: tuple[tuple[VenueLimits, float, float], ...] = ()) -> None:
        self.specs = specs
        self.prefix = prefix
        self.rings: dict[str, Ring] = {}
        self.budget_specs = budgets
        self.budgets: dict[str, Budget] = {}

    def create(self) -> None:
        """Fresh rings (stale ones from a dead creator are reclaimed; a live owner is an error)."""
        for spec in self.specs:
            self.rings[spec.name] = Ring.create(spec.name, spec.dtype, spec.capacity, spec.overflow,
                                                spec.consumers, prefix=self.prefix)
        for limits, reserve_pct, wait_s in self.budget_specs:
            self.budgets[limits.venue] = Budget.create(self.prefix, limits, reserve_pct, wait_s)

    def adopt(self) -> None:
        """Map the rings live processes already use; RingLayoutError if config changed under them."""
        for spec in self.specs:
            self.rings[spec.name] = Ring.attach(spec.name, spec.dtype, prefix=self.prefix, capacity=spec.capacity)
        for limits, reserve_pct, wait_s in self.budget_specs:
            try:
                self.budgets[limits.venue] = Budget.attach(self.prefix, limits)
            except RingNotFound:  # processes of a version without budgets: nobody else maps one yet
                self.budgets[limits.venue] = Budget.create(self.prefix, limits, reserve_pct, wait_s)

    def __getitem__(self, name: str) -> Ring:
        return self.rings[name]

    def close(self) -> None:
        for ring in self.rings.values():
            ring.close()
        self.rings.clear()
        for budget in self.budgets.values():
            budget.close()
        self.budgets.clear()

    def unlink(self) -> None:
        for spec in self.specs:
            Ring.unlink(spec.name, prefix=self.prefix)
        for limits, _, _ in self.budget_specs:
            Budget.unlink(self.prefix, limits.venue)

    def cursors(self) -> list[CursorStats]:
        """Depth and overruns of every consumer of every mapped ring, read without taking any slot."""
        return [CursorStats(name, consumer, depth, overruns) for name, ring in self.rings.items()
                for consumer, (depth, overruns) in ring.lag().items()]
