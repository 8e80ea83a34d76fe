"""Shared-memory rings: one producer, named consumers, cursors in the segment (see docs/RING.md)."""

from kairos.ring.layout import Overflow
from kairos.ring.poller import GatedPoller, OverwritePoller, Poller
from kairos.ring.ring import Ring, segment_name
from kairos.ring.segment import sweep_stale
from kairos.ring.sequencer import GatedSequencer, OverwritingSequencer, Sequencer
from kairos.ring.wait import BlockingWait, BusySpinWait, Waiter, WaitStrategy, YieldingWait, fence

__all__ = [
    "BlockingWait",
    "BusySpinWait",
    "GatedPoller",
    "GatedSequencer",
    "Overflow",
    "OverwritePoller",
    "OverwritingSequencer",
    "Poller",
    "Ring",
    "Sequencer",
    "WaitStrategy",
    "Waiter",
    "YieldingWait",
    "fence",
    "segment_name",
    "sweep_stale",
]
