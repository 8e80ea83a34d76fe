"""``python -m procs.persister``: rings -> spool -> PostgreSQL + Redis (docs/PERSISTENCE.md)."""

from __future__ import annotations

import argparse
import sys

from kairos.persist.build import ROLE, Persister
from kairos.process import run_process


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="procs.persister", description=__doc__)
    parser.add_argument("--prefix", help="shared-memory prefix (default: settings.shm_prefix)")
    args = parser.parse_args(argv)
    return run_process(ROLE, lambda settings: Persister(settings, args.prefix or settings.shm_prefix))


if __name__ == "__main__":
    sys.exit(main())
