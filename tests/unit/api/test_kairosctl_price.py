"""kairosctl place: ``--price`` is a limit price > 0; 0, negatives and non-finite numbers are refused with
a clear message (never taken for a market order); no ``--price`` is a market order."""

from __future__ import annotations

import pytest

from kairos.api.pb import pb
from kairos.cli.kairosctl import parser, place_request

PLACE = ["place", "binance", "BTC-USDT", "buy", "0.01"]


@pytest.mark.parametrize("price", ["0", "-1", "nan", "inf", "5e-324"])
def test_a_price_that_is_not_a_positive_number_is_refused(price: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args([*PLACE, "--price", price])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--price: must be a finite number > 0" in err and "omit --price for a market order" in err


def test_limit_with_a_price_market_without() -> None:
    limit = place_request(parser().parse_args([*PLACE, "--price", "60000.5"]))
    assert (limit.order_type, limit.price) == (pb.ORDER_TYPE_LIMIT, 60000.5)
    market = place_request(parser().parse_args(PLACE))
    assert (market.order_type, market.price) == (pb.ORDER_TYPE_MARKET, 0.0)
