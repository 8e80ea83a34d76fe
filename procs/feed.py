"""Market-data feed process: ``python -m procs.feed --venue binance|okx``."""

from __future__ import annotations

import argparse
import logging
import sys

from kairos import config
from kairos.errors import EXIT_BOOT_ERROR, KairosError
from kairos.logs import setup_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="procs.feed", description=__doc__)
    parser.add_argument("--venue", required=True, choices=("binance", "okx"))
    args = parser.parse_args(argv)
    role = f"feed.{args.venue}"
    try:
        settings = config.load()
    except KairosError as exc:
        print(f"{role}: {exc}", file=sys.stderr)
        return EXIT_BOOT_ERROR
    setup_logging(role, settings.logging)
    from kairos.feeds.process import FeedProcess

    try:
        feed = FeedProcess(args.venue, settings)
    except KairosError as exc:
        logging.getLogger(role).error("cannot start: %s", exc)
        return exc.exit_code
    try:
        return feed.run()
    finally:
        feed.close()


if __name__ == "__main__":
    sys.exit(main())
