"""Journal file handling, the book's position/PnL/balance arithmetic, and the gate-state seqlock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kairos.gate.book import DAY_NS, Book
from kairos.gate.orders import Order
from kairos.gate.snapshot import SEQ, GateStateReader, GateStateWriter
from kairos.instruments import InstrumentTable
from kairos.journal import AppendLog
from kairos.records import OrderType, Side, Tif, Venue
from kairos.risk import Grid, RiskState

from ..risk.conftest import INSTRUMENTS


def test_append_log_cuts_a_torn_tail_and_skips_corrupt_lines(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "j.jsonl"
    log = AppendLog(path)
    log.append({"t": "A", "n": 1})
    log.close()
    with open(path, "ab") as fh:
        fh.write(b'not json\n{"t": "A", "n": 2}\n{"t": "A", "n"')   # a garbage line, a good one, a torn one
    log = AppendLog(path)
    log.append({"t": "A", "n": 3})
    assert [e["n"] for e in log.replay()] == [1, 2, 3]
    assert "corrupt journal line" in caplog.text and path.read_bytes().endswith(b'"n":3}\n')
    log.close()


@pytest.fixture
def book() -> Book:
    grid = Grid(InstrumentTable(INSTRUMENTS))
    b = Book(RiskState.empty(grid, 10))
    b.set_balances(Venue.BINANCE, {"USDT": (1000.0, 0.0), "BTC": (1.0, 0.5)})
    return b


def order(book: Book, side: Side, qty: float, price: float = 100.0, unit: float | None = None) -> Order:
    k = book.grid.key(Venue.BINANCE, 1)
    unit = unit if unit is not None else (price * 1.001 if side == Side.BUY else 1.0)
    o = Order(b"x", Venue.BINANCE, 1, k, 0, side, OrderType.LIMIT, Tif.GTC, price, qty, unit, 0, 0)
    book.open(o)
    return o


def test_rewrite_replaces_the_log_atomically_and_a_failed_one_changes_nothing(tmp_path: Path) -> None:
    log = AppendLog(tmp_path / "j.jsonl")
    for i in range(5):
        log.append({"n": i})
    assert log.rewrite([{"n": 4}]) == 1
    log.append({"n": 5})
    assert list(log.replay()) == [{"n": 4}, {"n": 5}]
    assert (tmp_path / "j.jsonl.prev").read_bytes().count(b"\n") == 5

    def disk_full() -> object:
        yield {"n": 6}
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        log.rewrite(disk_full())
    log.append({"n": 7})
    assert list(log.replay()) == [{"n": 4}, {"n": 5}, {"n": 7}], "untouched and still appendable"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j.jsonl", "j.jsonl.prev"]
    log.close()


def test_fills_move_balances_release_reservations_and_track_average_cost(book: Book) -> None:
    s, k = book.s, book.grid.key(Venue.BINANCE, 1)
    quote, base = book.grid.quote_slot[k], book.grid.base_slot[k]
    assert s.balance[base] == 1.5
    buy = order(book, Side.BUY, 2.0)
    assert s.reserved[quote] == pytest.approx(200.2) and s.open_buy[k] == 2.0 and s.open_orders == 1
    book.fill(buy, 99.0, 1.0, 0.099, "", DAY_NS)
    buy.cum_qty = 1.0
    book.fill(buy, 101.0, 1.0, 0.001, "BTC", DAY_NS)             # this fee is charged in base
    buy.cum_qty = 2.0
    book.close(buy)
    assert s.position[k] == 2.0 and book.entry[k] == pytest.approx(100.0)
    assert s.balance[quote] == pytest.approx(1000.0 - 99.0 - 101.0 - 0.099)
    assert s.balance[base] == pytest.approx(1.5 + 2.0 - 0.001)
    assert s.reserved[quote] == pytest.approx(0.0) and s.open_buy[k] == 0.0 and s.open_orders == 0
    assert book.realised_day == pytest.approx(-0.099 - 0.001 * 101.0)


def test_reducing_and_flipping_realise_pnl(book: Book) -> None:
    s, k = book.s, book.grid.key(Venue.BINANCE, 1)
    book.fill(order(book, Side.BUY, 1.0), 100.0, 1.0, 0.0, "", DAY_NS)
    book.fill(order(book, Side.SELL, 0.4), 110.0, 0.4, 0.0, "", DAY_NS)
    assert s.position[k] == pytest.approx(0.6) and book.realised[k] == pytest.approx(4.0)
    book.fill(order(book, Side.SELL, 1.0), 90.0, 1.0, 0.0, "", DAY_NS)   # closes 0.6 at -10, opens -0.4
    assert s.position[k] == pytest.approx(-0.4) and book.entry[k] == 90.0
    assert book.realised[k] == pytest.approx(4.0 - 6.0)
    s.bid[k], s.ask[k] = 79.0, 81.0
    book.refresh_gross()
    assert book.unrealised() == pytest.approx(0.4 * 10.0) and s.gross == pytest.approx(0.4 * 80.0)
    book.fill(order(book, Side.BUY, 0.4), 80.0, 0.4, 0.0, "", 2 * DAY_NS)   # a new UTC day
    assert s.position[k] == 0.0 and book.entry[k] == 0.0 and book.realised_day == pytest.approx(4.0)


def test_gate_state_round_trip_restart_and_second_writer(shm_prefix: str) -> None:
    reader = GateStateReader(shm_prefix)
    assert reader.read() is None                                 # no segment yet
    writer = GateStateWriter(shm_prefix, size=4096)
    assert reader.read() is None                                 # segment, nothing written
    assert writer.write({"trading_state": "ACTIVE", "orders": []})
    state = reader.read()
    assert state["trading_state"] == "ACTIVE" and state["age_s"] >= 0.0
    assert not writer.write({"orders": ["x" * 5000]})            # too big: refused, old blob stays
    assert reader.read()["trading_state"] == "ACTIVE"
    writer._hdr[SEQ] += 1                                        # a writer died mid-write (odd sequence)
    assert reader.read() is None
    writer.close()
    again = GateStateWriter(shm_prefix, size=4096)               # the restarted gate maps the same segment
    assert again.write({"trading_state": "HALTED"})
    assert reader.read()["trading_state"] == "HALTED"            # the reader's old mapping sees it
    again.close()
    reader.close()
    assert GateStateReader.unlink(shm_prefix)


def test_gate_state_refuses_a_second_live_gate(shm_prefix: str) -> None:
    writer = GateStateWriter(shm_prefix, size=4096)
    code = ("import sys\nfrom kairos.errors import RingError\nfrom kairos.gate.snapshot import GateStateWriter\n"
            "try:\n    GateStateWriter(sys.argv[1], size=4096)\n"
            "except RingError as e:\n    print(e)\n    sys.exit(7)\n")
    try:
        done = subprocess.run([sys.executable, "-c", code, shm_prefix],
                              capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[3])
    finally:
        writer.close()
    assert done.returncode == 7, done.stderr
    assert "another gate" in done.stdout
