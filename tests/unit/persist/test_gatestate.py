"""Gate-state sampling through the real shm blob, and decoding of gate-state spool frames."""

from __future__ import annotations

from kairos import gatestate as gs
from kairos.gate.snapshot import GateStateReader, GateStateWriter
from kairos.persist.batch import Batch, Stream
from kairos.persist.gatestate import GATE_STATE_FINGERPRINT, GateStateSampler
from kairos.persist.spool import Frame, Position


def blob(ts_ns: int, usdt: float, btc_qty: float) -> gs.GateState:
    return gs.GateState(ts_ns=ts_ns, trading_state="ACTIVE", trading_state_id=0,
                        counters=gs.GateCounters(intents=ts_ns), balances=[gs.Balance("binance", 1, "USDT", usdt, 5.0)],
                        positions=[gs.Position("binance", 1, "BTC-USDT", 1, btc_qty, 60000.0, 1.5, 60000.0, 0.0)])


def frame(payload: bytes, fingerprint: int = GATE_STATE_FINGERPRINT) -> Frame:
    return Frame(Stream.GATE_STATE, fingerprint, memoryview(payload), Position(0, len(payload)))


def test_sampler_spools_only_changes_at_most_once_per_interval(shm_prefix: str) -> None:
    writer, reader = GateStateWriter(shm_prefix), GateStateReader(shm_prefix)
    try:
        sampler = GateStateSampler(reader, interval_s=1.0)
        assert sampler.sample(0) is None  # nothing published yet
        writer.write(blob(100, 1000.0, 0.5))
        assert sampler.sample(10) is None  # inside the interval
        first = sampler.sample(2_000_000_000)
        assert first is not None
        writer.write(blob(200, 1000.0, 0.5))  # only ts and counters moved
        assert sampler.sample(4_000_000_000) is None
        writer.write(blob(300, 990.0, 0.6))
        batch = Batch()
        batch.add(frame(sampler.sample(6_000_000_000)))
        assert batch.balances == [(300, 1, "USDT", 990.0, 5.0)]
        assert batch.positions == [(300, 1, 1, 0.6, 60000.0, 1.5)]
        assert batch.rows == 2 and not batch.undecodable
    finally:
        reader.close()
        writer.close()
        GateStateReader.unlink(shm_prefix)


def test_a_state_frame_that_does_not_parse_is_undecodable() -> None:
    batch = Batch()
    batch.add(frame(b'{"ts_ns": 1, "balances": [{"asset": "X"}]}'))  # no venue_id
    batch.add(frame(b"not json"))
    batch.add(frame(b'{"ts_ns": 1}', fingerprint=123))
    assert len(batch.undecodable) == 3 and batch.rows == 0
