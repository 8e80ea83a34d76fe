"""python -m procs.supervisor [--sim | --watch | --check] [--config-dir DIR]: start, watch and restart the engine.

Default: create the rings and status board, spawn every process (`python -m procs.<role>`), restart
crashed ones, serve gRPC, and on SIGTERM/SIGINT stop them in order. --sim also runs the exchange
simulator. --watch is for systemd (which runs each process as its own unit): spawn nothing, only
watch the status board and serve gRPC. --check validates the configuration and prints one line.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from kairos import config
from kairos.api.server import server_credentials
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
    mode.add_argument("--check", action="store_true",
                      help="validate the configuration (layers, venue keys, TLS files), print one line, exit")
    parser.add_argument("--config-dir", type=Path, help="configuration directory (default: ./config)")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    if args.config_dir:
        env["KAIROS_CONFIG_DIR"] = str(args.config_dir.resolve())
    try:
        settings = config.load(args.config_dir)
        if not args.watch:
            settings.check_venue_secrets()  # it hands the keys to the gate: refuse to start without them
        if args.check:
            print(config_summary(settings))
            return 0
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


def config_summary(settings: config.Settings) -> str:
    """--check: one line saying what this configuration would run (TLS files are read to prove them)."""
    cfg = settings.supervisor
    transport = "plaintext" if server_credentials(cfg) is None else "TLS"
    venues = ",".join(name for name, v in settings.venues.items() if v.enabled) or "none"
    return (f"config OK: env {settings.env} (APP_ENV={os.environ.get('APP_ENV', '') or '-'}), "
            f"execution {settings.execution.mode}, venues {venues}, gRPC {cfg.grpc_host}:{cfg.grpc_port} {transport}, "
            f"shm prefix {settings.shm_prefix}")


if __name__ == "__main__":
    sys.exit(main())
