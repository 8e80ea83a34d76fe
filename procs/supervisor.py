"""python -m procs.supervisor [--sim | --watch] [--config-dir DIR]: start, watch and restart the engine.

Default: create the rings and status board, spawn every process (`python -m procs.<role>`), restart
crashed ones, serve gRPC, and on SIGTERM/SIGINT stop them in order. --sim also runs the exchange
simulator. --watch is for systemd (which runs each process as its own unit): spawn nothing, only
watch the status board and serve gRPC.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from kairos import config
from kairos.errors import KairosError
from kairos.logs import setup_logging
from kairos.process import died
from kairos.supervisor.arbiter import ROLE, Arbiter
from kairos.supervisor.specs import plan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m procs.supervisor", description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--sim", action="store_true", help="also run procs.sim, the offline exchange simulator")
    mode.add_argument("--watch", action="store_true", help="systemd mode: spawn nothing, watch and serve gRPC")
    parser.add_argument("--config-dir", type=Path, help="configuration directory (default: ./config)")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    if args.config_dir:
        env["KAIROS_CONFIG_DIR"] = str(args.config_dir.resolve())
    try:
        settings = config.load(args.config_dir)
        if not args.watch:
            settings.check_venue_secrets()  # it hands the keys to the gate: refuse to start without them
    except KairosError as exc:
        print(f"supervisor: {exc}", file=sys.stderr)
        return exc.exit_code
    setup_logging(ROLE, settings.logging)
    config.warn_disabled(ROLE, settings, "supervisor")
    arbiter = Arbiter(settings, plan(settings, args.sim), args.watch, env)
    try:
        return arbiter.run()
    except Exception as exc:  # the process edge: logged (JSON log too), exit note left, exit code chosen
        return died(ROLE, settings, exc)


if __name__ == "__main__":
    sys.exit(main())
