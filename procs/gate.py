"""`python -m procs.gate`: the risk/execution gate (kairos/gate/agent.py) as its own process.

Needs the rings (intents, manual, events, md.<venue>) and the status board the supervisor creates
under ``shm_prefix`` (``KAIROS__SHM_PREFIX``). Exit codes: 0 clean stop, 3 boot error (bad config,
ring layout mismatch), 1 other failure (e.g. rings not created yet: the supervisor retries).
"""

from __future__ import annotations

import argparse
import sys

from kairos.config import Settings, warn_disabled
from kairos.gate.agent import ROLE, GateAgent
from kairos.process import BoardAgentProcess, run_process


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="procs.gate", description=__doc__).parse_args(argv)
    return run_process(ROLE, build)


def build(settings: Settings) -> BoardAgentProcess:
    settings.check_venue_secrets()  # live keys are checked where they are used: only the gate gets them
    warn_disabled(ROLE, settings, "risk")  # the gate enforces the risk limits: a limit of 0 is never silent
    return BoardAgentProcess(settings, ROLE, GateAgent)


if __name__ == "__main__":
    sys.exit(main())
