"""`python -m procs.strategy`: the strategy host (kairos/strategy/host.py) as its own process.

Needs the rings and status board the supervisor creates under ``shm_prefix``
(``KAIROS__SHM_PREFIX`` in the environment). Exit codes: 0 clean stop, 3 boot error (bad config,
ring layout mismatch), 1 other failure (e.g. rings not created yet: the supervisor retries).
"""

from __future__ import annotations

import argparse
import sys

from kairos.process import BoardAgentProcess, run_process
from kairos.strategy.host import ROLE, StrategyHost


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="procs.strategy", description=__doc__).parse_args(argv)
    return run_process(ROLE, lambda settings: BoardAgentProcess(settings, ROLE, StrategyHost.build))


if __name__ == "__main__":
    sys.exit(main())
