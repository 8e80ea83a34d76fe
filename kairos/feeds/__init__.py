"""Market-data feeds: one module per venue, shared machinery in base/session/sync/agent (see docs/FEEDS.md)."""

from __future__ import annotations

from kairos.feeds.base import FeedAdapter
from kairos.feeds.binance import BinanceFeed
from kairos.feeds.okx import OkxFeed

FEEDS: dict[str, type[FeedAdapter]] = {"binance": BinanceFeed, "okx": OkxFeed}
"""Venue name (as in config ``venues``) -> adapter class."""

__all__ = ["FEEDS", "BinanceFeed", "FeedAdapter", "OkxFeed"]
