"""Balances and positions: sampled from the gate's state (the contract: kairos/gatestate.py, version 1).

The gate owns balances and positions and publishes them in its shm blob, not on a ring, so the
persister samples the blob (at most once per ``interval_s``) and spools a compact JSON frame when
they changed. Rows carry the gate's own ``ts_ns``, so a replayed frame hits the same keys.
"""

from __future__ import annotations

import zlib
from typing import Any, Final, Protocol

import orjson

from kairos.gatestate import GateState

GATE_STATE_FINGERPRINT: Final = zlib.crc32(b"kairos.persist.gatestate.json.v1")

BalanceRow = tuple[int, int, str, float, float]
PositionRow = tuple[int, int, int, float, float, float]


class StateSource(Protocol):
    def state(self) -> GateState | None: ...


class GateStateSampler:
    """``sample(now_ns)`` -> the spool payload when balances or positions changed, else None."""

    def __init__(self, source: StateSource, interval_s: float = 1.0) -> None:
        self._source = source
        self._interval_ns = int(interval_s * 1e9)
        self._next_ns = 0
        self._last: tuple[Any, Any] | None = None

    def sample(self, now_ns: int) -> bytes | None:
        if now_ns < self._next_ns:
            return None
        self._next_ns = now_ns + self._interval_ns
        state = self._source.state()
        if state is None:
            return None
        current = (state.balances, state.positions)
        if current == self._last:
            return None
        self._last = current
        return orjson.dumps({"ts_ns": state.ts_ns, "balances": state.balances, "positions": state.positions})


def balance_rows(state: dict[str, Any]) -> list[BalanceRow]:
    ts = int(state["ts_ns"])
    return [(ts, int(b["venue_id"]), str(b["asset"]), float(b["free"]), float(b["locked"]))
            for b in state.get("balances", ())]


def position_rows(state: dict[str, Any]) -> list[PositionRow]:
    ts = int(state["ts_ns"])
    return [(ts, int(p["venue_id"]), int(p["instrument_id"]), float(p["quantity"]), float(p.get("avg_price", 0.0)),
             float(p.get("realized_pnl", 0.0))) for p in state.get("positions", ())]
