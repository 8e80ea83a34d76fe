"""`kairosctl status` as a user runs it (a real process) against the real arbiter after processes died:
the last exit reason of each (a signal, or the exit code and the process's own exit note), BACKOFF with the
next attempt, and trading UNKNOWN while the gate is down."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import pytest

from kairos.api.pb import pb
from tests.e2e.test_kairosctl import ctl
from tests.process.support import Supervised, child, wait_until

pytestmark = pytest.mark.slow
BACKOFF_S = 8  # long enough for kairosctl to start on a loaded box while the gate is still down


def row(text: str, role: str) -> str:
    return next(line for line in text.splitlines() if line.split()[:1] == [role])


def test_status_says_why_each_process_died_and_when_it_is_retried(engines: list[Supervised], shm_prefix: str,
                                                                  tmp_path: Path) -> None:
    log = tmp_path / "children.log"
    table = [child("gate", "gate", log, halts=True), child("persister", "raise", log)]
    sup = Supervised.harness(shm_prefix, tmp_path / "engine.log", table, supervisor__backoff_initial_s=BACKOFF_S,
                             supervisor__backoff_max_s=BACKOFF_S)
    engines.append(sup)
    sup.connect()
    gate = sup.wait_process("gate", lambda p: p.state == pb.CHILD_STATE_RUNNING, "RUNNING")
    wait_until(lambda: sup.status().trading_state == pb.TRADING_STATE_ACTIVE, "the gate's first state")
    sup.wait_process("persister", lambda p: p.last_exit_code == 1, "the persister's first death")
    os.kill(gate.pid, signal.SIGKILL)
    sup.wait_process("gate", lambda p: p.state == pb.CHILD_STATE_BACKOFF, "BACKOFF")

    out = ctl(sup, "status")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith("engine: spawn mode, trading UNKNOWN (gate is BACKOFF: its last published state is "
                           "not trusted)"), text
    assert row(text, "gate").split()[1] == "BACKOFF" and row(text, "gate").endswith("killed by SIGKILL"), text
    assert row(text, "persister").endswith("exited with code 1: ValueError: boom: the process edge must report "
                                           "this"), text
    waiting = re.search(r"^gate: BACKOFF, next attempt in (\d+\.\d)s$", text, re.M)
    assert waiting and 0.0 < float(waiting.group(1)) <= BACKOFF_S, text

    raw = ctl(sup, "--json", "status")
    assert raw.returncode == 0, raw.stderr
    procs = {p["role"]: p for p in json.loads(raw.stdout)["processes"]}
    assert procs["gate"]["lastExitCode"] == -signal.SIGKILL and procs["gate"]["lastError"] == "killed by SIGKILL"
    assert procs["persister"]["lastExitCode"] == 1
    assert sup.stop() == 0
