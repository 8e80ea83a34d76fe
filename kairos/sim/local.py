"""A quiet exchange simulator on ephemeral ports, for tests and benchmarks that run a paper gate: a
paper venue loads its order rules (exchangeInfo / instruments) from the venue's public REST, as in dev.
`sim_process` runs the real ``procs.sim`` as a child, for those that keep it off their own GIL."""

from __future__ import annotations

import dataclasses
import select
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import orjson

from kairos import config
from kairos.config import SimConfig
from kairos.records import Venue
from kairos.sim.server import SimServer
from kairos.venues import NAMES

EPHEMERAL_ENV: Final = {f"KAIROS__SIM__VENUES__{name.upper()}__{kind}_PORT": "0" for name in NAMES
                         for kind in ("REST", "WS", "PRIVATE")}
"""The environment that puts a simulator process on ephemeral ports (``procs.sim --print-ports`` tells them)."""
REPO: Final = Path(__file__).resolve().parents[2]
"""Where ``procs`` is importable from: a simulator child starts there."""


def ephemeral(sim: SimConfig, venues: dict[str, dict[str, Any]] | None = None, **changes: Any) -> SimConfig:
    """``sim`` with every venue's ports 0 (the OS picks free ones: tests and benchmarks run side by side), then
    ``venues`` (name -> field changes of ``sim.venues.<name>``) and ``changes`` (of ``sim``)."""
    tweaks = venues or {}
    ports = {"rest_port": 0, "ws_port": 0, "private_port": 0}
    rules = {name: dataclasses.replace(sim.venue(name), **(ports | tweaks.get(name, {}))) for name in NAMES}
    return dataclasses.replace(sim, venues=rules, **changes)


@contextmanager
def quiet_sim(env: dict[str, str] | None = None) -> Iterator[SimServer]:
    """A started simulator on ephemeral ports that never ticks (``env``: e.g. the API keys it accepts)."""
    base = config.load(env=env or {})
    server = SimServer(dataclasses.replace(base, sim=ephemeral(base.sim, rate_hz=0.0)))
    server.start()
    try:
        yield server
    finally:
        server.close()


@contextmanager
def venue_sim(env: dict[str, str] | None = None) -> Iterator[dict[str, str]]:
    """A quiet simulator; yields the KAIROS__ env pointing every venue's ``sim`` endpoint at it."""
    with quiet_sim(env) as server:
        yield {f"KAIROS__VENUES__{venue.name}__ENDPOINTS": _endpoints(server, venue) for venue in server.hubs}


def _endpoints(server: SimServer, venue: Venue) -> str:
    urls = server.urls(venue)
    return (f"{{sim: {{rest_url: '{urls.rest_url}', ws_url: '{urls.ws_url}', "
            f"private_url: '{urls.private_url}'}}}}")


@contextmanager
def sim_process(env: dict[str, str], stderr_log: Path, ready_s: float = 20.0) -> Iterator[dict[str, int]]:
    """``python -m procs.sim --print-ports`` as a child with the whole environment ``env`` (with `EPHEMERAL_ENV`:
    ports the OS picks) and its stderr in ``stderr_log``; yields the ports it printed (``{"binance_rest": ...}``)
    and stops it on exit (SIGTERM, SIGKILL after 10 s). RuntimeError with the log's tail if no ports come
    within ``ready_s``."""
    with stderr_log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "procs.sim", "--print-ports"], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=err)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], ready_s)
        line = proc.stdout.readline() if ready else b""  # type: ignore[union-attr]
        if not line:
            tail = stderr_log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"procs.sim printed no ports within {ready_s} s (exit {proc.poll()}): {tail}")
        yield orjson.loads(line)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
