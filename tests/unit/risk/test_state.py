from __future__ import annotations

from kairos.records import Venue
from kairos.risk import Grid, RiskState, TokenBucket


def test_grid_keys_round_trip_and_venue_symbols(grid: Grid) -> None:
    k = grid.key(Venue.OKX, 2)
    assert grid.split(k) == (Venue.OKX, 2)
    assert grid.valid(Venue.BINANCE, 2) and not grid.valid(Venue.OKX, 2)   # ETH not listed on okx
    assert not grid.valid(Venue.NONE, 1) and not grid.valid(Venue.BINANCE, 3) and not grid.valid(9, 1)
    assert grid.assets == ["BTC", "USDT", "ETH"]
    assert grid.quote_slot[grid.key(Venue.BINANCE, 1)] == grid.quote_slot[grid.key(Venue.BINANCE, 2)]
    assert grid.quote_slot[grid.key(Venue.BINANCE, 1)] != grid.quote_slot[grid.key(Venue.OKX, 1)]
    assert grid.asset_slot(Venue.OKX, "USDT") == grid.quote_slot[grid.key(Venue.OKX, 1)]
    assert grid.asset_slot(Venue.OKX, "DOGE") == -1


def test_mark_is_mid_only_with_both_sides(state: RiskState, grid: Grid) -> None:
    k = grid.key(Venue.BINANCE, 1)
    assert state.mark(k) == 100.0
    state.ask[k] = 0.0
    assert state.mark(k) == 0.0
    assert state.free(grid.quote_slot[k]) == 10_000.0


def test_token_bucket_refills_at_rate_up_to_burst() -> None:
    bucket = TokenBucket(2.0)                       # 2/s, burst 2
    now = 10**12
    assert bucket.available(now) == 2.0
    bucket.take(now)
    bucket.take(now)
    assert bucket.available(now) == 0.0
    assert bucket.available(now + 250_000_000) == 0.5
    assert bucket.available(now + 10**10) == 2.0    # capped at burst


def test_token_bucket_rate_zero_disables() -> None:
    bucket = TokenBucket(0.0)
    for _ in range(100):
        bucket.take(0)
    assert bucket.available(0) >= 1.0
