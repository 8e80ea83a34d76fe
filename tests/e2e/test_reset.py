"""`make reset` / `make clean-shm` (python -m kairos.cli.reset): refused while the engine runs, and
then removing only this configuration's files and segments, never another engine's."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import posix_ipc
import pytest

from tests.process.support import ROOT, Supervised, shm_left

pytestmark = pytest.mark.slow


def reset(sup: Supervised, what: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kairos.cli.reset", what], cwd=ROOT, env=sup.env,
                          capture_output=True, text=True, timeout=60)


def test_paper_reset_removes_only_this_engines_ledgers(watch_engine: Callable[..., Supervised]) -> None:
    sup = watch_engine()
    journal = Path(sup.env["KAIROS__RISK__JOURNAL_DIR"])
    ours = [journal / f"{sup.prefix}.{name}" for name in
            ("gate.jsonl", "gate.jsonl.prev", "paper.binance.jsonl", "paper.okx.jsonl", "api-placements.jsonl")]
    others = [journal / "other.gate.jsonl", journal / f"{sup.prefix}x.paper.binance.jsonl", journal / "notes.txt"]
    for path in ours + others:
        path.write_text("{}\n")
    refused = reset(sup, "paper")
    assert refused.returncode == 1 and "is running: supervisor (pid" in refused.stderr
    assert all(p.exists() for p in ours)
    assert sup.stop() == 0
    done = reset(sup, "paper")
    assert done.returncode == 0, done.stderr
    assert not any(p.exists() for p in ours) and all(p.exists() for p in others)
    assert f"removed {len(ours)}" in done.stdout


def test_paper_reset_refuses_a_live_configuration(watch_engine: Callable[..., Supervised]) -> None:
    sup = watch_engine()
    assert sup.stop() == 0
    sup.env["KAIROS__EXECUTION__MODE"] = "live"
    out = reset(sup, "paper")
    assert out.returncode == 3 and "real orders" in out.stderr


def test_clean_shm_removes_only_this_prefix(watch_engine: Callable[..., Supervised]) -> None:
    sup = watch_engine()
    other = posix_ipc.SharedMemory(f"/{sup.prefix}-other.keep", posix_ipc.O_CREX, size=4096)
    try:
        assert reset(sup, "shm").returncode == 1
        assert sup.stop(signal.SIGKILL) == -signal.SIGKILL  # leaves its segments behind
        left = [name for name in shm_left(sup.prefix) if not name.startswith(f"{sup.prefix}-other")]
        assert left
        done = reset(sup, "shm")
        assert done.returncode == 0, done.stderr
        assert shm_left(sup.prefix) == [f"{sup.prefix}-other.keep"]
    finally:
        other.close_fd()
        posix_ipc.unlink_shared_memory(other.name)
