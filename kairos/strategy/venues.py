"""Which venues the gate trades: a per-venue flag array the host refreshes from the gate's state blob.

The gate takes intents as soon as one venue is reconciled and rejects those for a venue still closed
NOT_RECONCILED (docs/RISK.md). A strategy must not trade a closed venue: one arbitrage leg could
fill while the other is rejected. The host calls `OpenVenues.refresh` from its timer; every
``REFRESH_NS`` it reads the blob's ``venues_reconciled`` and rewrites ``flags`` (indexed by venue id)
in place, so a strategy checks a venue with one index and never reads the blob on its hot path.

Fail closed: until a fresh, well-formed blob says otherwise, no venue is open. No blob yet, a stale
one (the gate republishes at least every 0.5 s: older than ``FRESH_S`` means it is down, and a
restarted gate opens its venues again one by one) or a blob of the wrong shape (logged once per
episode) closes every venue.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from kairos.records import Venue
from kairos.strategy.recovery import FRESH_S, StateSource
from kairos.venues import VENUE_NAMES

log = logging.getLogger(__name__)

REFRESH_NS: Final = 200_000_000
N_VENUES: Final = len(Venue)
ALL_OPEN: Final = (True,) * N_VENUES
"""For a strategy driven without a gate (replay, benchmarks): every venue tradeable."""
_NAMES: Final = {int(v): name for name, v in VENUE_NAMES.items()}
_LEVELS: Final = {"missing": logging.INFO, "stale": logging.WARNING, "shape": logging.ERROR}


class OpenVenues:
    """``flags[venue]`` is True while the gate has that venue reconciled (its intents are taken)."""

    __slots__ = ("_gate", "_next_ns", "_problem", "flags")

    def __init__(self, gate: StateSource) -> None:
        self._gate = gate
        self.flags = [False] * N_VENUES
        self._next_ns = 0
        self._problem = ""

    def refresh(self, now_ns: int) -> None:
        """Read the blob if ``REFRESH_NS`` has passed since the last read; log what opened or closed."""
        if now_ns < self._next_ns:
            return
        self._next_ns = now_ns + REFRESH_NS
        blob = self._gate.read()
        opened, problem, detail = _parse(blob) if blob is not None else (frozenset(), "missing", "no gate state")
        if problem != self._problem:  # each kind of trouble logged once per episode, not per read
            self._problem = problem
            if problem:
                log.log(_LEVELS[problem], "gate state %s: every venue treated as closed", detail)
        flags = self.flags
        for venue in range(1, N_VENUES):
            is_open = venue in opened
            if flags[venue] != is_open:
                flags[venue] = is_open
                log.log(logging.INFO if is_open else logging.WARNING, "venue %s %s for the strategies",
                        _NAMES.get(venue, venue), "open" if is_open else "CLOSED (not reconciled by the gate)")

    def close(self) -> None:
        self._gate.close()


def _parse(blob: dict[str, Any]) -> tuple[frozenset[int], str, str]:
    """(venue ids the gate has reconciled, "", "") or (nothing, kind of trouble, what it was)."""
    age = blob.get("age_s")
    if not isinstance(age, float | int) or age >= FRESH_S:
        return frozenset(), "stale", f"is {age!r} s old: is the gate down?"
    names = blob.get("venues_reconciled")
    if not isinstance(names, list) or not all(isinstance(n, str) and n in VENUE_NAMES for n in names):
        return frozenset(), "shape", f"has venues_reconciled {names!r}, not a list of venue names"
    return frozenset(int(VENUE_NAMES[n]) for n in names), "", ""
