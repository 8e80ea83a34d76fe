"""PrivateStream connection handling against a local WebSocket server that never answers: heartbeat at half
the watchdog, reconnect when the watchdog expires, backoff between attempts, no reconnect the rate budget
cannot pay, a clean close."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from kairos import config
from kairos.config import EndpointConfig, Secret
from kairos.execution.stream_okx import OkxStream
from kairos.ratelimit import LIMITS, Budget
from kairos.ratelimit.table import Window
from tests.unit.execution.test_stream_parsers import Sink


class Silent:
    """Accepts connections and records what clients send; never sends anything."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.connections = 0
        self.server: Server = serve(self._handle, "127.0.0.1", 0)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _handle(self, conn: ServerConnection) -> None:
        self.connections += 1
        try:
            for message in conn:
                self.received.append(str(message))
        except ConnectionClosed:
            pass

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}/ws/v5/private"


@pytest.fixture
def silent() -> Iterator[Silent]:
    server = Silent()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.thread.join(timeout=5)


def _stream(url: str, budget: Budget | None = None) -> OkxStream:
    base = config.load(env={})
    venue = dataclasses.replace(base.venues["okx"], endpoints={"sim": EndpointConfig("", "", url)}, endpoint="sim",
                                api_key=Secret("k"), api_secret=Secret("s"), passphrase=Secret("p"))
    execution = dataclasses.replace(base.execution, stream_watchdog_s=0.4, stream_backoff_max_s=0.2,
                                    http_timeout_s=1.0)
    return OkxStream(venue, execution, Sink(), lambda: int(time.time() * 1000), budget)


def _wait(condition: Callable[[], bool], what: str) -> None:
    for _ in range(500):
        if condition():
            return
        time.sleep(0.01)
    pytest.fail(f"timed out waiting for {what}")


def test_a_silent_venue_gets_a_heartbeat_then_the_watchdog_reconnects(silent: Silent) -> None:
    stream = _stream(silent.url)
    stream.start()
    try:
        _wait(lambda: stream.counts["watchdog"] >= 1 and silent.connections >= 2, "watchdog and a reconnect")
        assert silent.received[0].startswith('{"op":"login"') and "ping" in silent.received
        assert not stream.healthy and stream.counts["disconnects"] >= 1
    finally:
        stream.close()
    assert not stream._thread.is_alive()


def test_connection_refused_backs_off_and_keeps_trying() -> None:
    stream = _stream("ws://127.0.0.1:9/ws/v5/private")
    stream.start()
    try:
        _wait(lambda: stream.counts["connects"] >= 3, "three attempts")
        assert stream.counts["disconnects"] >= 2 and not stream.healthy
    finally:
        stream.close()
    assert not stream._thread.is_alive()


def test_a_reconnect_storm_stops_at_the_budget(silent: Silent) -> None:
    """One connect per (very long) window: the watchdog ends the first session, the reconnect waits for budget."""
    okx = LIMITS["okx"]
    windows = tuple(Window(w.name, 1, 2**40) if w.name == "ws/connect" else w for w in okx.windows)
    budget = Budget.local(dataclasses.replace(okx, windows=windows), 0.0, 0.0)
    stream = _stream(silent.url, budget)
    stream.start()
    try:
        _wait(lambda: stream.counts["watchdog"] >= 1 and stream.counts["budget_deferred"] >= 1, "a deferred reconnect")
        assert stream.counts["connects"] == 1 and silent.connections == 1
    finally:
        stream.close()
        budget.close()
    assert not stream._thread.is_alive()
