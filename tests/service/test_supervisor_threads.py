"""The supervisor's API (EngineApi on real rings, a real gRPC server) when things fail: an event pump
thread that dies must not leave it serving half-alive (logged, NOT_SERVING, EngineApi.check raises,
which ends Arbiter.run with a non-zero exit); a resume the gate refuses (DISK_FULL) fails clearly."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from kairos import config
from kairos.api.pb import pb, pb_grpc
from kairos.errors import EXIT_FAILURE, SupervisorError
from kairos.gate.snapshot import GateStateReader, GateStateWriter
from kairos.gatestate import GateState
from kairos.records import EXEC_EVENT, Action, TradingState
from kairos.status import StatusBoard
from kairos.supervisor.api import EngineApi
from kairos.supervisor.rings import RingSet, ring_specs
from tests.process.support import AUTH, TOKEN


@pytest.fixture
def api(shm_prefix: str, tmp_path: Path) -> Iterator[EngineApi]:
    settings = config.load(env={"KAIROS__SHM_PREFIX": shm_prefix, "KAIROS__RISK__JOURNAL_DIR": str(tmp_path),
                                "KAIROS__SUPERVISOR__GRPC_PORT": "0", "KAIROS__LOGGING__DIR": str(tmp_path),
                                "KAIROS__SUPERVISOR__API_TOKEN": TOKEN, "KAIROS__SUPERVISOR__ORDER_TIMEOUT_S": "5"})
    rings = RingSet(ring_specs(settings), shm_prefix)
    rings.create()
    board = StatusBoard.create(shm_prefix)
    engine = EngineApi(settings, rings, board, "spawn", lambda: (), frozenset())
    try:
        yield engine
    finally:
        engine.stop()
        rings.close()
        rings.unlink()
        board.close()
        StatusBoard.unlink(shm_prefix)


def test_a_dead_event_pump_makes_the_supervisor_exit(api: EngineApi, caplog: pytest.LogCaptureFixture) -> None:
    events = api._rings["events"]
    def broken(*_: object) -> int:                            # a bug inside the pump's loop
        raise RuntimeError("bug in the event pump")

    api.start()
    api.check()                                               # running: no error
    api.hub._on_batch = broken  # type: ignore[method-assign]
    events.producer().publish(np.zeros(1, EXEC_EVENT))
    deadline = time.monotonic() + 10
    while not api.hub.died and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(SupervisorError, match="event pump thread died") as err:
        api.check()
    assert err.value.exit_code == EXIT_FAILURE
    assert any(r.getMessage().startswith("event pump died") and r.exc_info for r in caplog.records), "logged first"


class DiskFullGate:
    """The gate's side of the contract while its journal cannot be written: reads `manual`, refuses
    every SET_STATE (counts it in its state blob, stays HALTED with reason DISK_FULL)."""

    def __init__(self, api: EngineApi, prefix: str) -> None:
        self.manual = api._rings["manual"].consumer("gate")
        self.blob = GateStateWriter(prefix)
        self.refused = 0
        self.publish()

    def publish(self) -> None:
        self.blob.write(GateState(trading_state="HALTED", trading_state_id=int(TradingState.HALTED),
                                  trading_reason="DISK_FULL: the journal cannot be written ([Errno 28] No space left)",
                                  trading_refused=self.refused))

    def on_intents(self, view: np.ndarray) -> None:
        self.refused += int((view["action"] == Action.SET_STATE).sum())
        self.publish()

    def close(self) -> None:
        self.blob.close()


def test_a_resume_the_gate_refuses_fails_with_its_reason(api: EngineApi, shm_prefix: str) -> None:
    gate = DiskFullGate(api, shm_prefix)
    api.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{api.server.port}")
    try:
        stub = pb_grpc.TradingEngineStub(channel)
        call = stub.SetTradingState.future(pb.SetTradingStateRequest(state=pb.TRADING_STATE_ACTIVE), metadata=AUTH,
                                           timeout=10)
        deadline = time.monotonic() + 5
        while not gate.refused and time.monotonic() < deadline:
            gate.manual.poll(gate.on_intents, 16)
            time.sleep(0.01)
        with pytest.raises(grpc.RpcError) as err:
            call.result()
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert err.value.details().startswith("the gate refused ACTIVE: trading stays HALTED (DISK_FULL: the journal")
    finally:
        channel.close()
        gate.close()
        GateStateReader.unlink(shm_prefix)
