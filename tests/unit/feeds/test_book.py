"""L2Book against an exact Decimal reference model: keys, ordering, deletes, top-N change reports, output rows."""

from __future__ import annotations

import random
from decimal import Decimal

import numpy as np
import pytest

from kairos.feeds.book import SCALE, L2Book
from kairos.records import MARKET_DATA, Kind
from tests.fixtures import fixture

DEPTH = 5


def _price(rng: random.Random) -> str:
    decimals = rng.randint(0, 8)
    whole = rng.choice((0, rng.randint(1, 9), rng.randint(10, 99_999), rng.randint(100_000, 9_999_999)))
    return f"{whole}.{rng.randint(0, 10**decimals - 1):0{decimals}d}" if decimals else str(whole)


def test_price_keys_are_exact_scaled_integers() -> None:
    rng = random.Random(1)
    book = L2Book(1, 1, DEPTH)
    for _ in range(20_000):
        text = _price(rng)
        if Decimal(text) == 0:
            continue
        book.load([[text, "1"]], [])
        assert book.levels(True, 1)[0][0] == int(Decimal(text) * SCALE), text


def test_random_updates_match_a_decimal_reference() -> None:
    rng = random.Random(7)
    book = L2Book(3, 2, DEPTH)
    ref: list[dict[Decimal, Decimal]] = [{}, {}]
    for _ in range(3000):
        before = [_top(ref[0], True), _top(ref[1], False)]
        sides: list[list[list[str]]] = [[], []]
        for side in (0, 1):
            for _ in range(rng.randint(0, 4)):
                px = Decimal(rng.randint(9_900, 10_100)) / 100 + (Decimal(1) if side else Decimal(0))
                qty = rng.choice((Decimal(0), Decimal(rng.randint(1, 10**6)) / 1000))
                sides[side].append([f"{px:.8f}", f"{qty:f}"])
                if qty:
                    ref[side][px] = qty
                else:
                    ref[side].pop(px, None)
        changed = book.apply(sides[0], sides[1])
        after = [_top(ref[0], True), _top(ref[1], False)]
        got = [[(Decimal(k) / SCALE, Decimal(repr(q))) for k, q in book.levels(s == 0, DEPTH)] for s in (0, 1)]
        assert got == after
        if before != after:
            assert changed  # a top-N change is never missed
    assert len(book.bids) == len(ref[0]) and len(book.asks) == len(ref[1])


def _top(side: dict[Decimal, Decimal], bids: bool) -> list[tuple[Decimal, Decimal]]:
    return sorted(side.items(), reverse=bids)[:DEPTH]


def test_deep_changes_do_not_report_a_top_change() -> None:
    book = L2Book(1, 1, 2)
    book.load([["10", "1"], ["9", "1"], ["8", "1"]], [["11", "1"], ["12", "1"], ["13", "1"]])
    assert not book.apply([["7", "5"], ["8", "0"]], [["14", "2"]])
    assert not book.apply([["6.5", "0"]], [])  # deleting a level we never had changes nothing
    assert book.apply([["9", "2"]], [])
    assert book.apply([], [["11", "0"]])
    assert book.top() == (10.0, 1.0, 12.0, 1.0)


def test_depth_burst_rows() -> None:
    book = L2Book(9, 2, 3)
    book.load([["100.5", "2"], ["100.25", "1"]], [["101", "4"]])
    out = np.zeros(8, MARKET_DATA)
    assert book.write_depth(out, 1, 1_000, 2_000, 77) == 3
    rows = out[1:4]
    assert list(rows["kind"]) == [Kind.DEPTH] * 3 and list(rows["flags"]) == [0, 1, 2]
    assert list(rows["price"]) == [100.5, 100.25, 0.0] and list(rows["qty"]) == [2.0, 1.0, 0.0]
    assert list(rows["price2"]) == [101.0, 0.0, 0.0] and list(rows["qty2"]) == [4.0, 0.0, 0.0]
    assert set(rows["venue_seq"]) == {77} and set(rows["instrument"]) == {9} and set(rows["venue"]) == {2}
    assert set(rows["ts_exchange_ns"]) == {1_000} and set(rows["ts_recv_ns"]) == {2_000}
    assert book.write_bbo(out, 5, 1, 2, 3) == 1 and out[5]["kind"] == Kind.BBO
    assert (out[5]["price"], out[5]["qty"], out[5]["price2"], out[5]["qty2"]) == (100.5, 2.0, 101.0, 4.0)


def test_snapshot_loads_in_order_whatever_the_wire_order() -> None:
    snap = fixture("binance/depth_snapshot.json")
    rng = random.Random(3)
    bids, asks = rng.sample(snap["bids"], len(snap["bids"])), rng.sample(snap["asks"], len(snap["asks"]))
    book = L2Book(1, 1, 10)
    book.load(bids, asks)
    assert book.top() == (2417.35, 3.1, 2417.38, 1.2)
    assert [(Decimal(k) / SCALE, q) for k, q in book.levels(True, 10)] == [
        (Decimal("2417.35"), 3.1), (Decimal("2417.2"), 0.75), (Decimal("2416.9"), 8.0), (Decimal("2415"), 20.0)]
    assert [Decimal(k) / SCALE for k, _ in book.levels(False, 10)] == [Decimal("2417.38"), Decimal("2417.9"),
                                                                      Decimal("2419.05"), Decimal("2420")]
    assert not book.crossed()


@pytest.mark.parametrize("level", [["abc", "1"], ["1", "abc"], ["-1", "1"], ["0", "1"], ["1", "-2"], ["nan", "1"],
                                   ["1", "nan"], ["1e12", "1"], ["1"], None])
def test_bad_levels_raise_and_a_bad_snapshot_leaves_no_book(level: object) -> None:
    book = L2Book(1, 1, DEPTH)
    with pytest.raises((ValueError, TypeError, IndexError)):
        book.load([["10", "1"], level], [["11", "1"]])
    assert not book.bids and not book.asks and not book.bid_ranks


def test_crossed_book_is_detected() -> None:
    book = L2Book(1, 1, DEPTH)
    book.load([["10", "1"]], [["11", "1"]])
    assert not book.crossed()
    book.apply([["11.5", "1"]], [])
    assert book.crossed()
