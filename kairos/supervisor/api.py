"""Glue between the arbiter and the gRPC API: builds the servicer over the supervisor's rings,
status board and the gate's state blob, and gives the arbiter the two commands it sends itself
(CANCEL_ALL before stopping the gate, HALTED when the gate goes FATAL)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from kairos import exits
from kairos.api.commands import ManualOrders
from kairos.api.events import EventHub
from kairos.api.orders import Placements
from kairos.api.server import ApiServer
from kairos.api.servicer import TradingEngineServicer
from kairos.api.validation import Validator
from kairos.config import Settings
from kairos.errors import ConfigError, RingFull, SupervisorError
from kairos.gate.snapshot import GateStateReader
from kairos.instruments import InstrumentTable
from kairos.records import TradingState
from kairos.ring import Waiter
from kairos.status import StatusBoard
from kairos.supervisor.child import ChildInfo
from kairos.supervisor.metrics import EngineCollector, MetricsServer
from kairos.supervisor.restarts import RestartWatch
from kairos.supervisor.rings import RingSet
from kairos.supervisor.status import StatusView
from kairos.supervisor.tally import EventTally
from kairos.supervisor.trace import OrderLatencies

log = logging.getLogger(__name__)
PUMP_WAKE_S = 0.1  # the event pump re-checks its stop flag at least this often


class EngineApi:
    def __init__(self, settings: Settings, rings: RingSet, board: StatusBoard, mode: str,
                 children: Callable[[], tuple[ChildInfo, ...]], halting_roles: frozenset[str],
                 restarts: RestartWatch | None = None) -> None:
        cfg = settings.supervisor
        instruments = InstrumentTable(settings.instruments)
        self.placements = _placements(Path(settings.risk.journal_dir) / f"{rings.prefix}.api-placements.jsonl")
        self._rings = rings
        self.manual = ManualOrders(rings["manual"].producer(timeout_s=settings.rings.block_timeout_ms / 1000))
        consumer = rings["events"].consumer("supervisor")
        # always "block": the supervisor must not spin a core of a 2-core box whatever rings.wait says
        self._waiter = Waiter([consumer], prefix=rings.prefix, name="supervisor", timeout_s=PUMP_WAKE_S, wait="block")
        tally = EventTally()
        self.hub = EventHub(consumer, self._waiter.idle, instruments, cfg.max_subscribers, tally.add)
        self.gate = GateStateReader(rings.prefix)
        orders = OrderLatencies(rings["trace"].consumer("supervisor")) if "trace" in rings.rings else None
        self.status = StatusView(mode, children, board, rings, self.gate, halting_roles, cfg.heartbeat_timeout_s,
                                 orders, exits.watched(settings) if mode == "watch" else None, restarts)
        servicer = TradingEngineServicer(Validator.from_settings(instruments, settings.venues), self.manual,
                                         self.hub, self.gate, self.status, cfg.order_timeout_s, self.placements)
        self.server = ApiServer(servicer, cfg)
        collector = EngineCollector(self.status, board, rings, self.gate, orders.totals if orders else None,
                                    tally, instruments)
        self.metrics = MetricsServer(collector, cfg.metrics_host, cfg.metrics_port)

    def start(self) -> None:
        self.hub.start()
        self.server.start()
        self.metrics.start()

    def stop(self) -> None:
        self.metrics.stop()
        self.server.stop()
        self.hub.stop()
        self.placements.close()
        self._waiter.close()
        self.gate.close()

    def check(self) -> None:
        """Raise if a thread the API needs has died (it logged why): the supervisor then exits non-zero
        and is restarted, instead of answering every PlaceOrder PENDING with a frozen events cursor."""
        if self.hub.died:
            self.server.set_serving(False)
            raise SupervisorError("the event pump thread died (see the log above): exiting to be restarted")

    def halt(self, why: str) -> None:
        """Best effort: queue SET_STATE HALTED so a gate that comes back starts halted."""
        try:
            self.manual.set_state(TradingState.HALTED)
        except RingFull as exc:
            log.error("could not queue HALTED (%s): %s", why, exc)

    def cancel_all(self, timeout_s: float) -> bool:
        """Queue CANCEL_ALL and wait (bounded) until the gate has read everything in the manual ring."""
        try:
            self.manual.cancel_all()
        except RingFull as exc:
            log.error("shutdown CANCEL_ALL not queued: %s", exc)
            return False
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(c.depth == 0 for c in self._rings.cursors() if c.ring == "manual"):
                log.info("shutdown: the gate has read CANCEL_ALL")
                return True
            time.sleep(0.02)
        log.error("the gate did not read CANCEL_ALL within %.1fs", timeout_s)
        return False


def _placements(path: Path) -> Placements:
    """PlaceOrder's idempotency log sits next to the gate journal: both remember ids for one shm_prefix."""
    try:
        return Placements(path)
    except OSError as exc:
        raise ConfigError(f"cannot use the PlaceOrder log {path}: {exc}", "risk.journal_dir") from exc
