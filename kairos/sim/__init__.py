"""Local exchange simulator: Binance and OKX dialects over real WebSocket and HTTP ports.

Pieces (one job each):
    router.py   Router.register(method, path, handler); handler(Request) -> Response; HttpServer per venue port
    book.py     VenueSpec (tick/lot/min filters), Level, BookView, SimBook, the events a book emits
    market.py   SimMarket: seeded random-walk books per (venue, symbol), thread-safe read/take API
    hub.py      asyncio WebSocket servers: sessions, subscriptions, fan-out, faults on the wire
    binance.py / okx.py   each venue's dialect: WS frames, subscribe handling, public REST routes
    faults.py   runtime fault injection (POST /_sim/fault) shared by WS and REST
    replay.py   serve a recorded capture/*.jsonl timeline instead of the random walk
    server.py   SimServer: builds and wires all of the above, start()/close()

Plugging trading endpoints in (executors: kairos/sim/rest_trading.py)::

    def register_trading_routes(router: Router, market: SimMarket, settings: Settings) -> None:
        router.register("POST", "/api/v3/order", handler)   # one Router serves both venue ports;
        ...                                                  # request.venue says which port was hit

`SimServer` imports that function when the module exists and calls it once, before the ports open.
Handlers run in HTTP worker threads; `SimMarket` methods are thread-safe (see market.py).
"""
