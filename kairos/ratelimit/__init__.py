"""Venue rate limits (REST, and the WebSocket requests the venues count): each venue's windows and weights
(<venue>.py, named by the venue table) and the shared per-venue budget (budget.py)."""

from __future__ import annotations

import logging
from typing import Final

from kairos.config import Settings
from kairos.errors import ConfigError, RingNotFound
from kairos.ratelimit.budget import Budget
from kairos.ratelimit.table import Cost, Priority, VenueLimits
from kairos.venues import VENUES, resolve

__all__ = ["LIMITS", "Budget", "Cost", "Priority", "VenueLimits", "budget_for", "engine_limits", "venue_limits"]

log = logging.getLogger(__name__)

LIMITS: Final[dict[str, VenueLimits]] = {spec.name: resolve(spec.limits) for spec in VENUES}
"""Config name -> the venue's documented REST limits (the table's ``limits`` column)."""


def venue_limits(venue: str) -> VenueLimits:
    """The venue's documented windows and weights; a venue without a table cannot call REST (a boot error)."""
    try:
        return LIMITS[venue]
    except KeyError:
        raise ConfigError(f"venue {venue!r} has no REST rate-limit table (the venue table's limits column)",
                          f"venues.{venue}") from None


def engine_limits(settings: Settings, venue: str) -> VenueLimits:
    """The venue's table at ``execution.rate_limit_scale`` of its documented limits."""
    return venue_limits(venue).scaled(settings.execution.rate_limit_scale)


def budget_for(settings: Settings, venue: str) -> Budget:
    """The engine's shared budget for ``venue``; without one (no supervisor: a tool, a test) a process-local
    budget, said in the log, so calls are still paced."""
    limits = engine_limits(settings, venue)
    try:
        return Budget.attach(settings.shm_prefix, limits)
    except RingNotFound:
        log.warning("%s: no shared rate budget under prefix %s (no supervisor created one); pacing this process "
                    "alone", venue, settings.shm_prefix)
        return Budget.local(limits, settings.execution.rate_reserve_pct, settings.execution.rate_wait_s)
