"""Request validation: every malformed request is InvalidRequest with a message naming the problem."""

from __future__ import annotations

import math

import pytest

from kairos.api.pb import pb
from kairos.api.validation import Validator, client_order_id, trading_state
from kairos.config import InstrumentConfig
from kairos.errors import InvalidRequest
from kairos.instruments import InstrumentTable
from kairos.records import OrderType, Side, Tif, TradingState, Venue

TABLE = InstrumentTable((
    InstrumentConfig("BTC-USDT", "BTC", "USDT", {"binance": "BTCUSDT", "okx": "BTC-USDT"}),
    InstrumentConfig("SOL-USDT", "SOL", "USDT", {"binance": "SOLUSDT"}),
))
V = Validator(TABLE, frozenset({Venue.BINANCE, Venue.OKX}))


def order(**kw: object) -> pb.PlaceOrderRequest:
    base = dict(client_order_id="abc123", venue=pb.VENUE_BINANCE, instrument="BTC-USDT", side=pb.SIDE_BUY,
                order_type=pb.ORDER_TYPE_LIMIT, price=50000.0, quantity=0.01)
    base.update(kw)
    return pb.PlaceOrderRequest(**base)


def test_valid_limit_order() -> None:
    cmd = V.place(order())
    assert (cmd.client_order_id, cmd.venue, cmd.instrument, cmd.side) == ("abc123", Venue.BINANCE, 1, Side.BUY)
    assert (cmd.order_type, cmd.tif, cmd.price, cmd.qty, cmd.reduce_only) == (OrderType.LIMIT, Tif.GTC,
                                                                                50000.0, 0.01, False)


def test_market_defaults_to_ioc_and_needs_zero_price() -> None:
    cmd = V.place(order(order_type=pb.ORDER_TYPE_MARKET, price=0.0))
    assert cmd.tif is Tif.IOC and cmd.price == 0.0
    with pytest.raises(InvalidRequest, match="price must be 0"):
        V.place(order(order_type=pb.ORDER_TYPE_MARKET, price=10.0))


def test_empty_id_gets_a_fresh_valid_one() -> None:
    a, b = V.place(order(client_order_id="")), V.place(order(client_order_id=""))
    assert a.client_order_id != b.client_order_id
    assert len(a.client_order_id) == 32 and a.client_order_id.isalnum() and a.client_order_id.startswith("api")


@pytest.mark.parametrize(("fields", "message"), [
    ({"instrument": "DOGE-USDT"}, "unknown instrument 'DOGE-USDT'; configured: BTC-USDT, SOL-USDT"),
    ({"instrument": ""}, "unknown instrument ''"),
    ({"instrument": "SOL-USDT", "venue": pb.VENUE_OKX}, "SOL-USDT is not listed on OKX"),
    ({"quantity": 0.0}, "quantity must be a finite number > 0"),
    ({"quantity": -1.0}, "quantity must be a finite number > 0"),
    ({"quantity": math.nan}, "quantity must be a finite number > 0, got nan"),
    ({"quantity": math.inf}, "quantity must be a finite number > 0"),
    ({"price": math.nan}, "price must be a finite number > 0"),
    ({"price": 0.0}, "price must be a finite number > 0"),
    ({"price": -60000.0}, "price must be a finite number > 0"),
    ({"price": math.inf}, "price must be a finite number > 0"),
    ({"price": 5e-324}, "price must be a finite number > 0, got 5e-324"),
    ({"quantity": 5e-324}, "quantity must be a finite number > 0, got 5e-324"),
    ({"order_type": pb.ORDER_TYPE_LIMIT_MAKER, "price": 0.0}, "price must be a finite number > 0"),
    ({"side": 0}, "side is required"),
    ({"side": 7}, "side: unknown value 7"),
    ({"venue": 0}, "venue is required"),
    ({"venue": 9}, "venue: unknown value 9"),
    ({"order_type": 0}, "order_type is required"),
    ({"time_in_force": 42}, "time_in_force: unknown value 42"),
    ({"order_type": pb.ORDER_TYPE_LIMIT_MAKER, "time_in_force": pb.TIME_IN_FORCE_IOC}, "IOC is not allowed"),
    ({"client_order_id": "x" * 33}, "33 characters; at most 32"),
    ({"client_order_id": "bad-id"}, "letters and digits only"),
    ({"client_order_id": "ünïcode"}, "letters and digits only"),
])
def test_invalid_place_order(fields: dict, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message.replace("(", r"\(").replace(")", r"\)")):
        V.place(order(**fields))


def test_disabled_venue_is_refused() -> None:
    only_binance = Validator(TABLE, frozenset({Venue.BINANCE}))
    with pytest.raises(InvalidRequest, match="venue OKX is not enabled"):
        only_binance.place(order(venue=pb.VENUE_OKX))


def test_cancel_needs_an_id_and_accepts_missing_hints() -> None:
    cmd = V.cancel(pb.CancelOrderRequest(client_order_id="abc"))
    assert (cmd.client_order_id, cmd.venue, cmd.instrument) == ("abc", Venue.NONE, 0)
    with pytest.raises(InvalidRequest, match="client_order_id is required"):
        V.cancel(pb.CancelOrderRequest())
    with pytest.raises(InvalidRequest, match="unknown instrument"):
        V.cancel(pb.CancelOrderRequest(client_order_id="abc", instrument="NOPE"))


def test_trading_state() -> None:
    assert trading_state(pb.TRADING_STATE_HALTED) is TradingState.HALTED
    with pytest.raises(InvalidRequest, match="state is required"):
        trading_state(pb.TRADING_STATE_UNSPECIFIED)


def test_client_order_id_limit_is_inclusive() -> None:
    assert client_order_id("A" * 32, allow_empty=False) == "A" * 32
