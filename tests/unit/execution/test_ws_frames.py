"""The order socket's RFC 6455 framing: client frames masked and decodable; server frames split anywhere by TCP
come out as the same messages; every protocol breach is refused."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kairos.execution.ws_frames import (
    FIN,
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameError,
    FrameReader,
    client_frame,
)


def server_frame(opcode: int, payload: bytes, fin: bool = True, masked: bool = False, rsv: int = 0) -> bytes:
    """A frame as a server writes it (unmasked unless told otherwise)."""
    n = len(payload)
    b0 = (FIN if fin else 0) | rsv | opcode
    mask_bit = 0x80 if masked else 0
    if n < 126:
        header = bytes((b0, mask_bit | n))
    elif n < 65536:
        header = struct.pack("!BBH", b0, mask_bit | 126, n)
    else:
        header = struct.pack("!BBQ", b0, mask_bit | 127, n)
    return header + (b"\0\0\0\0" if masked else b"") + payload


def unmask(frame: bytes) -> tuple[int, bytes]:
    """A client frame decoded as a server does: (first byte, payload)."""
    b0, b1 = frame[0], frame[1]
    assert b1 & 0x80, "client frames are masked"
    n, pos = b1 & 0x7F, 2
    if n == 126:
        n, pos = struct.unpack("!H", frame[2:4])[0], 4
    elif n == 127:
        n, pos = struct.unpack("!Q", frame[2:10])[0], 10
    key, body = frame[pos:pos + 4], frame[pos + 4:]
    assert len(body) == n
    return b0, bytes(b ^ key[i % 4] for i, b in enumerate(body))


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536])
def test_a_client_frame_is_final_masked_and_carries_the_payload(size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    b0, body = unmask(client_frame(OP_TEXT, payload))
    assert b0 == FIN | OP_TEXT and body == payload


def test_mask_keys_differ_between_frames() -> None:
    keys = {client_frame(OP_TEXT, b"x" * 10)[2:6] for _ in range(20)}
    assert len(keys) > 1


messages = st.lists(st.tuples(st.sampled_from([OP_TEXT, OP_BINARY]), st.binary(max_size=300),
                              st.integers(min_value=1, max_value=3)), min_size=1, max_size=6)


@settings(max_examples=200, deadline=None)
@given(messages, st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=40))
def test_messages_survive_any_split_fragmentation_and_interleaved_pings(
        sent: list[tuple[int, bytes, int]], cuts: list[int]) -> None:
    wire, expected = b"", []
    for opcode, payload, parts in sent:
        step = max(1, len(payload) // parts)
        chunks = [payload[i:i + step] for i in range(0, len(payload), step)] or [b""]
        for i, chunk in enumerate(chunks):
            wire += server_frame(opcode if i == 0 else OP_CONT, chunk, fin=i == len(chunks) - 1)
            if i == 0 and len(chunks) > 1:
                wire += server_frame(OP_PING, b"hb")  # a control frame between fragments
                expected.append((OP_PING, b"hb"))
        expected.append((opcode, payload))
    reader, got, pos = FrameReader(), [], 0
    for cut in cuts:
        got += reader.feed(wire[pos:pos + cut])
        pos += cut
    got += reader.feed(wire[pos:])
    assert got == expected


@pytest.mark.parametrize("frames, why", [
    ([server_frame(OP_TEXT, b"{}", masked=True)], "mask"),
    ([server_frame(OP_TEXT, b"{}", rsv=0x40)], "reserved"),
    ([server_frame(OP_PING, b"x" * 126)], "control"),
    ([server_frame(OP_CLOSE, b"", fin=False)], "control"),
    ([server_frame(OP_CONT, b"tail")], "continuation"),
    ([server_frame(OP_TEXT, b"a", fin=False), server_frame(OP_TEXT, b"b")], "inside"),
    ([bytes((FIN | 0x3, 0))], "opcode"),
])
def test_protocol_breaches_are_refused(frames: list[bytes], why: str) -> None:
    with pytest.raises(FrameError, match=why):
        FrameReader().feed(b"".join(frames))


def test_a_message_over_the_limit_is_refused_from_its_header_and_across_fragments() -> None:
    with pytest.raises(FrameError, match="over 100"):
        FrameReader(limit=100).feed(server_frame(OP_TEXT, b"x" * 101)[:4])  # refused before the payload arrives
    reader = FrameReader(limit=100)
    reader.feed(server_frame(OP_TEXT, b"x" * 60, fin=False))
    with pytest.raises(FrameError, match="over 100"):
        reader.feed(server_frame(OP_CONT, b"x" * 60))


def test_control_frames_come_out_as_they_are() -> None:
    reader = FrameReader()
    wire = server_frame(OP_PONG, b"") + server_frame(OP_CLOSE, struct.pack("!H", 1000) + b"bye")
    assert reader.feed(wire) == [(OP_PONG, b""), (OP_CLOSE, b"\x03\xe8bye")]
