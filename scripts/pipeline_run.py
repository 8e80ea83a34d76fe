"""The pipeline benchmark's two pipelines as the bench process sees them: start, ready, collect, close.

`RingPipeline` is the engine: rings made by the supervisor's own `RingSet` (plus a ``bench``
consumer on the md rings, which never slows an overwrite ring) and the real ``python -m procs.*``
entry points. The bench reads, as the supervisor would, ``events`` (so the block ring never fills)
and ``trace`` (one ORDER_TRACE per order the gate hands to its executor), and as ``bench`` the md
rings (receipt time and ``venue_seq`` = the tick's send time, to join with the traces).
`QueuePipeline` is the baseline of scripts/pipeline_queue.py in ``multiprocessing`` children.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing as mp
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

import numpy as np

from kairos import config, status
from kairos.gate.snapshot import GateStateReader
from kairos.records import ORDER_TRACE, ProcState
from kairos.ring import OverwritePoller
from kairos.ring.segment import Segment
from kairos.supervisor.rings import RingSet, ring_specs
from scripts import pipeline_queue

ROOT: Final = Path(__file__).resolve().parent.parent
VENUES: Final = ("binance", "okx")
READ_LIMIT: Final = 65536
HUGE: Final = "1000000000000.0"
SPIN_VAR: Final = "KAIROS__RINGS__SPIN_US"
MD_COLUMNS: Final = ("ts_recv_ns", "venue_seq")


def pipeline_env(prefix: str, tmp: Path, ports: dict[str, int], name: str, rest_urls: dict[str, str]
                 ) -> dict[str, str]:
    """Settings for one pipeline's processes: its tick-source ports, the rules source's REST (``rest_urls``
    by venue name: the paper venues load tick/lot/notional rules there), bbo only, paper with latency 0,
    arbitrage on both instruments with cooldown 0, risk limits and balances out of the way. Of the
    caller's ``KAIROS*`` variables only ``KAIROS__RINGS__SPIN_US`` passes (to measure spin-then-block)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAIROS") or k == SPIN_VAR}
    env.update({
        "KAIROS__SHM_PREFIX": prefix, "KAIROS__LOGGING__LEVEL": "WARNING", "KAIROS__LOGGING__JSON_FILES": "false",
        "KAIROS__LOGGING__DIR": str(tmp / "log"), "KAIROS__PERSISTER__ENABLED": "false",
        "KAIROS__FEEDS__CHANNELS": "[bbo]", "KAIROS__FEEDS__WATCHDOG_MS": "600000",
        "KAIROS__FEEDS__PING_INTERVAL_S": "28.0", "KAIROS__EXECUTION__PAPER_LATENCY_MS": "0",
        "KAIROS__EXECUTION__PAPER_BALANCES": f"{{USDT: {HUGE}, BTC: {HUGE}, ETH: {HUGE}}}",
        "KAIROS__STRATEGY__ARBITRAGE__ENABLED": "true", "KAIROS__STRATEGY__ARBITRAGE__COOLDOWN_MS": "0",
        "KAIROS__STRATEGY__ARBITRAGE__INSTRUMENTS": "[BTC-USDT, ETH-USDT]",
        "KAIROS__STRATEGY__MARKET_MAKING__ENABLED": "false",
        "KAIROS__RISK__MAX_POSITION": HUGE, "KAIROS__RISK__MAX_GROSS_EXPOSURE": HUGE,
        "KAIROS__RISK__MAX_ORDERS_PER_SEC": "1000000", "KAIROS__RISK__MAX_OPEN_ORDERS": "100000",
        "KAIROS__RISK__DAILY_LOSS_LIMIT": HUGE, "KAIROS__RISK__JOURNAL_DIR": str(tmp / f"gate-{name}"),
        "PYTHONUNBUFFERED": "1",
    })
    for venue, path in (("binance", "/stream"), ("okx", "/ws/v5/public")):
        env[f"KAIROS__VENUES__{venue.upper()}__ENDPOINTS__SIM__WS_URL"] = f"ws://127.0.0.1:{ports[f'{name}.{venue}']}{path}"
        env[f"KAIROS__VENUES__{venue.upper()}__ENDPOINTS__SIM__REST_URL"] = rest_urls[venue]
    return env


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process in clock ticks (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def _stop(pid: int, kill: bool) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)


class RingPipeline:
    """The engine's processes on rings under the bench's prefix."""

    name = "ring"
    roles: Final = ("gate", "strategy", "feed.binance", "feed.okx")

    def __init__(self, env: dict[str, str], tmp: Path) -> None:
        self.env, self.tmp = env, tmp
        settings = config.load(env=env)
        self.prefix = settings.shm_prefix
        specs = tuple(dataclasses.replace(s, consumers=(*s.consumers, "bench")) if s.name.startswith("md.") else s
                      for s in ring_specs(settings))
        self.rings = RingSet(specs, self.prefix)
        self.rings.create()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._trace = self.rings["trace"].consumer("supervisor")
        self._events = self.rings["events"].consumer("supervisor")
        self._md: list[OverwritePoller] = [self.rings[f"md.{v}"].consumer("bench") for v in VENUES]  # type: ignore[misc]
        self._got: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
        self._gate_state = GateStateReader(self.prefix)

    def start(self) -> None:
        commands = {"gate": ("procs.gate",), "strategy": ("procs.strategy",),
                    **{f"feed.{v}": ("procs.feed", "--venue", v) for v in VENUES}}
        for role in self.roles:
            with open(self.tmp / f"ring.{role}.log", "wb") as log:
                self.procs[role] = subprocess.Popen([sys.executable, "-m", *commands[role]], cwd=ROOT, env=self.env,
                                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                    start_new_session=True)

    def ready(self, board: status.StatusBoard) -> bool:
        for role, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{role} exited with {proc.returncode}: see {self.tmp / f'ring.{role}.log'}")
        states = {row.role: row.state for row in board.snapshot()}
        return states.get("strategy") == ProcState.RUNNING and bool((self._gate_state.read() or {}).get("reconciled"))

    def drain(self) -> None:
        """Take everything published so far (events dropped, traces and md columns kept)."""
        while self._events.read(READ_LIMIT).size:
            pass
        while (got := self._trace.read(READ_LIMIT)).size:
            self._got[0].append(got)
        for consumer in self._md:
            while (got := consumer.read(READ_LIMIT)).size:
                self._got[1].append(np.stack([got[c].astype(np.int64) for c in MD_COLUMNS], axis=1))

    def collect(self) -> tuple[np.ndarray, np.ndarray]:
        """(ORDER_TRACE rows, md [ts_recv_ns, venue_seq] rows) since the last collect."""
        self.drain()
        traces, md = self._got
        out = (np.concatenate(traces) if traces else np.empty(0, ORDER_TRACE),
               np.concatenate(md) if md else np.empty((0, 2), np.int64))
        traces.clear()
        md.clear()
        return out

    @property
    def md_overruns(self) -> int:
        return sum(c.overruns for c in self._md)

    def pids(self) -> dict[str, int]:
        return {role: proc.pid for role, proc in self.procs.items()}

    def close(self) -> None:
        for proc in self.procs.values():
            _stop(proc.pid, kill=False)
        for proc in self.procs.values():
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                _stop(proc.pid, kill=True)
                proc.wait(5)
        self._gate_state.close()
        self.rings.close()
        self.rings.unlink()
        GateStateReader.unlink(self.prefix)


class QueuePipeline:
    """The baseline's four processes (spawned like fresh interpreters, as the engine's are)."""

    name = "queue"
    roles: Final = ("gate", "strategy", "feed.binance", "feed.okx")
    md_overruns = 0  # the baseline gate keeps every md batch it got; nothing to overrun

    def __init__(self, env: dict[str, str], tmp: Path) -> None:
        ctx = mp.get_context("spawn")
        self.strategy_q, self.gate_q, self.results = ctx.Queue(), ctx.Queue(), ctx.Queue()
        logs = {role: str(tmp / f"queue.{role}.log") for role in self.roles}
        targets: dict[str, tuple[Any, ...]] = {
            "gate": (pipeline_queue.gate_main, env, self.gate_q, self.strategy_q, self.results),
            "strategy": (pipeline_queue.strategy_main, env, self.strategy_q, self.gate_q, self.results),
            **{f"feed.{v}": (pipeline_queue.feed_main, v, env, [self.strategy_q, self.gate_q]) for v in VENUES},
        }
        self.procs = {role: ctx.Process(target=pipeline_queue.logged, args=(logs[role], *targets[role]),
                                        name=f"queue.{role}", daemon=True) for role in self.roles}
        self._ready: set[str] = set()

    def start(self) -> None:
        for proc in self.procs.values():
            proc.start()

    def ready(self, board: status.StatusBoard) -> bool:
        for role, proc in self.procs.items():
            if not proc.is_alive():
                raise RuntimeError(f"queue {role} exited with {proc.exitcode}")
        while not self.results.empty():
            self._ready.add(self.results.get()["ready"])
        return self._ready >= {"gate", "strategy"}

    def drain(self) -> None:
        """Nothing to do during a phase: the baseline gate keeps its traces until `collect`."""

    def collect(self) -> tuple[np.ndarray, np.ndarray]:
        self.gate_q.put(("dump", b""))
        got = self.results.get(timeout=60)
        md = np.frombuffer(got["md"], pipeline_queue.MARKET_DATA)
        return (np.frombuffer(got["trace"], ORDER_TRACE),
                np.stack([md[c].astype(np.int64) for c in MD_COLUMNS], axis=1))

    def pids(self) -> dict[str, int]:
        return {role: proc.pid or 0 for role, proc in self.procs.items()}

    def close(self) -> None:
        for q in (self.gate_q, self.strategy_q):
            with contextlib.suppress(ValueError, OSError):
                q.put(("stop", b""))
        for role, proc in self.procs.items():
            if role.startswith("feed") and proc.pid:
                _stop(proc.pid, kill=False)
        for proc in self.procs.values():
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        for q in (self.strategy_q, self.gate_q, self.results):
            q.cancel_join_thread()
            q.close()


def board_histogram(prefix: str, role: str, name: str) -> np.ndarray:
    """Raw log2 buckets of one status-board histogram (zeros if absent), read without claiming the row."""
    seg = Segment.open(status.segment_name(prefix))
    try:
        rows = np.frombuffer(seg.buf, np.uint8, status.ROWS * status.ROW_LENGTH, status.HEADER_LENGTH).copy()
    finally:
        seg.close()
    for row in rows.reshape(status.ROWS, status.ROW_LENGTH):
        if bytes(row[: status.NAME_LENGTH]).rstrip(b"\0").decode() != role:
            continue
        names = row[status.HISTOGRAM_NAMES_OFFSET : status.HISTOGRAM_BUCKETS_OFFSET]
        for i, raw in enumerate(names.reshape(status.HISTOGRAMS, status.NAME_LENGTH)):
            if bytes(raw).rstrip(b"\0").decode() == name:
                first = (status.HISTOGRAM_BUCKETS_OFFSET >> 3) + i * status.BUCKETS
                return row.view(np.uint64)[first : first + status.BUCKETS].copy()
    return np.zeros(status.BUCKETS, np.uint64)
