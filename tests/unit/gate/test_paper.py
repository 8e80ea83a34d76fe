"""Paper venue: latency, IOC/FOK/GTC/LIMIT_MAKER against the touch, slippage, fees, balances, ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from kairos.config import ExecutionConfig, InstrumentConfig, VenueConfig
from kairos.errors import ExecutionError
from kairos.execution.base import OrderRequest
from kairos.execution.paper import PaperExecutor
from kairos.instruments import InstrumentTable
from kairos.records import ExecKind, OrderState, OrderType, RejectReason, Side, Tif, Venue
from tests.unit.risk.conftest import BTC_RULES

INSTRUMENTS = InstrumentTable((InstrumentConfig("BTC-USDT", "BTC", "USDT", {"binance": "BTCUSDT", "okx": "BTC-USDT"}),))
CFG = ExecutionConfig(paper_latency_ms=2.0, paper_slippage_bps=10.0, paper_balances={"USDT": 1000.0, "BTC": 1.0})
FEES = VenueConfig(taker_fee_bps=10.0, maker_fee_bps=5.0)
MS = 1_000_000
RULES = {1: BTC_RULES}                     # tick 0.01, lot 0.00001, min qty 0.0001, min notional 5


class Clock:
    def __init__(self) -> None:
        self.now = 10**12

    def __call__(self) -> int:
        return self.now


def order(coid: str, side: Side = Side.BUY, price: float = 100.0, qty: float = 1.0,
          order_type: OrderType = OrderType.LIMIT, tif: Tif = Tif.GTC) -> OrderRequest:
    return OrderRequest(coid, 1, "BTCUSDT", side, order_type, tif, price, qty, 0)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def paper(clock: Clock, ledger: Path | None = None) -> PaperExecutor:
    ex = PaperExecutor(Venue.BINANCE, INSTRUMENTS, CFG, FEES, lambda: RULES, ledger, clock)
    ex.start()
    ex.on_mark(1, 99.0, 101.0)
    return ex


def arrive(ex: PaperExecutor, clock: Clock) -> list:
    clock.now += 2 * MS
    return [(r.kind, r.state) for r in ex.drain()]


def test_nothing_arrives_before_the_latency(clock: Clock) -> None:
    ex = paper(clock)
    ex.submit(order("a1", price=102.0))
    clock.now += MS
    assert ex.drain() == [] and ex.pending() == 1
    assert arrive(ex, clock) == [(ExecKind.ACK, OrderState.ACK), (ExecKind.FILL, OrderState.FILLED)]


def test_marketable_limit_fills_as_taker_with_slippage_capped_at_limit(clock: Clock) -> None:
    ex = paper(clock)
    ex.submit(order("a1", price=101.05))          # ask 101 x (1 + 10 bps) = 101.101 > limit
    clock.now += 2 * MS
    _ack, fill = ex.drain()
    assert fill.last_px == pytest.approx(101.05) and fill.last_qty == 1.0 and fill.cum_qty == 1.0
    assert fill.fee == pytest.approx(101.05 * 10 / 1e4) and fill.fee_asset == "USDT"
    free_usdt, locked = ex.snapshot().balances["USDT"]
    assert free_usdt == pytest.approx(1000.0 - 101.05 - fill.fee) and locked == pytest.approx(0.0)
    assert ex.snapshot().balances["BTC"] == (2.0, 0.0)


def test_market_sell_fills_at_bid_minus_slippage(clock: Clock) -> None:
    ex = paper(clock)
    ex.submit(order("s1", side=Side.SELL, price=0.0, qty=0.5, order_type=OrderType.MARKET, tif=Tif.IOC))
    clock.now += 2 * MS
    _, fill = ex.drain()
    assert fill.last_px == pytest.approx(99.0 * (1 - 10 / 1e4))
    assert ex.snapshot().balances["BTC"] == (0.5, 0.0)


@pytest.mark.parametrize("tif", [Tif.IOC, Tif.FOK])
def test_ioc_and_fok_that_do_not_cross_expire(clock: Clock, tif: Tif) -> None:
    ex = paper(clock)
    ex.submit(order("i1", price=100.0, tif=tif))
    assert arrive(ex, clock) == [(ExecKind.ACK, OrderState.ACK), (ExecKind.EXPIRED, OrderState.EXPIRED)]
    assert ex.snapshot().balances["USDT"] == (1000.0, 0.0)     # lock released


def test_gtc_rests_then_fills_as_maker_when_the_mark_crosses(clock: Clock) -> None:
    ex = paper(clock)
    ex.submit(order("g1", price=100.0, qty=2.0))
    assert arrive(ex, clock) == [(ExecKind.ACK, OrderState.ACK)]
    snap = ex.snapshot()
    assert [r.client_order_id for r in snap.open_orders] == ["g1"]
    assert snap.balances["USDT"][1] == pytest.approx(200.0 * 1.001)
    ex.on_mark(1, 99.5, 100.5)
    assert ex.drain() == []
    ex.on_mark(1, 99.0, 100.0)
    [fill] = ex.drain()
    assert (fill.kind, fill.state, fill.last_px) == (ExecKind.FILL, OrderState.FILLED, 100.0)
    assert fill.fee == pytest.approx(200.0 * 5 / 1e4)
    assert ex.snapshot().balances["USDT"] == pytest.approx((1000.0 - 200.0 - fill.fee, 0.0))
    assert ex.snapshot().open_orders == []


def test_limit_maker_that_would_cross_is_rejected_else_rests(clock: Clock) -> None:
    ex = paper(clock)
    ex.submit(order("m1", price=101.0, order_type=OrderType.LIMIT_MAKER))
    ex.submit(order("m2", side=Side.SELL, price=101.5, qty=0.1, order_type=OrderType.LIMIT_MAKER))
    clock.now += 2 * MS
    reject, ack = ex.drain()
    assert (reject.kind, reject.reason, reject.venue_code) == (ExecKind.REJECT, RejectReason.VENUE_REJECTED, "-2010")
    assert "immediately match" in reject.message
    assert (ack.client_order_id, ack.kind) == ("m2", ExecKind.ACK)


def test_insufficient_balance_duplicate_and_no_market(clock: Clock) -> None:
    ex = paper(clock)
    ex.submit(order("b1", price=100.0, qty=20.0))
    ex.submit(order("b2", side=Side.SELL, price=100.0, qty=1.5))
    ex.submit(order("b3", price=100.0, qty=0.1))
    ex.submit(order("b3", price=100.0, qty=0.1))
    clock.now += 2 * MS
    reports = ex.drain()
    assert [(r.client_order_id, r.kind, r.reason) for r in reports] == [
        ("b1", ExecKind.REJECT, RejectReason.VENUE_INSUFFICIENT_BALANCE),
        ("b2", ExecKind.REJECT, RejectReason.VENUE_INSUFFICIENT_BALANCE),
        ("b3", ExecKind.ACK, RejectReason.NONE),
        ("b3", ExecKind.REJECT, RejectReason.VENUE_REJECTED),
    ]
    ex.on_mark(1, 0.0, 0.0)
    ex.submit(order("n1", price=0.0, order_type=OrderType.MARKET, tif=Tif.IOC))
    clock.now += 2 * MS
    [no_market] = ex.drain()
    assert no_market.kind == ExecKind.REJECT and "No market" in no_market.message


def test_cancel_after_latency_and_cancel_reject(clock: Clock) -> None:
    ex = paper(clock)
    ex.submit(order("c1", price=100.0))
    arrive(ex, clock)
    ex.cancel("c1", 1, "BTCUSDT")
    ex.cancel("zz", 1, "BTCUSDT")
    assert ex.drain() == []
    assert arrive(ex, clock) == [(ExecKind.CANCELED, OrderState.CANCELED), (ExecKind.CANCEL_REJECT, OrderState.UNKNOWN)]
    assert ex.snapshot().balances["USDT"] == (1000.0, 0.0)
    assert ex.query("c1", "BTCUSDT").state == OrderState.CANCELED
    assert ex.query("never", "BTCUSDT") is None


def test_ledger_replay_restores_orders_fills_and_balances(clock: Clock, tmp_path: Path) -> None:
    ledger = tmp_path / "paper.jsonl"
    ex = paper(clock, ledger)
    ex.submit(order("r1", price=102.0, qty=0.5))                 # fills
    ex.submit(order("r2", price=100.0, qty=1.0))                 # rests
    ex.submit(order("r3", price=100.0, qty=99.0))                # rejected
    arrive(ex, clock)
    before = ex.snapshot()
    ex.close()
    again = paper(clock, ledger)
    after = again.snapshot()
    assert after.balances == before.balances
    assert [r.client_order_id for r in after.open_orders] == ["r2"]
    r1 = again.query("r1", "BTCUSDT")
    assert (r1.state, r1.cum_qty, r1.last_px) == (OrderState.FILLED, 0.5, pytest.approx(101.101))
    assert again.query("r3", "BTCUSDT").state == OrderState.REJECTED
    again.submit(order("r1", price=102.0, qty=0.5))
    assert [r.kind for r in arrive_reports(again, clock)] == [ExecKind.REJECT]   # the venue remembers ids
    again.close()


def arrive_reports(ex: PaperExecutor, clock: Clock) -> list:
    clock.now += 2 * MS
    return ex.drain()


def test_a_long_ledger_is_compacted_at_start_and_the_venue_stays_the_same(clock: Clock, tmp_path: Path) -> None:
    ledger = tmp_path / "paper.jsonl"
    first = PaperExecutor(Venue.BINANCE, INSTRUMENTS, CFG, FEES, lambda: RULES, ledger, clock, compact_entries=3)
    first.start()
    first.on_mark(1, 99.0, 101.0)
    first.submit(order("taken", price=102.0, qty=2.0))            # fills as taker
    first.submit(order("resting", price=95.0, qty=1.0))           # rests, locks quote
    first.submit(order("sold", side=Side.SELL, price=98.0, qty=0.5))
    first.submit(order("broke", price=100.0, qty=50.0))           # insufficient balance: rejected
    arrive(first, clock)
    first.cancel("sold", 1, "BTCUSDT")
    arrive(first, clock)

    def venue(ex: PaperExecutor) -> tuple:
        snap = ex.snapshot()
        queried = {c: ex.query(c, "BTCUSDT") for c in ("taken", "resting", "sold", "broke", "never")}
        return (snap.balances, [(r.client_order_id, r.state, r.cum_qty) for r in snap.open_orders],
                {c: r and (r.state, r.cum_qty, r.last_px, r.fee, r.venue_order_id) for c, r in queried.items()})

    before, long = venue(first), ledger.read_bytes().splitlines()
    first.close()
    second = PaperExecutor(Venue.BINANCE, INSTRUMENTS, CFG, FEES, lambda: RULES, ledger, clock, compact_entries=3)
    second.start()
    assert venue(second) == before
    assert ledger.with_name("paper.jsonl.prev").read_bytes().splitlines() == long
    short = ledger.read_bytes().splitlines()
    assert len(short) < len(long) and short[0].startswith(b'{"t":"K"')
    second.close()
    third = PaperExecutor(Venue.BINANCE, INSTRUMENTS, CFG, FEES, lambda: RULES, ledger, clock)
    third.start()
    assert venue(third) == before
    third.on_mark(1, 99.0, 101.0)
    third.submit(order("taken", price=102.0))                     # old ids are still duplicates
    third.submit(order("broke", price=102.0, qty=0.1))
    third.submit(order("next", price=102.0, qty=0.1))
    clock.now += 2 * MS
    reports = third.drain()
    refused = [(r.client_order_id, r.kind) for r in reports][:2]
    assert refused == [("taken", ExecKind.REJECT), ("broke", ExecKind.REJECT)]
    acked = next(r for r in reports if r.client_order_id == "next" and r.kind == ExecKind.ACK)
    assert acked.venue_order_id > max(r[4] for r in before[2].values() if r)   # venue ids keep growing
    third.close()


def test_orders_off_the_venue_rules_are_refused_as_the_venue_does(clock: Clock) -> None:
    ex = paper(clock)
    for coid, price, qty, broken in (("f1", 0.004, 1.0, "PRICE_FILTER"), ("f2", 100.0, 0.000015, "LOT_SIZE"),
                                     ("f3", 100.0, 0.00005, "LOT_SIZE"), ("f4", 100.0, 0.04, "NOTIONAL")):
        ex.submit(order(coid, price=price, qty=qty))
        clock.now += 2 * MS
        (report,) = ex.drain()
        assert (report.kind, report.reason, report.venue_code, report.message) == (
            ExecKind.REJECT, RejectReason.VENUE_FILTER, "-1013", f"Filter failure: {broken}")
    ex.submit(order("f5", qty=0.04, order_type=OrderType.MARKET, tif=Tif.IOC))   # 0.04 x touch 101 = 4.04
    clock.now += 2 * MS
    (report,) = ex.drain()
    assert (report.reason, report.message) == (RejectReason.VENUE_FILTER, "Filter failure: NOTIONAL")
    assert ex.filters(1) is BTC_RULES


def test_without_its_rules_the_paper_venue_does_not_start(clock: Clock, tmp_path: Path) -> None:
    def unreachable() -> dict:
        raise ExecutionError("binance: filters: ConnectionError refused")

    ex = PaperExecutor(Venue.BINANCE, INSTRUMENTS, CFG, FEES, unreachable, tmp_path / "ledger", clock)
    with pytest.raises(ExecutionError, match="refused"):
        ex.start()
    with pytest.raises(ExecutionError, match="no order rules for instrument"):
        PaperExecutor(Venue.BINANCE, INSTRUMENTS, CFG, FEES, dict, None, clock).start()
