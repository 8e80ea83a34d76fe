"""Synthetic market data and execution events for the persister's benchmark and tests.

Every record gets its own ``ts_recv_ns`` / ``ts_event_ns`` and sequence, so ``n`` records are ``n``
distinct keys; the same ``start`` gives byte-identical records (what a replay looks like).
"""

from __future__ import annotations

import time

import numpy as np

from kairos.records import EXEC_EVENT, MARKET_DATA, ExecKind, Kind, OrderState, Side, Venue

KIND_CYCLE = np.array([Kind.BBO] * 4 + [Kind.TRADE] * 3 + [Kind.DEPTH] * 2 + [Kind.STATUS], np.uint8)
T0_NS = (time.time_ns() // 10**9) * 10**9


def market_data(n: int, start: int = 0, venue: int = Venue.BINANCE, instruments: int = 3,
                t0_ns: int = T0_NS) -> np.ndarray:
    """``n`` records cycling BBO x4, TRADE x3, DEPTH x2, STATUS over ``instruments`` instruments."""
    i = np.arange(start, start + n, dtype=np.int64)
    out = np.zeros(n, MARKET_DATA)
    out["ts_recv_ns"] = t0_ns + i * 1000
    out["ts_exchange_ns"] = out["ts_recv_ns"] - 500
    out["venue_seq"] = i
    out["price"] = 50_000.0 + (i % 100) * 0.5
    out["qty"] = 0.001 * (1 + i % 7)
    out["price2"] = out["price"] + 0.5
    out["qty2"] = 0.002
    out["instrument"] = 1 + i % instruments
    out["venue"] = venue
    kind = KIND_CYCLE[i % len(KIND_CYCLE)]
    out["kind"] = kind
    out["flags"] = np.where(kind == Kind.TRADE, 1 + i % 2, np.where(kind == Kind.DEPTH, i % 5, 0))
    out["flags"][kind == Kind.STATUS] = (i[kind == Kind.STATUS] // 10) % 3
    return out


def counts_by_kind(md: np.ndarray) -> dict[Kind, int]:
    return {k: int((md["kind"] == k).sum()) for k in Kind}


def exec_events(orders: int, start_order: int = 0, venue: int = Venue.BINANCE, t0_ns: int = T0_NS) -> np.ndarray:
    """Per order: ACK, a partial FILL, then FILLED (even orders) or CANCELED (odd); 3 events each."""
    out = np.zeros(3 * orders, EXEC_EVENT)
    for j in range(orders):
        k = start_order + j
        side = Side.BUY if k % 3 else Side.SELL
        rows = ((ExecKind.ACK, OrderState.ACK, 0.0, 0.0),
                (ExecKind.FILL, OrderState.PARTIAL, 0.4, 0.4),
                (ExecKind.FILL, OrderState.FILLED, 0.6, 1.0) if k % 2 == 0
                else (ExecKind.CANCELED, OrderState.CANCELED, 0.0, 0.4))
        for r, (kind, state, qty, cum) in enumerate(rows):
            seq = 3 * k + r
            out[3 * j + r] = (t0_ns + seq * 1000, t0_ns, t0_ns, 100.0 + r, qty, cum, 1.0, 0.01 * qty,
                              f"ord{k:08d}".encode(), 9000 + k, seq, 1 + k % 2, venue, 1, 0, kind, side, state, 0,
                              b"\0\0")
    return out


def net_positions(events: np.ndarray) -> dict[tuple[int, int], float]:
    """(venue, instrument) -> signed filled quantity, for checking the hot state."""
    out: dict[tuple[int, int], float] = {}
    for ev in events[events["kind"] == ExecKind.FILL]:
        key = (int(ev["venue"]), int(ev["instrument"]))
        out[key] = out.get(key, 0.0) + (float(ev["qty"]) if ev["side"] == Side.BUY else -float(ev["qty"]))
    return out
