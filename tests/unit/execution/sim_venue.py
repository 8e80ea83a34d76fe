"""One venue of the simulator in process, for driving its WebSocket orders with the executor's own frames: the
private dialect (kairos/sim/private_<name>.py) with its REST trading account and a REST rate meter whose clock
stands still, one session, and the venue's executor. No socket is opened; ``on_text`` is called directly."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Final

import orjson

from kairos import config
from kairos.execution import EXECUTORS, OrderRequest
from kairos.execution.venue import Reply
from kairos.instruments import InstrumentTable
from kairos.ratelimit import LIMITS
from kairos.records import OrderType, Side, Tif
from kairos.sim.market import SimMarket, build_specs
from kairos.sim.private import PrivateSession
from kairos.sim.ratelimit import VenueMeter
from kairos.sim.rest_trading import register_trading_routes
from kairos.sim.router import Router
from kairos.venues import BY_NAME, resolve

SECRETS: Final = {"api_key": "k", "api_secret": "s", "passphrase": "p"}
"""The credentials both sides are configured with (the simulator accepts what the executor signs with)."""
NOW: Final = 1_800_000_000.0


def keys(name: str) -> dict[str, str]:
    """The environment that configures ``venues.<name>`` with `SECRETS`."""
    return {f"KAIROS__VENUES__{name.upper()}__{secret.upper()}": SECRETS[secret] for secret in BY_NAME[name].secrets}


class SimVenue:
    """The simulator's private dialect of one venue with its trading account, and the executor whose frames it
    answers. ``meter_scale`` scales the venue's documented REST limits (small: a test reaches them in a few
    requests); ``path`` is the request path the session connected on, for a dialect that serves two."""

    def __init__(self, name: str, symbol: str, meter_scale: float, now: float = NOW, path: str | None = None) -> None:
        spec = BY_NAME[name]
        self.venue, self.symbol = spec.venue, symbol
        self.settings = settings = config.load(env=keys(name))
        self.market = SimMarket(build_specs(settings.instruments, settings.sim), settings.sim, lambda event: None)
        trading = next(d for d in register_trading_routes(Router(), self.market, settings) if d.venue is spec.venue)
        self.exchange = trading.exchange
        self.private = resolve(spec.sim_private)(settings.venues[name], settings.sim)
        self.private.trading = trading
        self.meter = self.private.meter = VenueMeter(spec.venue, LIMITS[name].scaled(meter_scale), 2, 30.0,
                                                     lambda: now)
        conn = None if path is None else SimpleNamespace(request=SimpleNamespace(path=path))
        self.session = PrivateSession(conn, 1)  # type: ignore[arg-type]  # on_text reads at most the path
        self.client = EXECUTORS[name](settings.venues[name], settings.execution, InstrumentTable(settings.instruments))

    def send(self, frame: dict[str, Any] | str) -> dict[str, Any]:
        """The dialect's one reply to ``frame`` (a dict is sent as its JSON)."""
        [reply] = self.private.on_text(self.session, frame if isinstance(frame, str) else orjson.dumps(frame).decode())
        return orjson.loads(reply)

    def place(self, coid: str, price: float, qty: float = 0.01) -> tuple[Reply, dict[str, Any]]:
        """A GTC limit buy placed over the socket (request id ``o<coid>``): the executor's reading and the reply."""
        req = OrderRequest(coid, 1, self.symbol, Side.BUY, OrderType.LIMIT, Tif.GTC, price, qty, 0)
        msg = self.send(self.client.ws_place(f"o{coid}", req, str(price), str(qty)))
        return self.client.ws_reply(msg)[0], msg

    def resting_price(self) -> float:
        """A buy price 100 below the best bid: the order rests."""
        bid, _ = self.market.best(self.venue, self.symbol)
        return float(int(bid.price) - 100)

    def close(self) -> None:
        """Closes the executor (its HTTP client)."""
        self.client.close()
