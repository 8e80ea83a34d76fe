"""Ring vs multiprocessing.Queue / Pipe between two spawned processes, baselines in the same run.

- ``lat10k``: one-way latency at 10k msgs/s, sleep-paced producer. The producer stamps
  ``time.perf_counter_ns()`` (CLOCK_MONOTONIC, system-wide) into ``ts_recv_ns`` right before the
  send; the consumer subtracts it from its own clock on receipt. First 5% dropped as warm-up.
- ``tput1`` / ``tput256``: unpaced throughput, one record per send/poll call, or 256 per call
  (ring: one 16 KB publish and a poll limit of 256; mp.Queue: one 16 KB bytes blob per put).
  Rate = records / (last receipt - first receipt), measured by the consumer.

Queue/Pipe messages are the same 64-byte MARKET_DATA record (``tobytes`` to send, ``frombuffer``
on receipt), so every transport moves and decodes the same bytes.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import threading
import time
import timeit
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import posix_ipc

from kairos.records import MARKET_DATA
from kairos.ring import Overflow, Ring, Waiter, fence
from kairos.ring.segment import Segment, unlink
from kairos.ring.wait import DEFAULT_SPIN_US, open_bell

RECORD = MARKET_DATA
RATE = 10_000
TS_FIELD = "ts_recv_ns"
TARGETS = {"block_p50_us_max": 8.0, "p50_vs_mpqueue_min": 3.0, "tput1_min": 1e6, "tput256_min": 50e6,
           "tput256_vs_mpqueue_min": 5.0}  # fmt: skip


class _Mailbox:
    """Floor reference: one 64-byte slot, a counter and the same flag+semaphore doorbell, no ring
    logic at all (what the ring's blocking wait costs on this machine before any of our code)."""

    def __init__(self, prefix: str) -> None:
        self.seg = Segment.open(f"/{prefix}.mailbox")
        self.words = memoryview(self.seg.buf).cast("q")  # [32] count, [33] sleeping
        self.record = np.frombuffer(self.seg.buf, RECORD, 1, 320)
        self.bell = open_bell(f"/{prefix}.mailbox")
        self.last = 0

    def send(self, arr: np.ndarray) -> None:
        words = self.words
        self.seg.buf[320:384] = arr
        words[32] += 1
        if words[33]:
            self.bell.release()

    def poll(self, handler: Callable[[np.ndarray], object]) -> int:
        count = self.words[32]
        if count == self.last:
            return 0
        handler(self.record)
        got, self.last = count - self.last, count
        return got

    def idle(self, work: int) -> None:
        if work:
            return
        self.words[33] = 1
        if self.words[32] == self.last:
            with contextlib.suppress(posix_ipc.BusyError):
                self.bell.acquire(0.05)
        self.words[33] = 0

    def close(self) -> None:
        self.words.release()
        self.bell.close()
        self.seg.close()


def _sender(spec: tuple) -> tuple[Callable[[np.ndarray], object], Callable[[], None]]:
    kind = spec[0]
    if kind == "mailbox":
        box = _Mailbox(spec[1])
        return box.send, box.close
    if kind == "ring":
        ring = Ring.attach("bench", RECORD, prefix=spec[1])
        return ring.producer(timeout_s=30.0).publish, ring.close
    if kind == "queue":
        return (lambda arr: spec[1].put(arr.tobytes())), spec[1].close
    return (lambda arr: spec[1].send_bytes(arr.tobytes())), spec[1].close


def _receiver(spec: tuple, limit: int) -> tuple[Callable, Callable[[int], None], Callable[[], None]]:
    """(poll(handler) -> count, idle(work), close) for one transport."""
    kind = spec[0]
    if kind == "mailbox":
        box = _Mailbox(spec[1])
        return box.poll, box.idle, box.close
    if kind == "ring":
        ring = Ring.attach("bench", RECORD, prefix=spec[1])
        cons = ring.consumer("bench")
        wait, spin = spec[2]
        waiter = Waiter([cons], prefix=spec[1], name="bench", timeout_s=0.05, wait=wait, spin_us=spin)

        def close() -> None:
            waiter.close()
            ring.close()

        return (lambda handler: cons.poll(handler, limit)), waiter.idle, close
    get = spec[1].get if kind == "queue" else spec[1].recv_bytes

    def poll(handler: Callable[[np.ndarray], object]) -> int:
        view = np.frombuffer(get(), RECORD)
        handler(view)
        return len(view)

    return poll, (lambda work: None), spec[1].close


def _produce(spec: tuple, n: int, batch: int, paced: bool, out: Any) -> None:
    send, close = _sender(spec)
    arr = np.zeros(batch, RECORD)
    stamp, seq, pc = arr[TS_FIELD][:1], arr["venue_seq"][:1], time.perf_counter_ns
    period, cpu0, t0 = 1e9 / RATE, time.process_time(), pc()
    for i in range(0, n, batch):
        if paced:
            delay = t0 + i * period - pc()
            if delay > 0:
                time.sleep(delay / 1e9)
        seq[0] = i
        stamp[0] = pc()
        send(arr)
    wall = (pc() - t0) / 1e9
    out.put({"side": "producer", "rate": n / wall, "cpu": 100 * (time.process_time() - cpu0) / wall})
    close()


def _consume(spec: tuple, n: int, limit: int, paced: bool, ready: Any, out: Any) -> None:
    """Receive n records; when paced, record each one's latency, else only count (throughput)."""
    poll, idle, close = _receiver(spec, limit)
    lat = np.zeros(n if paced else 0, np.int64)
    got, pc = [0], time.perf_counter_ns

    def latency(view: np.ndarray) -> None:
        now, k = pc(), got[0]
        lat[k : k + len(view)] = now - view[TS_FIELD]
        got[0] = k + len(view)

    handler = latency if paced else len

    ready.set()
    deadline = time.monotonic() + 120
    total = 0
    while not total and time.monotonic() < deadline:  # the clock starts at the first receipt
        total = poll(handler)
        idle(total)
    first, cpu0 = pc(), time.process_time()
    while total < n and time.monotonic() < deadline:
        work = poll(handler)
        total += work
        idle(work)
    wall = (pc() - first) / 1e9
    out.put({"side": "consumer", "received": total, "rate": (total - 1) / wall,
             "cpu": 100 * (time.process_time() - cpu0) / wall, "lat": lat[: got[0]]})  # fmt: skip
    close()


def _trial(cons_spec: tuple, prod_spec: tuple, n: int, batch: int, limit: int, paced: bool) -> dict[str, Any]:
    """Run one consumer and one producer process; returns both sides' reports."""
    ctx = mp.get_context(os.environ.get("BENCH_MP", "spawn"))
    ready, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_consume, args=(cons_spec, n, limit, paced, ready, out), daemon=True)]
    procs[0].start()
    try:
        if not ready.wait(60):
            raise RuntimeError("consumer did not start")
        procs.append(ctx.Process(target=_produce, args=(prod_spec, n, batch, paced, out), daemon=True))
        procs[-1].start()
        reports = {r["side"]: r for r in (out.get(timeout=180) for _ in range(2))}
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()
    if reports["consumer"]["received"] < n:
        raise RuntimeError(f"{cons_spec[0]}: consumer got {reports['consumer']['received']} of {n}")
    return reports


def _measure(kind: str, wait: tuple, n: int, batch: int, paced: bool) -> dict[str, Any]:
    """Build the channel here (ring segment, mp.Queue or Pipe ends), run a trial, clean up."""
    ctx = mp.get_context(os.environ.get("BENCH_MP", "spawn"))
    prefix = f"kairos-bench-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    if kind == "ring":
        ring = Ring.create("bench", RECORD, 1 << 16, Overflow.BLOCK, ("bench",), prefix=prefix)
        try:
            return _trial(("ring", prefix, wait), ("ring", prefix), n, batch, batch, paced)
        finally:
            ring.close()
            Ring.unlink("bench", prefix)
    if kind == "mailbox":
        seg, bell = Segment.create(f"/{prefix}.mailbox", 4096), open_bell(f"/{prefix}.mailbox")
        try:
            return _trial(("mailbox", prefix), ("mailbox", prefix), n, batch, batch, paced)
        finally:
            bell.unlink()
            seg.close()
            unlink(f"/{prefix}.mailbox")
    if kind == "queue":
        q = ctx.Queue()
        return _trial(("queue", q), ("queue", q), n, batch, batch, paced)
    reader, writer = ctx.Pipe(duplex=False)
    return _trial(("pipe", reader), ("pipe", writer), n, batch, batch, paced)


def _latency_row(name: str, reports: dict[str, Any]) -> dict[str, Any]:
    lat = reports["consumer"]["lat"]
    lat_us = lat[len(lat) // 20 :] / 1e3
    p50, p90, p99, p999 = (float(p) for p in np.percentile(lat_us, [50, 90, 99, 99.9]))
    return {"test": "lat10k", "transport": name, "p50_us": p50, "p90_us": p90, "p99_us": p99,
            "p999_us": p999, "max_us": float(lat_us.max()), "msgs_per_s": reports["producer"]["rate"],
            "cpu_prod_pct": reports["producer"]["cpu"], "cpu_cons_pct": reports["consumer"]["cpu"]}  # fmt: skip


def _tput_row(test: str, name: str, reports: dict[str, Any]) -> dict[str, Any]:
    return {"test": test, "transport": name, "msgs_per_s": reports["consumer"]["rate"],
            "cpu_prod_pct": reports["producer"]["cpu"], "cpu_cons_pct": reports["consumer"]["cpu"]}  # fmt: skip


def _ns_per_op(stmt: str, names: dict[str, Any], number: int) -> float:
    return min(timeit.repeat(stmt, globals=names, number=number, repeat=5)) / number * 1e9


def _micro(quick: bool) -> list[dict[str, Any]]:
    """In-process costs: fence candidates (the eventcount needs a store->load fence) and ring ops."""
    prefix = f"kairos-bench-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    ring = Ring.create("micro", RECORD, 1 << 16, Overflow.OVERWRITE, ("c",), prefix=prefix)
    gated = Ring.create("gated", RECORD, 1 << 16, Overflow.BLOCK, ("c",), prefix=prefix)
    sem = posix_ipc.Semaphore(f"/{prefix}.fence", posix_ipc.O_CREX, initial_value=1)
    lock = threading.Lock()
    try:
        prod, cons = ring.producer(), ring.consumer("c")
        names = {"acq": lock.acquire, "rel": lock.release, "post": sem.release, "take": sem.acquire,
                 "fence": fence, "pub": prod.publish, "poll": cons.poll, "one": np.zeros(1, RECORD),
                 "b256": np.zeros(256, RECORD), "gpub": gated.producer().publish,
                 "gpoll": gated.consumer("c").poll}  # fmt: skip
        number = 2_000 if quick else 20_000
        ops = [("fence: threading.Lock acquire+release (chosen)", "acq(); rel()"),
               ("fence: posix_ipc sem release+acquire", "post(); take()"), ("fence() call", "fence()"),
               ("overwrite: publish 1", "pub(one)"), ("overwrite: publish 1 + poll 1", "pub(one); poll(len, 1)"),
               ("overwrite: publish 256", "pub(b256)"),
               ("overwrite: publish 256 + poll 256", "pub(b256); poll(len, 256)"),
               ("block: publish 1 + poll 1", "gpub(one); gpoll(len, 1)"),
               ("block: publish 256 + poll 256", "gpub(b256); gpoll(len, 256)")]  # fmt: skip
        return [{"op": op, "ns": _ns_per_op(stmt, names, number)} for op, stmt in ops]
    finally:
        sem.unlink()
        for r in (ring, gated):
            r.close()
            Ring.unlink(r.name, prefix)


BLOCK, SPIN20 = ("block", DEFAULT_SPIN_US), ("block", 20)  # spin20: spin 20 us before sleeping
LATENCY = (("ring-block", "ring", BLOCK), ("ring-block-spin20", "ring", SPIN20), ("ring-yield", "ring", ("yield", 0)),
           ("ring-spin", "ring", ("spin", 0)), ("mpqueue", "queue", ()), ("pipe", "pipe", ()),
           ("bare-sem-floor", "mailbox", ()))  # fmt: skip
THROUGHPUT = (("ring-block", "ring", BLOCK), ("ring-block-spin20", "ring", SPIN20), ("ring-spin", "ring", ("spin", 0)),
              ("mpqueue", "queue", ()))  # fmt: skip


def run(quick: bool) -> dict[str, Any]:
    """Latency at 10k msgs/s and unpaced throughput for the ring and its baselines."""
    n_lat, n_one, n_batch = (4_000, 100_000, 1 << 21) if quick else (60_000, 1_000_000, 20 << 20)
    rows = [_latency_row(name, _measure(kind, wait, n_lat, 1, True)) for name, kind, wait in LATENCY]
    for test, n, batch in (("tput1", n_one, 1), ("tput256", n_batch, 256)):
        rows += [_tput_row(test, name, _measure(kind, wait, n, batch, False)) for name, kind, wait in THROUGHPUT]
    by = {(r["test"], r["transport"]): r for r in rows}
    block, queue = by["lat10k", "ring-block"], by["lat10k", "mpqueue"]
    ratios = {
        "lat p50 mpqueue/ring-block": queue["p50_us"] / block["p50_us"],
        "lat p50 pipe/ring-block": by["lat10k", "pipe"]["p50_us"] / block["p50_us"],
        "lat p50 ring-block/bare-sem-floor": block["p50_us"] / by["lat10k", "bare-sem-floor"]["p50_us"],
        "lat p99 mpqueue/ring-block": queue["p99_us"] / block["p99_us"],
        "tput1 ring-block/mpqueue": by["tput1", "ring-block"]["msgs_per_s"] / by["tput1", "mpqueue"]["msgs_per_s"],
        "tput256 ring-block/mpqueue": by["tput256", "ring-block"]["msgs_per_s"]
        / by["tput256", "mpqueue"]["msgs_per_s"],
    }
    targets = {
        f"ring-block p50 <= {TARGETS['block_p50_us_max']} us": block["p50_us"] <= TARGETS["block_p50_us_max"],
        f"p50 >= {TARGETS['p50_vs_mpqueue_min']}x lower than mpqueue": ratios["lat p50 mpqueue/ring-block"]
        >= TARGETS["p50_vs_mpqueue_min"],
        "tput1 ring-block >= 1M/s": by["tput1", "ring-block"]["msgs_per_s"] >= TARGETS["tput1_min"],
        "tput256 ring-block >= 50M/s": by["tput256", "ring-block"]["msgs_per_s"] >= TARGETS["tput256_min"],
        "tput256 >= 5x mpqueue": ratios["tput256 ring-block/mpqueue"] >= TARGETS["tput256_vs_mpqueue_min"],
    }
    meta = {"quick": quick, "cpus": os.cpu_count(), "loadavg_1m": os.getloadavg()[0], "lat_msgs": n_lat,
            "tput1_msgs": n_one, "tput256_msgs": n_batch}  # fmt: skip
    return {"rows": rows, "ratios": ratios, "targets": targets, "micro_ns": {r["op"]: r["ns"] for r in _micro(quick)},
            "meta": meta}  # fmt: skip
