"""The pipeline benchmark's tick source: a lean WebSocket server speaking Binance ``bookTicker`` and
OKX ``bbo-tbt``, sending crafted BBO ticks at a fixed rate over real TCP sockets.

Why not the simulator: it renders a random walk at tens of Hz through asyncio; this needs 10k-50k
frames/s at a known pace with a known share of arbitrage opportunities. Frames are pre-rendered
around two numbers filled in at send time: the send wall-clock ns goes into the venue update id
(Binance ``u``, OKX ``seqId``), which the feeds copy to ``venue_seq``, so every market-data record
says when its tick left the source.

Ticks go round the four books (Binance BTC, OKX BTC, Binance ETH, OKX ETH). Per instrument, once
every ``cycle`` ticks of a book one venue's bid jumps 40 bp above the other's ask (which direction
alternates, keeping positions flat) and stays there for ``window`` ticks, then falls back: the
opening tick is a known 1 / (4 * cycle) share of all ticks. The window lasts ~2 ms at any rate, so
the legs the strategy sends still find the prices they were priced at when they reach the paper
venue. Pacing sleeps to each tick's due time (timer slack 1 ns); ticks due together for one
socket go out in one ``send`` (TCP_NODELAY), as a busy venue batches.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import hashlib
import select
import socket
import struct
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Final

GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
VENUES: Final = ("binance", "okx")
INSTRUMENTS: Final = (("BTCUSDT", "BTC-USDT", 60000.0), ("ETHUSDT", "ETH-USDT", 3000.0))
JUMP: Final = 1.004
CYCLE_S: Final = 0.02
WINDOW_S: Final = 0.002
PR_SET_TIMERSLACK: Final = 29


def ws_frame(payload: bytes, opcode: int = 1) -> bytes:
    """A server frame (unmasked, FIN)."""
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, n)) + payload
    if n < 65536:
        return bytes((0x80 | opcode, 126)) + struct.pack(">H", n) + payload
    return bytes((0x80 | opcode, 127)) + struct.pack(">Q", n) + payload


def accept_key(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def _book_parts(venue: str, inst: int, bid: float, ask: float, qty: float) -> tuple[bytes, ...]:
    """Frame bytes around the numbers filled in at send time (OKX: ms then ns; Binance: ns)."""
    sym, inst_id, _ = INSTRUMENTS[inst]
    if venue == "binance":
        return (f'{{"stream":"{sym.lower()}@bookTicker","data":{{"u":'.encode(),
                f',"s":"{sym}","b":"{bid:.2f}","B":"{qty:.4f}","a":"{ask:.2f}","A":"{qty:.4f}"}}}}'.encode())
    return (f'{{"arg":{{"channel":"bbo-tbt","instId":"{inst_id}"}},"data":[{{"asks":[["{ask:.2f}","{qty:.4f}","0",'
            f'"1"]],"bids":[["{bid:.2f}","{qty:.4f}","0","1"]],"ts":"'.encode(), b'","seqId":', b"}]}")


def render(parts: tuple[bytes, ...], now_ns: int) -> bytes:
    if len(parts) == 2:
        return ws_frame(parts[0] + str(now_ns).encode() + parts[1])
    return ws_frame(parts[0] + str(now_ns // 1_000_000).encode() + parts[1] + str(now_ns).encode() + parts[2])


@dataclass(frozen=True, slots=True)
class Schedule:
    """Which frame tick ``k`` is: book ``k % 4``, normal or rich (see the module docstring)."""

    cycle: int
    window: int

    @classmethod
    def for_rate(cls, rate: float) -> Schedule:
        per_book = rate / 4
        return cls(max(8, round(per_book * CYCLE_S)), max(2, round(per_book * WINDOW_S)))

    @property
    def open_fraction(self) -> float:
        """Share of all ticks that open an opportunity."""
        return 1.0 / (4 * self.cycle)

    def state(self, k: int) -> tuple[int, int, int]:
        """(venue index, instrument index, variant): variant 0 normal, 1 rich, 2 + n jitter of sizes."""
        book, m = k & 3, k >> 2
        venue, inst = book & 1, book >> 1
        phase = m + inst * (self.cycle // 2)
        if phase % self.cycle < self.window and (phase // self.cycle) % 2 == venue:
            return venue, inst, 1
        return venue, inst, 0 if m % 3 else 2


def build_frames() -> dict[tuple[int, int, int], tuple[bytes, ...]]:
    """Parts per (venue, instrument, variant). Normal books overlap (no edge); rich = bid 40 bp up."""
    frames = {}
    for v, venue in enumerate(VENUES):
        for i, (_, _, price) in enumerate(INSTRUMENTS):
            half = 0.01 if venue == "binance" else 0.1
            frames[v, i, 0] = _book_parts(venue, i, price - half, price + half, 1.5)
            frames[v, i, 2] = _book_parts(venue, i, price - half, price + half, 2.5)
            frames[v, i, 1] = _book_parts(venue, i, price * JUMP, price * JUMP + 0.1, 1.5)
    return frames


class Client:
    """One accepted connection after the handshake: answers OKX text pings, notices a close."""

    __slots__ = ("_buf", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = b""

    @classmethod
    def handshake(cls, sock: socket.socket) -> Client:
        sock.settimeout(5.0)
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            request += chunk
        key = next(line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept_key(key) + b"\r\n\r\n")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(sock)

    def on_readable(self) -> bool:
        """Consume client frames (masked); False when the connection is gone."""
        try:
            chunk = self.sock.recv(65536)
        except OSError:
            return False
        if not chunk:
            return False
        self._buf += chunk
        while len(self._buf) >= 6:
            opcode, n, head = self._buf[0] & 0x0F, self._buf[1] & 0x7F, 2
            if n >= 126:
                head, n = (4, struct.unpack(">H", self._buf[2:4])[0]) if n == 126 else \
                    (10, struct.unpack(">Q", self._buf[2:10])[0])
            if len(self._buf) < head + 4 + n:
                break
            mask, data = self._buf[head : head + 4], self._buf[head + 4 : head + 4 + n]
            self._buf = self._buf[head + 4 + n :]
            payload = bytes(b ^ mask[i & 3] for i, b in enumerate(data))
            if opcode == 8:
                return False
            if opcode == 1 and payload == b"ping":
                self.sock.sendall(ws_frame(b"pong"))
        return True

    def close(self) -> None:
        self.sock.close()


class TickSource:
    """Listeners per (pipeline, venue); `serve` answers commands on a multiprocessing Connection."""

    def __init__(self, pipelines: tuple[str, ...], host: str = "127.0.0.1") -> None:
        self.listeners: dict[socket.socket, tuple[str, int]] = {}
        for pipeline in pipelines:
            for v in range(len(VENUES)):
                sock = socket.create_server((host, 0))
                self.listeners[sock] = (pipeline, v)
        self.clients: dict[tuple[str, int], Client] = {}
        self.frames = build_frames()

    def ports(self) -> dict[str, int]:
        return {f"{p}.{VENUES[v]}": s.getsockname()[1] for s, (p, v) in self.listeners.items()}

    def serve(self, ctl: Connection) -> None:
        while True:
            by_fd: dict[Any, Any] = {ctl: None, **{s: s for s in self.listeners},
                                     **{c.sock: key for key, c in self.clients.items()}}
            readable, _, _ = select.select(list(by_fd), [], [], 0.5)
            for item in readable:
                if item is ctl:
                    command, *args = ctl.recv()
                    if command == "stop":
                        return
                    answers = {"ports": self.ports, "connected": self.connected, "run": self.run}
                    try:
                        ctl.send(answers[command](*args))
                    except (KeyError, OSError) as exc:  # a missing or dropped connection: say so, keep serving
                        ctl.send({"error": f"{command}: {exc!r}"})
                elif item in self.listeners:
                    self._accept(item)
                elif not self.clients[by_fd[item]].on_readable():
                    self.clients.pop(by_fd[item]).close()

    def _accept(self, listener: socket.socket) -> None:
        sock, _ = listener.accept()
        key = self.listeners[listener]
        try:
            client = Client.handshake(sock)
        except (OSError, ConnectionError, StopIteration):
            sock.close()
            return
        old = self.clients.pop(key, None)
        if old is not None:
            old.close()
        self.clients[key] = client

    def connected(self) -> list[str]:
        return sorted(f"{p}.{VENUES[v]}" for p, v in self.clients)

    def run(self, pipeline: str, rate: float, seconds: float) -> dict[str, Any]:
        """Send ``rate * seconds`` ticks to ``pipeline``'s two connections, paced; returns what happened."""
        socks = [self.clients[(pipeline, v)].sock if (pipeline, v) in self.clients else None
                 for v in range(len(VENUES))]
        schedule, frames, total = Schedule.for_rate(rate), self.frames, int(rate * seconds)
        interval, k, sends, late_max = 1e9 / rate, 0, 0, 0.0
        start_wall, t0 = time.time_ns(), time.perf_counter_ns()
        while k < total:
            elapsed = time.perf_counter_ns() - t0
            late_max = max(late_max, elapsed - k * interval)
            due = min(total, int(elapsed / interval) + 1)
            out: list[list[bytes]] = [[], []]
            now = time.time_ns()
            for tick in range(k, due):
                venue, inst, variant = schedule.state(tick)
                out[venue].append(render(frames[venue, inst, variant], now))
            for sock, batch in zip(socks, out, strict=True):
                if batch and sock is not None:
                    sock.sendall(b"".join(batch))
                    sends += 1
            k = due
            wait = t0 + k * interval - time.perf_counter_ns()
            if wait > 0:
                time.sleep(wait / 1e9)
        elapsed = (time.perf_counter_ns() - t0) / 1e9
        return {"ticks": total, "seconds": round(elapsed, 3), "rate": round(total / elapsed),
                "frames_per_send": round(total / max(sends, 1), 2), "max_late_us": round(late_max / 1000, 1),
                "start_ns": start_wall, "end_ns": time.time_ns(), "cycle_ticks": schedule.cycle,
                "window_ticks": schedule.window, "open_fraction": schedule.open_fraction}


def main(ctl: Connection, pipelines: tuple[str, ...]) -> None:
    """Process entry (multiprocessing target): serve until told to stop."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)  # sleeps wake on time, not 50 us late
    source = TickSource(pipelines)
    try:
        source.serve(ctl)
    finally:
        for client in source.clients.values():
            client.close()
        for sock in source.listeners:
            sock.close()
