"""Journal compaction at gate start: what replay rebuilt, rewritten as a short journal.

The journal grows by every decision and report for as long as its shm_prefix is used, and every
start replays all of it. Once a replay read more than ``risk.journal_compact_entries`` entries, the
gate writes the state replay rebuilt to a new file: the book (``B``: position, average cost and
realised PnL per key, today's realised PnL, each strategy's net per instrument), the trading
state (``T``), and the newest ``KEEP_DECISIONS`` decisions plus every open order, as order
snapshots (``O``: the accepted order with its state, filled quantity and venue id) or rejections
(``R``, unchanged). The file is fsynced and renamed over the journal; the journal before it stays as
``<name>.prev``. Replaying the result rebuilds the same positions, PnL, open orders, reservations,
trading state and duplicate detection (tested).

What is dropped: the fill-by-fill history (PostgreSQL keeps it) and decisions older than the newest
``KEEP_DECISIONS``, which only a ring redelivery or a reused client order id could still ask about.
"""

from __future__ import annotations

import logging
from typing import Any

from kairos.gate import journal as J
from kairos.gate.blotter import Blotter
from kairos.journal import KEEP_DECISIONS
from kairos.records import TradingState

log = logging.getLogger(__name__)


def compact(blotter: Blotter, wall_ns: int, keep: int = KEEP_DECISIONS) -> int:
    """Rewrite ``blotter.journal`` from the blotter's state; returns the entries written (0: it could not,
    the error is logged and the full journal stays in use)."""
    entries = [_book(blotter, wall_ns), J.trading(blotter.book.s.trading, "compacted", wall_ns)]
    entries += _decisions(blotter, keep, wall_ns)
    try:
        written = blotter.journal.rewrite(entries)
    except OSError as exc:
        log.error("journal compaction failed, going on with the full journal: %s", exc)
        return 0
    log.info("journal compacted: %d entries (%d open orders, trading %s); the previous journal is %s.prev",
             written, len(blotter.orders.open), TradingState(blotter.book.s.trading).name,
             blotter.journal.path.name)
    return written


def _book(blotter: Blotter, wall_ns: int) -> dict[str, Any]:
    book, position = blotter.book, blotter.book.s.position
    keys = {k: [position[k], book.entry[k], book.realised[k]]
            for k in range(len(position)) if position[k] or book.realised[k]}
    return {"t": "B", "k": {str(k): v for k, v in keys.items()}, "rd": book.realised_day, "day": book.day,
            "sn": [[strategy, instrument, net] for (strategy, instrument), net in book.nets.items()], "ts": wall_ns}


def _decisions(blotter: Blotter, keep: int, wall_ns: int) -> list[dict[str, Any]]:
    orders = blotter.orders
    recent = list(orders.decided)[-keep:] if keep else []
    chosen = dict.fromkeys(recent) | dict.fromkeys(c for c in orders.decided if c in orders.open)
    out = []
    for coid in orders.decided:  # original order: the newest decisions stay the newest
        if coid not in chosen:
            continue
        order = orders.all.get(coid)
        if order is not None:
            out.append(J.snapshot(order, wall_ns))
        else:
            out.append(J.rejected(coid, orders.decided[coid], orders.rejected[coid], wall_ns))
    return out
