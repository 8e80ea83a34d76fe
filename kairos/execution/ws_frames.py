"""RFC 6455 framing for the order socket: one ``sendall`` per frame out, one ``recv`` per burst of frames in.

websocket-client opens the connection (handshake, TLS); the order socket then reads and writes the socket itself.
Its frame reader takes three ``recv`` calls and several object layers per frame and its sender another layer,
~0.1 ms of an order's round trip on a loaded 2-vCPU box (docs/BENCHMARKS.md, order_ack). Client frames carry a
fresh random mask key (RFC 6455 5.3); a server frame must not be masked, and no extension is negotiated, so
reserved bits set, a masked frame, a control frame over 125 bytes or fragmented, a continuation without a start,
or a message over the size limit end the connection (`FrameError`, a transport error: reconnect, pending
requests lost and queried).
"""

from __future__ import annotations

import random
import struct
from typing import Final

import websocket

OP_CONT: Final = 0x0
OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA
FIN: Final = 0x80
MASKED: Final = 0x80
MAX_MESSAGE: Final = 1 << 20  # an order reply is < 2 KiB; 1 MiB leaves room for any venue's error text


class FrameError(websocket.WebSocketProtocolException):
    """The server broke the framing protocol: the connection cannot be trusted any more."""


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One final frame from a client: masked with a fresh random key."""
    n = len(payload)
    if n < 126:
        header = bytes((FIN | opcode, MASKED | n))
    elif n < 65536:
        header = struct.pack("!BBH", FIN | opcode, MASKED | 126, n)
    else:
        header = struct.pack("!BBQ", FIN | opcode, MASKED | 127, n)
    key = random.getrandbits(32).to_bytes(4, "little")
    mask = int.from_bytes((key * (n // 4 + 1))[:n], "little")
    return header + key + (int.from_bytes(payload, "little") ^ mask).to_bytes(n, "little")


class FrameReader:
    """Server frames in, whole messages out: ``feed`` takes what one ``recv`` returned and gives every message it
    completed as (opcode, payload); control frames may arrive between the fragments of a message."""

    __slots__ = ("_buf", "_limit", "_opcode", "_parts", "_size")

    def __init__(self, limit: int = MAX_MESSAGE) -> None:
        self._buf = bytearray()
        self._limit = limit
        self._opcode = 0
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buf = self._buf
        buf += data
        out: list[tuple[int, bytes]] = []
        pos, end = 0, len(buf)
        while end - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            n, head = b1 & 0x7F, 2
            if n == 126:
                if end - pos < 4:
                    break
                n, head = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
            elif n == 127:
                if end - pos < 10:
                    break
                n, head = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
            self._check(b0, b1, n)
            if end - pos < head + n:
                break
            payload = bytes(buf[pos + head:pos + head + n])
            pos += head + n
            message = self._message(b0, payload)
            if message is not None:
                out.append(message)
        del buf[:pos]
        return out

    def _check(self, b0: int, b1: int, n: int) -> None:
        """What can be refused from a frame's header alone (before its payload is waited for)."""
        opcode = b0 & 0x0F
        if b0 & 0x70 or b1 & MASKED:
            raise FrameError(f"reserved bits or mask set in a server frame (0x{b0:02x} 0x{b1:02x})")
        if opcode >= OP_CLOSE and (n > 125 or not b0 & FIN):
            raise FrameError(f"control frame 0x{opcode:x} fragmented or over 125 bytes ({n})")
        if opcode not in (OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG):
            raise FrameError(f"unknown opcode 0x{opcode:x}")
        if self._size + n > self._limit:
            raise FrameError(f"message over {self._limit} bytes")

    def _message(self, b0: int, payload: bytes) -> tuple[int, bytes] | None:
        """The message this frame completes, if any (fragments are kept until their final frame)."""
        opcode = b0 & 0x0F
        if opcode >= OP_CLOSE:
            return opcode, payload
        if opcode == OP_CONT:
            if not self._parts:
                raise FrameError("continuation frame without a message to continue")
        elif self._parts:
            raise FrameError("a new message began inside a fragmented one")
        else:
            self._opcode = opcode
        if b0 & FIN and not self._parts:
            return opcode, payload
        self._parts.append(payload)
        self._size += len(payload)
        if not b0 & FIN:
            return None
        message = self._opcode, b"".join(self._parts)
        self._parts, self._size = [], 0
        return message
