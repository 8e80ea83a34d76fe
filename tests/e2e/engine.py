"""The whole engine as `make run` starts it (``python -m procs.supervisor --sim``), handed to a test only once
every role it names runs, and always cleaned up after."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from kairos.api.pb import pb
from tests.process.support import Supervised


@contextmanager
def sim_engine(shm_prefix: str, log: Path, roles: Iterable[str], **env: object) -> Iterator[Supervised]:
    """The supervisor with ``env`` overrides, yielded when each of ``roles`` is RUNNING with a heartbeat
    (60 s each: a cold start imports a lot); killed with everything under ``shm_prefix`` on exit."""
    sup = Supervised.real(shm_prefix, log, "--sim", **env)
    try:
        sup.connect()
        for role in roles:
            sup.wait_process(role, lambda p: p.state == pb.CHILD_STATE_RUNNING and p.heartbeat_age_s >= 0,
                             "RUNNING with a heartbeat", timeout_s=60)
        yield sup
    finally:
        sup.cleanup()
