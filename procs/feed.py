"""Market-data feed process: ``python -m procs.feed --venue <name>``, a venue of kairos/venues.py (docs/FEEDS.md)."""

from __future__ import annotations

import argparse
import sys

from kairos.feeds.process import FeedProcess
from kairos.process import run_process
from kairos.venues import NAMES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="procs.feed", description=__doc__)
    parser.add_argument("--venue", required=True, choices=NAMES)
    args = parser.parse_args(argv)
    return run_process(f"feed.{args.venue}", lambda settings: FeedProcess(args.venue, settings))


if __name__ == "__main__":
    sys.exit(main())
