"""`python -m procs.gate`: the risk/execution gate (kairos/gate/agent.py) as its own process.

Needs the rings (intents, manual, events, md.<venue>) and the status board the supervisor creates
under ``shm_prefix`` (``KAIROS__SHM_PREFIX``). Exit codes: 0 clean stop, 3 boot error (bad config,
ring layout mismatch), 1 other failure (e.g. rings not created yet: the supervisor retries).
"""

from __future__ import annotations

import argparse
import logging
import sys

from kairos import config
from kairos.agent import AgentRunner
from kairos.errors import EXIT_BOOT_ERROR, ConfigError, KairosError
from kairos.gate.agent import ROLE, GateAgent
from kairos.logs import setup_logging
from kairos.status import StatusBoard

log = logging.getLogger("procs.gate")


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="procs.gate", description=__doc__).parse_args(argv)
    try:
        settings = config.load()
    except ConfigError as exc:
        print(f"gate: {exc}", file=sys.stderr)
        return EXIT_BOOT_ERROR
    setup_logging(ROLE, settings.logging)
    board = None
    try:
        board = StatusBoard.attach(settings.shm_prefix)
        slot = board.claim(ROLE)
        gate = GateAgent(settings, slot)
        return AgentRunner(gate, gate.idle, slot).run()
    except KairosError as exc:
        log.error("gate cannot start: %s", exc)
        return exc.exit_code
    finally:
        if board is not None:
            board.close()


if __name__ == "__main__":
    sys.exit(main())
