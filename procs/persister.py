"""``python -m procs.persister``: rings -> spool -> PostgreSQL + Redis (docs/PERSISTENCE.md)."""

from __future__ import annotations

import argparse
import logging
import sys

from kairos import config
from kairos.errors import EXIT_BOOT_ERROR, KairosError
from kairos.logs import setup_logging
from kairos.persist.build import ROLE, Persister

log = logging.getLogger("procs.persister")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="procs.persister", description=__doc__)
    parser.add_argument("--prefix", help="shared-memory prefix (default: settings.shm_prefix)")
    args = parser.parse_args(argv)
    try:
        settings = config.load()
    except KairosError as exc:
        print(f"persister: {exc}", file=sys.stderr)
        return EXIT_BOOT_ERROR
    setup_logging(ROLE, settings.logging)
    try:
        persister = Persister(settings, args.prefix or settings.shm_prefix)
    except KairosError as exc:
        log.error("persister cannot start: %s", exc)
        return exc.exit_code
    try:
        return persister.run()
    finally:
        persister.close()


if __name__ == "__main__":
    sys.exit(main())
