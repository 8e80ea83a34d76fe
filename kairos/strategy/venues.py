"""Which venues the gate trades: a per-venue flag array the host refreshes from the gate's state blob.

The gate takes intents as soon as one venue is reconciled and rejects those for a venue still closed
NOT_RECONCILED (docs/RISK.md). A strategy must not trade a closed venue: one arbitrage leg could
fill while the other is rejected. The host calls `OpenVenues.refresh` from its timer; every
``REFRESH_NS`` it reads the blob's ``venues_reconciled`` and rewrites ``flags`` (indexed by venue id)
in place, so a strategy checks a venue with one index and never reads the blob on its hot path.

Fail closed: until a fresh, well-formed state says otherwise, no venue is open. No state yet, a stale
one (the gate republishes at least every 0.5 s: older than ``FRESH_S`` means it is down, and a
restarted gate opens its venues again one by one), a blob of the wrong shape (the reader's typed
contract refuses it) or one naming a venue this engine does not know (counted in ``bad``, logged once
per episode) closes every venue.
"""

from __future__ import annotations

import logging
from typing import Final

from kairos.gatestate import GateState
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

    __slots__ = ("_gate", "_next_ns", "_problem", "bad", "flags")

    def __init__(self, gate: StateSource) -> None:
        self._gate = gate
        self.flags = [False] * N_VENUES
        self._next_ns = 0
        self._problem = ""
        self.bad = 0  # reads refused for their shape (by the reader's contract or for an unknown venue)

    def refresh(self, now_ns: int) -> None:
        """Read the blob if ``REFRESH_NS`` has passed since the last read; log what opened or closed."""
        if now_ns < self._next_ns:
            return
        self._next_ns = now_ns + REFRESH_NS
        bad_before = self._gate.bad
        state = self._gate.state()
        if state is not None:
            opened, problem, detail = _open_venues(state)
        elif self._gate.bad > bad_before:
            opened, problem, detail = frozenset(), "shape", "does not fit the contract (kairos/gatestate.py)"
        else:
            opened, problem, detail = frozenset(), "missing", "absent"
        self.bad += problem == "shape"
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


def _open_venues(state: GateState) -> tuple[frozenset[int], str, str]:
    """(venue ids the gate has reconciled, "", "") or (nothing, kind of trouble, what it was)."""
    if state.age_s >= FRESH_S:
        return frozenset(), "stale", f"is {state.age_s:.1f} s old: is the gate down?"
    names = state.venues_reconciled
    unknown = [n for n in names if n not in VENUE_NAMES]
    if unknown:
        return frozenset(), "shape", f"has venues_reconciled {unknown!r:.80}, not venues of this engine"
    return frozenset(int(VENUE_NAMES[n]) for n in names), "", ""
