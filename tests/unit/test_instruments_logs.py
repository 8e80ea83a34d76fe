"""Instrument ids, logging set-up and the rate-limited error tally."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from kairos import config
from kairos.config import InstrumentConfig, LoggingConfig
from kairos.errors import ConfigError
from kairos.instruments import InstrumentTable
from kairos.logs import ErrorTally, UtcJsonFormatter, setup_logging
from kairos.records import EXEC_EVENT, MARKET_DATA, ORDER_INTENT, Venue, fingerprint


def test_instrument_ids_follow_config_order() -> None:
    table = InstrumentTable(config.load(env={}).instruments)
    btc = table.by_symbol("BTC-USDT")
    assert btc.id == 1
    assert table.by_venue_symbol(Venue.BINANCE, "btcusdt") is btc
    assert table.venue_symbols(Venue.OKX)["ETH-USDT"] == 2
    assert table.by_venue_symbol(Venue.OKX, "NOPE") is None
    with pytest.raises(KeyError, match="unknown instrument"):
        table.by_symbol("DOGE-USDT")


def test_duplicate_instrument_is_a_config_error() -> None:
    dup = (InstrumentConfig("A-B", "A", "B"), InstrumentConfig("A-B", "A", "B"))
    with pytest.raises(ConfigError, match="duplicate"):
        InstrumentTable(dup)


def test_record_layouts_are_cache_line_multiples_and_distinct() -> None:
    sizes = {d.itemsize for d in (MARKET_DATA, ORDER_INTENT, EXEC_EVENT)}
    assert sizes == {64, 128}
    prints = {fingerprint(d) for d in (MARKET_DATA, ORDER_INTENT, EXEC_EVENT)}
    assert len(prints) == 3


def test_json_file_log_and_console(tmp_path: Path) -> None:
    setup_logging("gate", LoggingConfig(level="INFO", dir=str(tmp_path), console=False, json_files=True))
    logging.getLogger("kairos.test").info("hello %s", "world")
    for handler in logging.getLogger().handlers:
        handler.flush()
    line = json.loads((tmp_path / "gate.jsonl").read_text().splitlines()[-1])
    assert line["message"] == "hello world"
    assert line["role"] == "gate"
    assert line["level"] == "INFO"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"]), line["time"]
    logging.getLogger().handlers.clear()


def test_json_time_is_utc_with_milliseconds() -> None:
    record = logging.LogRecord("kairos.test", logging.INFO, __file__, 1, "x", None, None)
    record.created, record.msecs = 1796395550.0527, 52.7
    assert UtcJsonFormatter().formatTime(record) == "2026-12-04T14:45:50.052Z"


def test_error_tally_logs_first_then_summarises(caplog: pytest.LogCaptureFixture) -> None:
    tally = ErrorTally(logging.getLogger("kairos.tally"), interval_s=3600)
    with caplog.at_level(logging.WARNING, logger="kairos.tally"):
        for _ in range(100):
            tally("malformed_json", "{bad")
        tally("unknown_symbol", "XYZ")
    assert tally.counts == {"malformed_json": 100, "unknown_symbol": 1}
    assert tally.total == 101
    assert len(caplog.records) == 2
