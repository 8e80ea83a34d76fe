"""Local exchange simulator: ``python -m procs.sim [--print-ports]`` (Binance + OKX dialects, see docs/SIMULATOR.md)."""

from __future__ import annotations

import argparse
import sys

import orjson

from kairos import config
from kairos.agent import AgentRunner, sleep_idle
from kairos.errors import EXIT_BOOT_ERROR, KairosError, RingNotFound
from kairos.logs import setup_logging
from kairos.process import died
from kairos.sim.server import SimAgent, SimServer, Unsupervised
from kairos.status import StatusBoard


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="procs.sim", description=__doc__)
    parser.add_argument("--print-ports", action="store_true", help="print the bound ports as one JSON line on stdout")
    args = parser.parse_args(argv)
    try:
        settings = config.load()
    except KairosError as exc:
        print(f"sim: {exc}", file=sys.stderr)
        return EXIT_BOOT_ERROR
    setup_logging("sim", settings.logging)
    try:
        server = SimServer(settings)
    except (KairosError, OSError) as exc:  # a bad setting or a port in use: a boot error
        print(f"sim: {exc}", file=sys.stderr)
        return EXIT_BOOT_ERROR
    except Exception as exc:  # a bug while building: logged and noted like any other death
        return died("sim", settings, exc)
    try:
        board = StatusBoard.attach(settings.shm_prefix)
    except RingNotFound:
        board = None  # running on its own, not under the supervisor
    try:
        row = board.claim("sim") if board is not None else None
        server.start()
        if args.print_ports:
            print(orjson.dumps(server.ports()).decode(), flush=True)
        return AgentRunner(SimAgent(server, row), sleep_idle(0.2), row or Unsupervised()).run()
    except Exception as exc:  # the process edge: logged, exit note left, exit code chosen
        return died("sim", settings, exc)
    finally:
        server.close()
        if board is not None:
            board.close()


if __name__ == "__main__":
    sys.exit(main())
