"""The supervisor's PlaceOrder log on a real full disk (a 256 KiB tmpfs as risk.journal_dir): the call
whose outcome cannot be recorded answers UNAVAILABLE with a clear message, a new order is refused
UNAVAILABLE and never sent, the event pump lives on, and orders work again once there is space."""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from kairos.api.pb import pb
from tests.process.support import Supervised, child, wait_until
from tests.service.tmpfs import small_disk

__all__ = ["small_disk"]


def order(cid: str) -> Any:
    return pb.PlaceOrderRequest(client_order_id=cid, venue=pb.VENUE_BINANCE, instrument="BTC-USDT",
                                side=pb.SIDE_BUY, order_type=pb.ORDER_TYPE_LIMIT, price=100.0, quantity=0.1)


def fill(disk: Path, log: Path) -> Path:
    """Every free byte of ``disk``: a filler file, then the slack of the log's last page, padded with
    spaces (JSON allows them before the next entry, so the log stays valid)."""
    filler = disk / "filler"
    for path, flags in ((filler, os.O_WRONLY | os.O_CREAT), (log, os.O_WRONLY | os.O_APPEND)):
        fd = os.open(path, flags, 0o644)
        try:
            for _ in range(1024):
                os.write(fd, b" " * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)
    return filler


@pytest.fixture
def engine(shm_prefix: str, tmp_path: Path, small_disk: Callable[[str, str], Path]) -> Iterator[Supervised]:
    disk = small_disk("journal", "256k")
    gate_log = tmp_path / "gate.log"
    sup = Supervised.harness(shm_prefix, tmp_path / "engine.log", [child("gate", "gate", gate_log, halts=True)],
                             risk__journal_dir=disk, supervisor__heartbeat_timeout_s=60,
                             supervisor__order_timeout_s=10)
    sup.disk, sup.gate_log = disk, gate_log  # type: ignore[attr-defined]
    try:
        yield sup.connect()
    finally:
        sup.cleanup()


def test_an_outcome_that_cannot_be_logged_answers_unavailable(engine: Supervised) -> None:
    stub, disk = engine.stub, engine.disk  # type: ignore[attr-defined]
    engine.wait_process("gate", lambda p: p.state_name == "RUNNING", "gate running")
    assert stub.PlaceOrder(order("first"), timeout=10).event.kind == pb.EXEC_KIND_ACK
    log = disk / f"{engine.prefix}.api-placements.jsonl"
    gate = engine.process("gate").pid

    os.kill(gate, signal.SIGSTOP)                            # hold the outcome back while the disk fills
    try:
        late = stub.PlaceOrder.future(order("late"), timeout=20)
        wait_until(lambda: b'"late"' in log.read_bytes(), "the first call of 'late' logged")
        filler = fill(disk, log)
    finally:
        os.kill(gate, signal.SIGCONT)
    with pytest.raises(grpc.RpcError) as err:
        late.result()
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "late was sent and answered, but its outcome could not be recorded" in err.value.details()
    again = stub.PlaceOrder(order("late"), timeout=10)       # the retry reads the outcome the pump still holds
    assert again.duplicate and again.event.kind == pb.EXEC_KIND_ACK

    with pytest.raises(grpc.RpcError) as err:
        stub.PlaceOrder(order("nospace"), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "the order was not sent" in err.value.details()
    assert "nospace" not in engine.gate_log.read_text()  # type: ignore[attr-defined]

    filler.unlink()                                          # space again: the pump and the log carry on
    assert stub.PlaceOrder(order("after"), timeout=10).event.kind == pb.EXEC_KIND_ACK
    assert engine.proc.poll() is None and b'"after"' in log.read_bytes()
    assert "event pump died" not in engine.text()
