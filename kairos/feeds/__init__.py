"""Market-data feeds: one module per venue, shared machinery in base/session/sync/agent (see docs/FEEDS.md)."""

from __future__ import annotations

from kairos.feeds.base import FeedAdapter
from kairos.venues import VENUES, resolve

FEEDS: dict[str, type[FeedAdapter]] = {spec.name: resolve(spec.feed) for spec in VENUES}
"""Venue name (as in config ``venues``) -> adapter class, from the venue table (kairos/venues.py)."""

__all__ = ["FEEDS", "FeedAdapter"]
