"""The edge every ``procs/<role>.py`` shares: config, logging, build, run, close, exit code.

Errors become exit codes here and nowhere else: a bad config or a ring layout mismatch is
EXIT_BOOT_ERROR (the supervisor marks the process FATAL), anything else deliberate is the error's
own code, an unexpected exception EXIT_FAILURE (the supervisor backs off and restarts). Either way
the error goes to the JSON log (with its traceback when unexpected) and to the exit note
(kairos/exits.py) the supervisor shows as the process's last exit reason.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Protocol

from kairos import config, exits
from kairos.agent import Agent, AgentRunner
from kairos.config import Settings
from kairos.errors import EXIT_BOOT_ERROR, EXIT_FAILURE, ConfigError, KairosError
from kairos.logs import setup_logging
from kairos.status import Slot, StatusBoard


class Process(Protocol):
    def run(self) -> int: ...

    def close(self) -> None: ...


class IdlingAgent(Agent, Protocol):
    def idle(self, work: int) -> None: ...


def run_process(role: str, build: Callable[[Settings], Process]) -> int:
    """Load config, set up logging, build the process, run it until stopped; return the exit code."""
    try:
        settings = config.load()
    except KairosError as exc:
        print(f"{role}: {exc}", file=sys.stderr)
        return EXIT_BOOT_ERROR
    setup_logging(role, settings.logging)
    try:
        pin(role, settings)
        process = build(settings)
        try:
            return process.run()
        finally:
            process.close()
    except Exception as exc:  # the process edge: every error ends here, logged and noted
        return died(role, settings, exc)


def died(role: str, settings: Settings, exc: Exception) -> int:
    """Log the fatal error to the process log, leave the exit note, return the exit code."""
    if isinstance(exc, KairosError):
        logging.getLogger(role).error("%s failed: %s", role, exc)
        code = exc.exit_code
    else:
        logging.getLogger(role).critical("%s died of an unexpected error: %s", role, exc, exc_info=exc)
        code = EXIT_FAILURE
    exits.write(exits.note_path(settings, role), exc)
    return code


def pin(role: str, settings: Settings) -> None:
    """Apply tuning.cpus for ``role`` to every thread so far (logging has started some); later ones inherit it."""
    cpus = settings.tuning.cpus.get(role)
    if not cpus:
        return
    allowed = os.sched_getaffinity(0)
    missing = sorted(set(cpus) - allowed)
    if missing:
        raise ConfigError(f"CPU(s) {missing} not available to this process (allowed: {sorted(allowed)})",
                          f"tuning.cpus.{role}")
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except ProcessLookupError:
            continue  # that thread has ended
    logging.getLogger(role).info("%s pinned to CPU(s) %s, idle wait %s", role, sorted(cpus), settings.wait_for(role))


class BoardAgentProcess:
    """An agent on its own status-board row, idling on its own wait: the gate and the strategy host."""

    __slots__ = ("_agent", "_board", "_slot")

    def __init__(self, settings: Settings, role: str, make: Callable[[Settings, Slot], IdlingAgent]) -> None:
        self._board = StatusBoard.attach(settings.shm_prefix)
        try:
            self._slot = self._board.claim(role)
            self._agent = make(settings, self._slot)
        except BaseException:
            self._board.close()
            raise

    def run(self) -> int:
        return AgentRunner(self._agent, self._agent.idle, self._slot).run()

    def close(self) -> None:
        self._board.close()
