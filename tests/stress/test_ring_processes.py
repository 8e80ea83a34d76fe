"""Ring behaviour across real processes: doorbell wake-ups, signals, stale segments, boot errors."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from kairos.errors import EXIT_BOOT_ERROR
from kairos.records import MARKET_DATA
from kairos.ring import Overflow, Ring
from tests.stress.conftest import Lab
from tests.stress.ring_children import attach_wrong_dtype, create_and_hang, wait_for_records

pytestmark = pytest.mark.slow
LONG = 30.0  # a doorbell timeout no test may rely on: only a real wake-up finishes in time


def test_one_doorbell_wakes_a_consumer_of_two_rings(lab: Lab) -> None:
    rings = [lab.ring(name, MARKET_DATA, capacity=64, overflow=Overflow.BLOCK, consumers=("gate",))
             for name in ("intents", "manual")]  # fmt: skip
    out = lab.ctx.Queue()
    child = lab.start(wait_for_records, lab.prefix, ["intents", "manual"], "gate", 6, LONG, out)
    assert out.get(timeout=60) == {"ready": True}
    producers = [ring.producer() for ring in rings]
    for k in range(6):
        producers[k % 2].publish(np.zeros(1, MARKET_DATA))
    report = out.get(timeout=LONG / 2)  # the sleeper was woken, not timed out
    child.join(10)
    assert report["got"] == 6 and not report["stopped"] and child.exitcode == 0


def test_sigterm_interrupts_a_sleeping_waiter(lab: Lab) -> None:
    lab.ring("events", MARKET_DATA, capacity=64, overflow=Overflow.BLOCK, consumers=("persister",))
    out = lab.ctx.Queue()
    child = lab.start(wait_for_records, lab.prefix, ["events"], "persister", 1, LONG, out)
    assert out.get(timeout=60) == {"ready": True}
    os.kill(child.pid, signal.SIGTERM)
    report = out.get(timeout=LONG / 2)
    child.join(10)
    assert report == {"got": 0, "stopped": True, "idles": report["idles"]} and child.exitcode == 0


def test_segment_of_a_killed_creator_is_reclaimed(lab: Lab) -> None:
    out = lab.ctx.Queue()
    child = lab.start(create_and_hang, lab.prefix, "md.binance", out)
    assert out.get(timeout=60) == "created"
    Ring.attach("md.binance", MARKET_DATA, prefix=lab.prefix).close()  # live and valid
    child.kill()
    child.join(10)
    ring = lab.ring("md.binance", MARKET_DATA, capacity=128, overflow=Overflow.OVERWRITE, consumers=("x", "y"))
    assert ring.capacity == 128 and ring.header.consumers == ("x", "y")


def test_attach_with_wrong_dtype_in_a_process_is_a_boot_error(lab: Lab) -> None:
    lab.ring("md.okx", MARKET_DATA, capacity=64, overflow=Overflow.OVERWRITE, consumers=("strategy",))
    child = lab.start(attach_wrong_dtype, lab.prefix, "md.okx")
    child.join(60)
    assert child.exitcode == EXIT_BOOT_ERROR
