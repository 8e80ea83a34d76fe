"""A feed process from settings: md ring producer, status row, the agent (`FeedAgent.build`) and runner.

The supervisor (or a test) creates the ``md.<venue>`` ring and the status board; the feed only
attaches, so a missing ring is RingNotFound (exit 1, retried) and a layout mismatch is
RingLayoutError (boot error, FATAL). Snapshots are paid from the venue's shared rate budget.
"""

from __future__ import annotations

from kairos.agent import AgentRunner
from kairos.config import Settings
from kairos.feeds.agent import FeedAgent
from kairos.feeds.stats import FeedStats
from kairos.ratelimit import budget_for
from kairos.records import MARKET_DATA
from kairos.ring import Ring
from kairos.status import StatusBoard


class FeedProcess:
    """What procs/feed.py runs: ``run()`` until SIGTERM, then ``close()``."""

    __slots__ = ("agent", "board", "ring", "runner")

    def __init__(self, venue_name: str, settings: Settings) -> None:
        self.board = StatusBoard.attach(settings.shm_prefix)
        self.ring = None
        try:
            self.ring = Ring.attach(f"md.{venue_name}", MARKET_DATA, prefix=settings.shm_prefix)
            row = self.board.claim(f"feed.{venue_name}")
            self.agent = FeedAgent.build(settings, venue_name, self.ring.producer(), FeedStats(row),
                                         budget_for(settings, venue_name))
        except BaseException:
            self.close()
            raise
        self.runner = AgentRunner(self.agent, self.agent.idle, row)

    def run(self) -> int:
        return self.runner.run()

    def close(self) -> None:
        if self.ring is not None:
            self.ring.close()
        self.board.close()
