"""The shared memory a gate needs, created under a test prefix and removed whole afterwards."""

from __future__ import annotations

from kairos.gate.snapshot import GateStateReader
from kairos.records import EXEC_EVENT, MARKET_DATA, ORDER_INTENT
from kairos.ring import Overflow, Ring
from kairos.status import StatusBoard

RINGS = {
    "intents": (ORDER_INTENT, Overflow.BLOCK, ("gate",)),
    "manual": (ORDER_INTENT, Overflow.BLOCK, ("gate",)),
    "events": (EXEC_EVENT, Overflow.BLOCK, ("test",)),
    "md.binance": (MARKET_DATA, Overflow.OVERWRITE, ("gate",)),
    "md.okx": (MARKET_DATA, Overflow.OVERWRITE, ("gate",)),
    "md.bybit": (MARKET_DATA, Overflow.OVERWRITE, ("gate",)),
}
INPUTS = ("intents", "manual", "md.binance", "md.okx", "md.bybit")


class GateShm:
    """Rings (events read by consumer 'test') and the status board; `close` unlinks all, gate state too."""

    def __init__(self, prefix: str, capacity: int, events_capacity: int | None = None) -> None:
        self.prefix = prefix
        self.rings = {n: Ring.create(n, d, (events_capacity or capacity) if n == "events" else capacity, o, c, prefix)
                      for n, (d, o, c) in RINGS.items()}
        self.board = StatusBoard.create(prefix)

    def close(self) -> None:
        for ring in self.rings.values():
            ring.close()
        for name in self.rings:
            Ring.unlink(name, self.prefix)
        self.board.close()
        StatusBoard.unlink(self.prefix)
        GateStateReader.unlink(self.prefix)
