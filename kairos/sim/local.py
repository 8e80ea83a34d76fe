"""A quiet exchange simulator on ephemeral ports, for tests and benchmarks that run a paper gate: a
paper venue loads its order rules (exchangeInfo / instruments) from the venue's public REST, as in dev."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kairos import config
from kairos.config import SimConfig
from kairos.records import Venue
from kairos.sim.server import SimServer


def ephemeral(sim: SimConfig, **changes: Any) -> SimConfig:
    """``sim`` with every port 0 (the OS picks free ones: tests and benchmarks run side by side), then ``changes``."""
    ports = {f.name: 0 for f in dataclasses.fields(sim) if f.name.endswith("_port")}
    return dataclasses.replace(sim, **(ports | changes))


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
    return f"{{sim: {{rest_url: '{urls.rest_url}', ws_url: '{urls.ws_url}'}}}}"
