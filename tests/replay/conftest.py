"""Recorded sessions (exchange-samples/capture) replayed through the feed's parsers and book sync.

Every module here reads the exchange samples (tests/samples.py) and calls ``require_samples()``.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import orjson

from kairos.config import FeedConfig, InstrumentConfig
from kairos.errors import ProtocolError
from kairos.feeds.base import BookMsg, FeedAdapter
from kairos.feeds.sync import BookSync
from kairos.logs import ErrorTally
from kairos.records import MARKET_DATA
from tests.samples import CAPTURE

BINANCE_FILE = CAPTURE / "binance_20211011_timeline.jsonl"
OKX_FILE = CAPTURE / "okx_20220513_timeline.jsonl"
BINANCE_SYMBOLS = {"NKNUSDT": 1, "BLZETH": 2, "LRCBTC": 3, "RUNEEUR": 4}
OKX_SYMBOLS = {"BTC-USDT": 1, "BTC-USD-220527": 2, "UNI-USD-SWAP": 3}


def lines(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_text().splitlines() if line.strip()]


def instruments(binance: dict[str, int], okx: dict[str, int]) -> tuple[InstrumentConfig, ...]:
    """Config instruments in id order, so InstrumentTable gives the same ids as the dicts above."""
    out = [InstrumentConfig(symbol=f"B{i}", base="X", quote="Y", symbols={"binance": s})
           for s, i in sorted(binance.items(), key=lambda kv: kv[1])]
    out += [InstrumentConfig(symbol=f"O{i}", base="X", quote="Y", symbols={"okx": s})
            for s, i in sorted(okx.items(), key=lambda kv: kv[1])]
    return tuple(out)


class RecordedSnapshots:
    """Answers snapshot requests with the REST bodies recorded in the same session."""

    def __init__(self, rows: list[dict[str, object]]) -> None:
        self.bodies: dict[str, bytes] = {}
        for row in rows:
            if row.get("src") == "rest":
                symbol = str(row["url"]).split("symbol=")[1].split("&")[0]
                self.bodies.setdefault(symbol, str(row["raw"]).encode())
        self.asked: list[str] = []

    def fetch(self, url: str, params: dict[str, str]) -> Future[bytes]:
        self.asked.append(params.get("symbol") or params.get("instId", ""))
        future: Future[bytes] = Future()
        body = self.bodies.get(self.asked[-1])
        if body is None:
            future.set_exception(ProtocolError(f"nothing recorded for {self.asked[-1]}"))
        else:
            future.set_result(body)
        return future


class Replay:
    """Frames in recorded order through parse + BookSync, one frame at a time; keeps every record."""

    def __init__(self, adapter: FeedAdapter, snapshots: RecordedSnapshots, cfg: FeedConfig) -> None:
        self.adapter = adapter
        self.tally = ErrorTally(logging.getLogger("replay"))
        self.sync = BookSync(adapter, "http://recorded", cfg, snapshots, self.tally, book_bbo=False)
        self.sync.start()
        self.out = np.zeros(8192, MARKET_DATA)
        self.records: list[np.ndarray] = []

    def frame(self, raw: bytes) -> None:
        books: list[BookMsg] = []
        try:
            n = self.adapter.parse(raw, self.out, 0, 1, books)
        except Exception as exc:  # counted like the agent does; the test checks which kinds occurred
            self.tally(type(exc).__name__, str(exc))
            n = 0
        for msg in books:
            n += self.sync.on_book(msg, self.out, n, 1)
        n += self.sync.poll(self.out, n, len(self.out) - n, 1)
        self.records.append(self.out[:n].copy())

    @property
    def all_records(self) -> np.ndarray:
        return np.concatenate(self.records)


from tests.unit.execution.conftest import dialects  # noqa: E402,F401 - shared fixture (unstarted executors)
from tests.unit.feeds.conftest import make_agent, make_sim  # noqa: E402,F401 - shared fixtures (real simulator)
