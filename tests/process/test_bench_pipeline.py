"""Smoke test of ``python -m scripts.bench pipeline --quick``: both pipelines run, samples are collected,
the result has its shape, and nothing is left behind. No timing is asserted (that is the benchmark's job)."""

from __future__ import annotations

import multiprocessing as mp
import os
from multiprocessing import resource_tracker
from pathlib import Path

from scripts import bench_pipeline


def _children() -> list[int]:
    """Live (non-zombie) processes whose parent is this test process, but multiprocessing's resource tracker."""
    tracker = resource_tracker._resource_tracker._pid
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if int(ppid) == os.getpid() and state not in "ZX" and int(entry.name) != tracker:
            found.append(int(entry.name))
    return found


def test_quick_run_measures_both_pipelines_and_cleans_up() -> None:
    result = bench_pipeline.run(quick=True)

    assert {"rows", "ratios", "targets", "load", "samples", "notes", "box"} <= result.keys()
    for pipeline in ("ring", "queue"):
        for rate in bench_pipeline.RATES:
            assert result["samples"][pipeline][str(rate)] > 0, (pipeline, rate, result["load"])
    stages = {"feed (log2 est.)", *(name for name, _ in bench_pipeline.STAGES)}
    for rate in bench_pipeline.RATES:
        rows = [r for r in result["rows"] if r["rate"] == rate]
        assert {r["stage"] for r in rows} == stages
        total = next(r for r in rows if r["stage"] == "total")
        assert total["n_ring"] > 0 and total["ring_p50"] > 0 and total["queue_p50"] > 0
        assert total["ring_p50"] <= total["ring_p99"] <= total["ring_p999"]
    load = result["load"]["ring 10k"]
    assert load["ticks"] > 0 and load["counts"]["unjoined"] == 0
    assert set(load["cpu_pct"]) == {"gate", "strategy", "feed.binance", "feed.okx", "tick_source"}
    assert len(result["targets"]) == 4 * len(bench_pipeline.RATES)

    assert mp.active_children() == []
    assert _children() == []
    assert not [p for p in Path("/dev/shm").iterdir() if f"kairos-bp{os.getpid()}-" in p.name]
