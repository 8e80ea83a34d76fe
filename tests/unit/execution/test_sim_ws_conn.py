"""The simulator's lean WebSocket server (kairos/sim/ws_conn.py) on loopback: handshake and path check, replies,
fragments, size limit, keepalive both ways, closing, stop, a failing handler, and a client that stops reading.
Clients are websockets' own asyncio client, or its Sans-I/O client over a raw stream where a test needs a client
that misbehaves (no pongs, invalid UTF-8, no reading)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import CLOSE, Close, Frame
from websockets.uri import parse_uri

from kairos.sim.ws_conn import WsConnection, WsOptions, WsServer

PATH = "/ws"
BIG = "x" * 65536


class Echo:
    """Echoes each message; ``boom`` raises; ``flood n`` sends n 64 KiB frames; ``burst n``: frames 0..n-1 in one
    write."""

    def __init__(self) -> None:
        self.opened, self.closed_n, self.messages = 0, 0, []

    def open(self, conn: WsConnection) -> None:
        self.opened += 1
        conn.session = self.opened

    def message(self, conn: WsConnection, text: str) -> None:
        self.messages.append(text)
        if text == "boom":
            raise RuntimeError("boom")
        if text.startswith("burst"):
            conn.send_texts([str(i) for i in range(int(text.split()[1]))])
            return
        if text.startswith("flood"):
            for _ in range(int(text.split()[1])):
                conn.send_text(BIG)
            return
        conn.send_text(text)

    def closed(self, conn: WsConnection) -> None:
        self.closed_n += 1


def run(test: Callable[..., Coroutine[Any, Any, None]], **opts: Any) -> Echo:
    """Run ``test(server, url)`` against a started server (stopped after), bounded in time."""
    app = Echo()

    async def main() -> None:
        server = WsServer(app, WsOptions((PATH,), **opts))
        await server.start("127.0.0.1", 0)
        try:
            async with asyncio.timeout(20):
                await test(server, f"ws://127.0.0.1:{server.port}")
        finally:
            await server.stop()
        assert not server.connections

    asyncio.run(main())
    return app


async def until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"timed out waiting for: {what}")


@contextlib.asynccontextmanager
async def raw_client(url: str, rcvbuf: int = 0) -> AsyncIterator[tuple[ClientProtocol, asyncio.StreamReader,
                                                                        asyncio.StreamWriter]]:
    """A handshaken client that does only what the test makes it do (never pongs unless told)."""
    proto = ClientProtocol(parse_uri(url))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    host, port = url.split("/")[2].split(":")
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096 if rcvbuf else 2**16)
    proto.send_request(proto.connect())
    writer.write(b"".join(proto.data_to_send()))
    while not proto.events_received():
        proto.receive_data(await reader.read(4096))
    try:
        yield proto, reader, writer
    finally:
        writer.transport.abort()


def test_echo_fragments_and_client_ping() -> None:
    async def test(server: WsServer, url: str) -> None:
        async with connect(url + PATH, compression=None) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(["frag", "mented"])                         # one message in three frames
            assert await ws.recv() == "fragmented"
            await ws.send(b"bin")
            assert await ws.recv() == "bin"
            await ws.send("burst 3")
            assert [await ws.recv() for _ in range(3)] == ["0", "1", "2"]
            await asyncio.wait_for(await ws.ping(), 5)                 # the server answers a client's ping
            assert ws.response.headers.get("Sec-WebSocket-Extensions") is None  # no compression
        await until(lambda: not server.connections, "closed")

    app = run(test)
    assert (app.opened, app.closed_n, app.messages) == (1, 1, ["hello", "fragmented", "bin", "burst 3"])


def test_unknown_path_is_closed_1008() -> None:
    async def test(server: WsServer, url: str) -> None:
        async with connect(url + "/nope") as ws:
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1008
        assert server.counts["unknown_paths"] == 1

    assert run(test).opened == 0


def test_a_message_over_the_limit_closes_1009() -> None:
    async def test(server: WsServer, url: str) -> None:
        async with connect(url + PATH, max_size=None) as ws:
            await ws.send("y" * 2000)
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009

    assert run(test, max_message=1024).messages == []


def test_a_failing_handler_closes_1011_and_is_counted() -> None:
    async def test(server: WsServer, url: str) -> None:
        async with connect(url + PATH) as ws:
            await ws.send("boom")
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1011
        assert server.counts["handler_errors"] == 1

    run(test)


def test_invalid_utf8_closes_1007() -> None:
    async def test(server: WsServer, url: str) -> None:
        async with raw_client(url + PATH) as (proto, reader, writer):
            proto.send_text(b"\xff\xfe")
            writer.write(b"".join(proto.data_to_send()))
            frames = await read_frames(proto, reader)
        assert Close.parse(frames[-1].data).code == 1007
        assert server.counts["bad_text"] == 1

    run(test)


async def read_frames(proto: ClientProtocol, reader: asyncio.StreamReader) -> list[Frame]:
    """Frames until the server's close frame."""
    frames: list[Frame] = []
    while not frames or frames[-1].opcode is not CLOSE:
        proto.receive_data(await reader.read(65536))
        frames += [e for e in proto.events_received() if isinstance(e, Frame)]
    return frames


def test_keepalive_pings_and_drops_a_client_that_never_pongs() -> None:
    async def test(server: WsServer, url: str) -> None:
        async with connect(url + PATH) as ws:                          # answers pings itself
            await asyncio.sleep(0.3)
            await ws.send("still here")
            assert await ws.recv() == "still here"
        async with raw_client(url + PATH):                             # reads nothing, answers nothing
            await until(lambda: server.counts["ping_timeouts"] == 1, "ping timeout")
            await until(lambda: not server.connections, "dead client dropped")

    app = run(test, ping_interval_s=0.05, ping_timeout_s=0.15)
    assert app.closed_n == 2


def test_a_client_that_stops_reading_is_dropped_past_the_buffer_cap() -> None:
    async def test(server: WsServer, url: str) -> None:
        async with raw_client(url + PATH, rcvbuf=4096) as (proto, _, writer):
            proto.send_text(b"flood 200")                              # 13 MB while nobody reads
            writer.write(b"".join(proto.data_to_send()))
            await until(lambda: server.counts["overflows"] == 1, "overflow")
            await until(lambda: not server.connections, "slow client dropped")

    assert run(test, max_buffer=2**18).closed_n == 1


def test_stop_closes_every_connection_1001() -> None:
    closes: list[int] = []

    async def test(server: WsServer, url: str) -> None:
        async with connect(url + PATH) as a, connect(url + PATH) as b:
            await until(lambda: len(server.connections) == 2, "two open")
            stopping = asyncio.ensure_future(server.stop())
            for ws in (a, b):
                with pytest.raises(ConnectionClosed) as info:
                    await ws.recv()
                assert info.value.rcvd is not None
                closes.append(info.value.rcvd.code)
            await stopping

    assert run(test).closed_n == 2 and closes == [1001, 1001]
