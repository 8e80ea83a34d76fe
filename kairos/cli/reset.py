"""python -m kairos.cli.reset paper|shm: start the local engine fresh (`make reset`, `make clean-shm`).

``paper`` removes this configuration's paper venue ledgers, gate journal and PlaceOrder log (under
``risk.journal_dir``), so balances, positions and client order ids start from the config again.
``shm`` removes the shared-memory segments and doorbells of this configuration's ``shm_prefix``
only (never another engine's). Both refuse while any process of the engine is alive on the status
board: removing files under a running gate would fork its state from what it holds in memory.
Exit codes: 0 done, 1 refused, 3 bad configuration.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from kairos import config
from kairos.config import Settings
from kairos.errors import ConfigError, RingError, RingNotFound
from kairos.ring import sweep_stale
from kairos.ring.segment import SHM_DIR
from kairos.ring.wait import unlink_bell
from kairos.status import StatusBoard

EXIT_REFUSED = 1


def live_processes(prefix: str) -> list[str]:
    """'role (pid N)' for every board row whose process is alive; [] when there is no board."""
    try:
        board = StatusBoard.attach(prefix)
    except RingNotFound:
        return []
    try:
        return [f"{row.role} (pid {row.pid})" for row in board.snapshot() if row.alive]
    finally:
        board.close()


def paper_files(settings: Settings) -> list[Path]:
    """The paper ledgers, gate journal and PlaceOrder log of this configuration, with their .prev/.tmp."""
    directory, prefix = Path(settings.risk.journal_dir), settings.shm_prefix
    names = [f"{prefix}.gate.jsonl", f"{prefix}.api-placements.jsonl",
             *(f"{prefix}.paper.{venue}.jsonl" for venue in settings.venues)]
    return [directory / (name + suffix) for name in names for suffix in ("", ".prev", ".tmp")]


def reset_paper(settings: Settings) -> list[Path]:
    if settings.execution.mode != "paper":
        raise ConfigError("refusing: the gate journal of a live engine records real orders and positions",
                          "execution.mode")
    removed = [path for path in paper_files(settings) if path.exists()]
    for path in removed:
        path.unlink()
    return removed


def clean_shm(prefix: str) -> list[str]:
    """Every segment of ``prefix`` whose creator is gone, then its doorbells (nothing of the prefix runs)."""
    removed = sweep_stale(prefix)
    for bell in sorted(SHM_DIR.glob(f"sem.{prefix}.bell.*")):
        name = "/" + bell.name.removeprefix("sem.")
        if unlink_bell(name):
            removed.append(name)
    return removed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kairos.cli.reset", description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("paper", "shm"))
    args = parser.parse_args(argv)
    try:
        settings = config.load()
        running = live_processes(settings.shm_prefix)
        if running:
            print(f"reset: refused, the engine with shm prefix {settings.shm_prefix!r} is running: "
                  f"{', '.join(running)}. Stop it first (Ctrl-C on `make run`).", file=sys.stderr)
            return EXIT_REFUSED
        removed = [str(p) for p in reset_paper(settings)] if args.what == "paper" else clean_shm(settings.shm_prefix)
    except RingError as exc:
        print(f"reset: refused, cannot read the status board: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except ConfigError as exc:
        print(f"reset: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"reset {args.what}: removed {len(removed)}" + "".join(f"\n  {name}" for name in removed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
