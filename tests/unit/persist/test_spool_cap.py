"""The spool cap: with every sink down, market data is shed past persister.spool_max_mb; executions never."""

from __future__ import annotations

from pathlib import Path

from kairos.persist.agent import PersisterAgent
from kairos.persist.batch import Stream
from kairos.persist.pg import PgSink
from kairos.persist.spool import Spool, read_file, segment_path, segments
from kairos.persist.synthetic import exec_events, market_data
from kairos.persist.worker import SinkWorker
from kairos.records import EXEC_EVENT, MARKET_DATA
from kairos.ring import Overflow, Ring
from kairos.status import StatusBoard

CAP = 64 << 10


def test_market_data_is_shed_over_the_cap_and_every_execution_is_spooled(shm_prefix: str, tmp_path: Path) -> None:
    md = Ring.create("md.binance", MARKET_DATA, 4096, Overflow.OVERWRITE, ("persister",), prefix=shm_prefix)
    events = Ring.create("events", EXEC_EVENT, 4096, Overflow.BLOCK, ("persister",), prefix=shm_prefix)
    board = StatusBoard.create(shm_prefix)
    spool = Spool(tmp_path / "spool", segment_bytes=16 << 10)
    down = SinkWorker(PgSink("postgresql://postgres@127.0.0.1:1/none", "kairos"), spool, 1000, 0.05, 0.1)
    sources = [(Stream.MD_BINANCE, md.consumer("persister")), (Stream.EVENTS, events.consumer("persister"))]
    agent = PersisterAgent(sources, spool, [down], board.claim("persister"), spool_max_bytes=CAP)
    agent.on_start()                                          # the sink thread cannot connect: it stays down
    try:
        md_out, ev_out, sent_events = md.producer(), events.producer(), 0
        for i in range(40):                                  # ~40 x 64 rows x 64 B: 2.5x the cap of md
            md_out.publish(market_data(64, start=64 * i))
            ev_out.publish(exec_events(2, start_order=2 * i))
            sent_events += 6
            agent.do_work()
        spooled = [f for index in segments(spool.directory) for f in read_file(segment_path(spool.directory, index))]
        md_rows = sum(len(f.payload) // MARKET_DATA.itemsize for f in spooled if f.stream == Stream.MD_BINANCE)
        ev_rows = sum(len(f.payload) // EXEC_EVENT.itemsize for f in spooled if f.stream == Stream.EVENTS)
        assert ev_rows == sent_events, "executions are never shed"
        assert agent.md_shed > 0 and md_rows + agent.md_shed == 40 * 64
        assert md_rows * MARKET_DATA.itemsize <= CAP + 64 * MARKET_DATA.itemsize, "md stops within a batch of the cap"
        assert down.position.offset == 0 and down.position.segment == 0, "the sink never took anything"
    finally:
        agent.on_close()
        for name, ring in (("md.binance", md), ("events", events)):
            ring.close()
            Ring.unlink(name, prefix=shm_prefix)
        board.close()
        StatusBoard.unlink(shm_prefix)
