"""An executor pays from its budget before sending: without room nothing leaves the process (the configured
venue URL is never reached: no transport error), a background call is RateDeferred, an essential one refused
LOCAL, and each is counted."""

from __future__ import annotations

import pytest

from kairos import config
from kairos.execution import EXECUTORS
from kairos.execution.rest import LOCAL
from kairos.instruments import InstrumentTable
from kairos.ratelimit import LIMITS, Budget
from kairos.ratelimit.budget import RateDeferred
from kairos.records import RejectReason


def test_without_budget_nothing_is_sent_and_each_refusal_is_counted() -> None:
    settings = config.load(env={})
    budget = Budget.local(LIMITS["binance"], 100.0, 0.0)         # background calls never have room
    ex = EXECUTORS["binance"](settings.venues["binance"], settings.execution, InstrumentTable(settings.instruments),
                              budget)
    try:
        with pytest.raises(RateDeferred):
            ex.load_filters()                                    # exchangeInfo is background
        budget.penalise(LIMITS["binance"].cost("POST", "/api/v3/order"), 418, 60.0)
        reply = ex._send(ex.cancel_call, "c1", "BTCUSDT")        # essential, but the venue banned us
        assert (reply.code, reply.reason) == (LOCAL, RejectReason.VENUE_RATE_LIMIT) and reply.retry_after_s > 59
        stats = ex.stats()
        assert (stats["rate_deferred"], stats["rate_refused"], stats["budget_ban_status"]) == (1, 1, 418)
        assert "transport_error" not in stats
    finally:
        ex.close()
