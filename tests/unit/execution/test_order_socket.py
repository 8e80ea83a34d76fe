"""OrderSocket's frame handling: replies matched by id, bad bytes counted (orjson checks the UTF-8 that
websocket-client is told to skip), never raised into the reader."""

from __future__ import annotations

import time
from typing import Any

from kairos.execution.ws_orders import Answer, OrderSocket, Tolls


class FakeSock:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendall(self, frame: bytes) -> None:
        self.sent.append(frame)


class FakeWs:
    def __init__(self) -> None:
        self.sock = FakeSock()


def _socket() -> tuple[OrderSocket, list[Answer]]:
    socket = OrderSocket("t", "ws://127.0.0.1:1/", 5.0, 1.0, list, lambda msg: True, "ping")
    socket._ws = FakeWs()  # type: ignore[assignment]
    socket.ready = True
    answers: list[Answer] = []
    socket.send("o1", '{"id": "o1"}', answers.append)
    return socket, answers


def test_a_reply_reaches_its_request_once() -> None:
    socket, answers = _socket()
    socket._on_frame(b'{"id": "o1", "status": 200, "result": {}}')
    socket._on_frame(b'{"id": "o1", "status": 200, "result": {}}')
    assert answers == [{"id": "o1", "status": 200, "result": {}}]
    assert socket.counts["replies"] == 1 and socket.counts["stray_replies"] == 1


def test_bad_utf8_and_bad_json_are_counted_and_the_request_still_waits() -> None:
    socket, answers = _socket()
    for frame in (b'{"id": "o1", "msg": "\xff\xfe"}', b"\xc3(", b"{not json", b"[1, 2]"):
        socket._on_frame(frame)
    assert socket.counts["bad_frames"] == 4 and answers == []
    socket._on_frame(b"pong")
    assert socket.counts["bad_frames"] == 4
    socket._on_frame('{"id": "o1", "msg": "é"}'.encode())
    assert answers == [{"id": "o1", "msg": "é"}]


def test_a_callback_bug_is_counted_not_raised() -> None:
    socket = OrderSocket("t", "ws://127.0.0.1:1/", 5.0, 1.0, list, lambda msg: True, "ping")
    socket._ws = FakeWs()  # type: ignore[assignment]
    socket.ready = True

    def broken(answer: Any) -> None:
        raise RuntimeError("bug")

    socket.send("o1", "{}", broken)
    socket._on_frame(b'{"id": "o1"}')
    assert socket.counts["callback_errors"] == 1


def test_a_connect_waits_until_the_budget_pays_for_it() -> None:
    """Each (re)connect is paid first: while the toll is short nothing connects (counted), then it goes."""
    asked: list[float] = []
    shorts = iter([0.05, 0.05])

    def connect_toll() -> float:
        asked.append(time.monotonic())
        return next(shorts, 0.0)

    socket = OrderSocket("t", "ws://127.0.0.1:9/", 1.0, 0.2, list, lambda msg: True, "ping",
                         Tolls(connect=connect_toll))
    socket.start()
    try:
        deadline = time.monotonic() + 10
        while socket.counts["connects"] < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        socket.close()
    assert socket.counts["budget_deferred"] == 2
    assert socket.counts["connects"] >= 2                # port 9 refuses: it reconnects, paying each time
    assert len(asked) >= 2 + socket.counts["connects"] - 1
