"""Wire the persister from settings: status row, rings, one Waiter, spool, sinks, agent."""

from __future__ import annotations

import logging

from kairos.agent import AgentRunner
from kairos.config import Settings
from kairos.gate.snapshot import GateStateReader
from kairos.instruments import InstrumentTable
from kairos.persist.agent import PersisterAgent
from kairos.persist.batch import RING_STREAMS, STREAM_DTYPES
from kairos.persist.gatestate import GateStateSampler
from kairos.persist.migrate import NativePartitions, Retention
from kairos.persist.pg import PgSink
from kairos.persist.redis_state import RedisSink
from kairos.persist.spool import Spool
from kairos.persist.worker import SinkWorker
from kairos.ring import Ring, Waiter
from kairos.status import StatusBoard

log = logging.getLogger(__name__)
ROLE = "persister"


def ring_names(settings: Settings) -> list[str]:
    """md.<venue> for each enabled venue, then events."""
    return [f"md.{name}" for name, venue in settings.venues.items() if venue.enabled] + ["events"]


class Persister:
    """Everything the process holds; `run` blocks until SIGTERM/SIGINT, `close` releases it all."""

    def __init__(self, settings: Settings, prefix: str) -> None:
        cfg = settings.persister
        self._rings: list[Ring] = []
        self._board = StatusBoard.attach(prefix)
        self._slot = self._board.claim(ROLE)
        sources = []
        for name in ring_names(settings):
            stream = RING_STREAMS[name]
            ring = Ring.attach(name, STREAM_DTYPES[stream], prefix=prefix)
            self._rings.append(ring)
            sources.append((stream, ring.consumer(ROLE)))
        self._waiter = Waiter([c for _, c in sources], prefix=prefix, name=ROLE,
                              timeout_s=settings.rings.block_timeout_ms / 1000, wait=settings.wait_for(ROLE))
        spool = Spool(cfg.spool_dir, cfg.spool_segment_mb << 20, cfg.spool_segment_s, cfg.spool_reserve_kb << 10)
        symbols = {inst.id: inst.symbol for inst in InstrumentTable(settings.instruments)}
        sinks = (
            PgSink(cfg.dsn, cfg.schema, cfg.storage, NativePartitions(1, cfg.partition_days_ahead),
                   cfg.connect_timeout_s, retention=Retention(cfg.md_retention_days, cfg.state_retention_days),
                   create_database=cfg.create_database),
            RedisSink(cfg.redis_url, cfg.redis_prefix, symbols, self._board.snapshot, timeout_s=cfg.connect_timeout_s),
        )
        workers = [SinkWorker(s, spool, cfg.batch_rows, cfg.flush_ms / 1000, cfg.retry_s) for s in sinks]
        self._gate = GateStateReader(prefix)
        self.agent = PersisterAgent(sources, spool, workers, self._slot, GateStateSampler(self._gate),
                                    fsync_s=cfg.fsync_ms / 1000, stop_drain_s=cfg.stop_drain_s,
                                    spool_max_bytes=cfg.spool_max_mb << 20)

    def run(self) -> int:
        return AgentRunner(self.agent, self._waiter.idle, self._slot).run()

    def close(self) -> None:
        self._gate.close()
        self._waiter.close()
        for ring in self._rings:
            ring.close()
        self._board.close()
