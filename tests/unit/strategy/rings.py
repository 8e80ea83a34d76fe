"""Real rings and status board for strategy-host tests (the supervisor creates these in production)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from kairos import config
from kairos.config import Settings
from kairos.gate.snapshot import GateStateReader, GateStateWriter
from kairos.gatestate import GateState
from kairos.records import EXEC_EVENT, MARKET_DATA, ORDER_INTENT
from kairos.ring import Overflow, Ring
from tests.unit.strategy.helpers import gate_state

RING_SPECS = (
    ("md.binance", MARKET_DATA, Overflow.OVERWRITE, ("strategy", "gate")),
    ("md.okx", MARKET_DATA, Overflow.OVERWRITE, ("strategy", "gate")),
    ("intents", ORDER_INTENT, Overflow.BLOCK, ("gate",)),
    ("events", EXEC_EVENT, Overflow.BLOCK, ("strategy",)),
)


def settings_for(prefix: str, **env: str) -> tuple[Settings, dict[str, str]]:
    """Default config under a test prefix, quiet logs; returns the settings and the env that made them."""
    environ = {"KAIROS__SHM_PREFIX": prefix, "KAIROS__LOGGING__JSON_FILES": "false",
               "KAIROS__STRATEGY__ARBITRAGE__COOLDOWN_MS": "0"}
    environ.update({f"KAIROS__{k.upper()}": v for k, v in env.items()})
    return config.load(env=environ), environ


def create_rings(prefix: str, md_capacity: int = 1024, intents_capacity: int = 256,
                 intents_consumers: tuple[str, ...] = ("gate",)) -> dict[str, Ring]:
    """The rings the strategy host attaches to; ``intents_consumers`` lets a test add an observer."""
    capacity = {"md.binance": md_capacity, "md.okx": md_capacity, "intents": intents_capacity, "events": 256}
    consumers = {name: names for name, _, _, names in RING_SPECS} | {"intents": intents_consumers}
    return {name: Ring.create(name, dtype, capacity[name], overflow, consumers[name], prefix=prefix)
            for name, dtype, overflow, _ in RING_SPECS}


def close_rings(rings: dict[str, Ring], prefix: str) -> None:
    for name, ring in rings.items():
        ring.close()
        Ring.unlink(name, prefix=prefix)



class GateStub:
    """The gate-state blob a test acting as the gate publishes (the host's restart recovery reads it),
    republished every 50 ms like the gate does, so it stays fresh however slowly the host starts."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._writer = GateStateWriter(prefix)
        self._state = GateState()
        self._lock = threading.Lock()  # one writer at a time: the blob is a seqlock
        self._stop = threading.Event()
        self.publish()
        self._thread = threading.Thread(target=self._run, name="gate-stub", daemon=True)
        self._thread.start()

    def publish(self, orders: Sequence[dict[str, Any]] = (), strategies: Sequence[dict[str, Any]] = (),
                venues: Sequence[str] = ("binance", "okx")) -> None:
        """``venues``: those the gate has reconciled ("reconciled" once both are, as the gate says); rows as
        `helpers.gate_state` takes them."""
        with self._lock:
            self._state = gate_state(set(venues) >= {"binance", "okx"}, venues, orders, strategies)
            self._writer.write(self._state)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            with self._lock:
                self._writer.write(self._state)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._writer.close()
        GateStateReader.unlink(self.prefix)
