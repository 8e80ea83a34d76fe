"""A supervisor whose event pump thread dies must not serve half-alive: the death is logged, health goes
NOT_SERVING and EngineApi.check raises, which ends Arbiter.run and exits the process non-zero."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from kairos import config
from kairos.errors import EXIT_FAILURE, SupervisorError
from kairos.records import EXEC_EVENT
from kairos.status import StatusBoard
from kairos.supervisor.api import EngineApi
from kairos.supervisor.rings import RingSet, ring_specs


@pytest.fixture
def api(shm_prefix: str, tmp_path: Path) -> Iterator[EngineApi]:
    settings = config.load(env={"KAIROS__SHM_PREFIX": shm_prefix, "KAIROS__RISK__JOURNAL_DIR": str(tmp_path),
                                "KAIROS__SUPERVISOR__GRPC_PORT": "0", "KAIROS__LOGGING__DIR": str(tmp_path)})
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
