"""kairosctl: the engine's command line, over the gRPC API (docs/GRPC.md).

    kairosctl status | orders | positions | balance | events [--count N]
    kairosctl place binance BTC-USDT buy 0.01 --price 50000 [--id ID] [--tif ioc] [--reduce-only]
    kairosctl cancel ID | halt [--cancel-all] | resume [--reduce-only]

The address comes from --addr, else $KAIROS_GRPC_ADDR, else the config's supervisor.grpc_host/port.
Every command sends the API token (--token or $KAIROS_API_TOKEN); --ca ($KAIROS_GRPC_CA) speaks TLS,
--cert/--key ($KAIROS_GRPC_CERT/_KEY) add a client certificate for mutual TLS. Exit codes: 0 ok,
1 the engine said no (REJECT, CANCEL_REJECT, invalid request, ...), 2 usage error, 3 not authorised,
4 engine not reachable.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format

from kairos.api.pb import pb, pb_grpc
from kairos.cli import render

DEFAULT_ADDR = "127.0.0.1:50551"
EXIT_REFUSED, EXIT_USAGE, EXIT_UNAUTHORISED, EXIT_UNREACHABLE = 1, 2, 3, 4
REFUSALS = frozenset((pb.EXEC_KIND_REJECT, pb.EXEC_KIND_CANCEL_REJECT))
FINAL_STATES = frozenset((pb.ORDER_STATE_FILLED, pb.ORDER_STATE_CANCELED, pb.ORDER_STATE_REJECTED,
                          pb.ORDER_STATE_EXPIRED))


def default_addr() -> str:
    if os.environ.get("KAIROS_GRPC_ADDR"):
        return os.environ["KAIROS_GRPC_ADDR"]
    from kairos import config
    from kairos.errors import ConfigError

    try:
        cfg = config.load().supervisor
    except ConfigError:
        return DEFAULT_ADDR
    return f"{cfg.grpc_host}:{cfg.grpc_port}"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kairosctl", description=__doc__.split("\n")[0])
    p.add_argument("--addr", help=f"engine address (default: $KAIROS_GRPC_ADDR or config, {DEFAULT_ADDR})")
    p.add_argument("--token", default=os.environ.get("KAIROS_API_TOKEN", ""), help="API token ($KAIROS_API_TOKEN)")
    p.add_argument("--ca", default=os.environ.get("KAIROS_GRPC_CA", ""),
                   help="PEM CA of the engine's TLS certificate: connect over TLS ($KAIROS_GRPC_CA)")
    p.add_argument("--cert", default=os.environ.get("KAIROS_GRPC_CERT", ""),
                   help="PEM client certificate for mutual TLS ($KAIROS_GRPC_CERT)")
    p.add_argument("--key", default=os.environ.get("KAIROS_GRPC_KEY", ""),
                   help="PEM key of --cert ($KAIROS_GRPC_KEY)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per call (default 10)")
    p.add_argument("--json", action="store_true", help="print the raw responses as JSON")
    sub = p.add_subparsers(dest="command", required=True)
    _reads(sub)
    _writes(sub)
    return p


def _reads(sub: Any) -> None:
    sub.add_parser("status", help="processes, rings and trading state")
    orders = sub.add_parser("orders", help="open orders")
    for q in (orders, sub.add_parser("balance", help="balances per venue")):
        q.add_argument("--venue", choices=render.VENUES, help="only this venue")
    orders.add_argument("--instrument", default="", help="only this instrument, e.g. BTC-USDT")
    sub.add_parser("positions", help="positions per venue and instrument")
    events = sub.add_parser("events", help="follow execution events")
    events.add_argument("--count", type=int, default=0, help="stop after N events (default: follow)")


def _writes(sub: Any) -> None:
    place = sub.add_parser("place", help="place an order (idempotent on --id)")
    place.add_argument("venue", choices=render.VENUES)
    place.add_argument("instrument")
    place.add_argument("side", choices=("buy", "sell"))
    place.add_argument("quantity", type=float)
    place.add_argument("--price", type=limit_price, help="limit price > 0 (omit for a market order)")
    place.add_argument("--type", choices=("limit", "market", "limit_maker"), help="default: limit if --price")
    place.add_argument("--tif", choices=("gtc", "ioc", "fok"), help="default: gtc for limit, ioc for market")
    place.add_argument("--id", default="", help="client order id, <= 32 letters/digits (default: assigned)")
    place.add_argument("--reduce-only", action="store_true")
    place.add_argument("--wait", type=int, default=500, metavar="MS",
                       help="market/IOC/FOK: wait this long for the fills (default 500)")
    sub.add_parser("cancel", help="cancel an order by client order id").add_argument("id")
    halt = sub.add_parser("halt", help="kill switch: trading HALTED")
    halt.add_argument("--cancel-all", action="store_true", help="also cancel every open order")
    halt.add_argument("--reason", default="kairosctl halt")
    resume = sub.add_parser("resume", help="trading ACTIVE again (or REDUCE_ONLY)")
    resume.add_argument("--reduce-only", action="store_true")


def limit_price(text: str) -> float:
    """A limit price: a finite number > 0. ``--price 0`` is refused, never taken for a market order."""
    value = float(text)
    if not sys.float_info.min <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r} (omit --price for a market order)")
    return value


def place_request(a: argparse.Namespace) -> Any:
    kind = a.type or ("market" if a.price is None else "limit")
    return pb.PlaceOrderRequest(
        client_order_id=a.id, venue=render.venue(a.venue), instrument=a.instrument,
        side=pb.Side.Value(f"SIDE_{a.side.upper()}"), order_type=pb.OrderType.Value(f"ORDER_TYPE_{kind.upper()}"),
        time_in_force=pb.TimeInForce.Value(f"TIME_IN_FORCE_{a.tif.upper()}") if a.tif else 0,
        price=a.price or 0.0, quantity=a.quantity, reduce_only=a.reduce_only,
    )


COMMANDS: dict[str, tuple[str, Callable[[argparse.Namespace], Any], Callable[[Any], str]]] = {
    "status": ("GetSystemStatus", lambda a: pb.GetSystemStatusRequest(), render.status),
    "orders": ("ListOrders", lambda a: pb.ListOrdersRequest(venue=render.venue(a.venue), instrument=a.instrument),
               render.orders),
    "positions": ("GetPositions", lambda a: pb.GetPositionsRequest(), render.positions),
    "balance": ("GetBalance", lambda a: pb.GetBalanceRequest(venue=render.venue(a.venue)), render.balances),
    "place": ("PlaceOrder", place_request, render.placed),
    "cancel": ("CancelOrder", lambda a: pb.CancelOrderRequest(client_order_id=a.id), render.cancelled),
    "halt": ("SetTradingState", lambda a: pb.SetTradingStateRequest(
        state=pb.TRADING_STATE_HALTED, cancel_open_orders=a.cancel_all, reason=a.reason), render.trading),
    "resume": ("SetTradingState", lambda a: pb.SetTradingStateRequest(
        state=pb.TRADING_STATE_REDUCE_ONLY if a.reduce_only else pb.TRADING_STATE_ACTIVE,
        reason="kairosctl resume"), render.trading),
}


def run(a: argparse.Namespace, stub: Any) -> int:
    metadata = (("authorization", f"Bearer {a.token}"),) if a.token else ()
    if a.command == "events":
        return follow(a, stub, metadata)
    rpc, build, show = COMMANDS[a.command]
    request = build(a)
    follow_fills = a.command == "place" and a.wait > 0 and finishes_at_once(request)
    fills = Fills(stub, metadata, a.timeout + a.wait / 1000) if follow_fills else None
    try:
        reply = getattr(stub, rpc)(request, metadata=metadata, timeout=a.timeout)
        events = fills.of(reply, a.wait / 1000) if fills else ()
    finally:
        if fills:
            fills.close()
    print(as_json(reply) if a.json else show(reply))
    for event in events:
        print(as_json(event) if a.json else render.event(event))
    if fills and fills.error:
        print(f"kairosctl: fills not followed ({fills.error}); see `kairosctl orders`", file=sys.stderr)
    elif fills and not a.json and not reply.pending:
        print(render.filled(reply.event, events, a.wait))
    event = getattr(reply, "event", None)
    return EXIT_REFUSED if event is not None and event.kind in REFUSALS else 0


def finishes_at_once(request: Any) -> bool:
    """Market orders, IOC and FOK: their fills follow the ACK within the venue's round trip."""
    return request.order_type == pb.ORDER_TYPE_MARKET or request.time_in_force in (
        pb.TIME_IN_FORCE_IOC, pb.TIME_IN_FORCE_FOK)


class Fills:
    """Follows the event stream from before the order is placed, so none of its fills is missed."""

    def __init__(self, stub: Any, metadata: tuple, timeout_s: float) -> None:
        self._stream = stub.StreamEvents(pb.StreamEventsRequest(), metadata=metadata, timeout=timeout_s)
        self._stream.initial_metadata()  # the subscription is live: events from here on arrive
        self._events: queue.Queue[Any] = queue.Queue()
        self.error = ""  # why the stream ended, unless close() ended it
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for event in self._stream:
                self._events.put(event)
        except grpc.RpcError as exc:
            if exc.code() not in (grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED):  # close()/our bound
                self.error = f"{exc.code().name}: {exc.details()}"
        self._events.put(None)

    def of(self, reply: Any, wait_s: float) -> tuple[Any, ...]:
        """The order's events after the reply's own, until it is final or ``wait_s`` has passed."""
        if reply.pending or reply.event.state in FINAL_STATES:
            return ()
        seen, deadline = [], time.monotonic() + wait_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self._events.get(timeout=left)
            except queue.Empty:
                break
            if event is None:
                break
            if event.client_order_id == reply.client_order_id and event.event_seq > reply.event.event_seq:
                seen.append(event)
                if event.state in FINAL_STATES:
                    break
        return tuple(seen)

    def close(self) -> None:
        self._stream.cancel()
        self._reader.join(5)


def as_json(message: Any) -> str:
    """The message as JSON, every field present (stable keys for scripts), strategy ids by name."""
    data = json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    return json.dumps(_named(data), indent=2 if not isinstance(message, pb.ExecutionEvent) else None)


def _named(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: render.strategy(int(v)) if k == "strategy" else _named(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_named(v) for v in data]
    return data


def follow(a: argparse.Namespace, stub: Any, metadata: tuple) -> int:
    for seen, event in enumerate(stub.StreamEvents(pb.StreamEventsRequest(), metadata=metadata), start=1):
        print(as_json(event) if a.json else render.event(event), flush=True)
        if a.count and seen >= a.count:
            break
    return 0


def channel(a: argparse.Namespace, addr: str) -> grpc.Channel:
    """Plaintext, or TLS when a CA is given (mutual with --cert/--key)."""
    if not a.ca:
        return grpc.insecure_channel(addr)
    pem = {name: _read(getattr(a, name), name) for name in ("ca", "cert", "key") if getattr(a, name)}
    if ("cert" in pem) != ("key" in pem):
        raise UsageError("--cert and --key go together")
    return grpc.secure_channel(addr, grpc.ssl_channel_credentials(pem["ca"], pem.get("key"), pem.get("cert")))


class UsageError(Exception):
    """A bad command line the parser cannot see (unreadable files, options that go together)."""


def _read(path: str, option: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"--{option} {path}: {exc.strerror}") from None


def main(argv: Sequence[str] | None = None) -> int:
    a = parser().parse_args(argv)
    addr = a.addr or default_addr()
    try:
        conn = channel(a, addr)
    except UsageError as exc:
        print(f"kairosctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with conn:
        try:
            return run(a, pb_grpc.TradingEngineStub(conn))
        except grpc.RpcError as exc:
            return explain(exc, addr)
        except KeyboardInterrupt:
            return 0


def explain(exc: grpc.RpcError, addr: str) -> int:
    code, details = exc.code(), exc.details() or ""
    if code is grpc.StatusCode.UNAVAILABLE and ("connect" in details.lower() or "socket" in details.lower()):
        print(f"kairosctl: the engine is not reachable at {addr}: is the supervisor running? "
              "(`make run`, or `systemctl status kairos-supervisor`); --addr or $KAIROS_GRPC_ADDR to point "
              "elsewhere", file=sys.stderr)
        return EXIT_UNREACHABLE
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        print(f"kairosctl: no answer from {addr} in time (--timeout)", file=sys.stderr)
        return EXIT_UNREACHABLE
    print(f"kairosctl: {code.name}: {details}", file=sys.stderr)
    return EXIT_UNAUTHORISED if code is grpc.StatusCode.UNAUTHENTICATED else EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())
