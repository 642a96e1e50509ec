"""server/gateway.py's input_frame: the common input frame read without msgpack gives what
protocol.decode gives for it; every other frame is left to protocol.decode (None)."""

from __future__ import annotations

import math
import struct

import msgpack
import pytest

from server.gateway import input_frame
from world import protocol
from world.protocol import MAX_SEQ, Input


@pytest.mark.parametrize("seq", [0, 1, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, MAX_SEQ])
@pytest.mark.parametrize("dx, dy", [(0.0, 0.0), (-0.0, 1.0), (-1.0, 1.0), (0.6, -0.8), (1e-300, -0.999999)])
def test_a_python_clients_input_is_read_as_protocol_decode_reads_it(seq, dx, dy):
    frame = msgpack.packb({"t": "input", "seq": seq, "dx": dx, "dy": dy})
    got = input_frame(frame)
    assert got is not None and got == protocol.decode(frame) == Input(seq, dx, dy)


def packed(seq_bytes: bytes, dx: bytes = struct.pack(">d", 0.5), dy: bytes = struct.pack(">d", 0.5)) -> bytes:
    return b"\x84\xa1t\xa5input\xa3seq" + seq_bytes + b"\xa2dx\xcb" + dx + b"\xa2dy\xcb" + dy


@pytest.mark.parametrize(
    "frame",
    [
        msgpack.packb({"t": "input", "dx": 0.5, "seq": 1, "dy": 0.5}),  # another key order
        msgpack.packb({"t": "input", "seq": 1, "dx": 1, "dy": 0}),  # ints, as a browser's msgpack writes them
        msgpack.packb({"t": "input", "seq": 1, "dx": 0.5, "dy": 0.5}, use_single_float=True),  # float32
        msgpack.packb({"t": "input", "seq": 1, "dx": 1.5, "dy": 0.5}),  # out of range
        msgpack.packb({"t": "input", "seq": 1, "dx": math.nan, "dy": 0.5}),
        msgpack.packb({"t": "input", "seq": 1, "dx": 0.5, "dy": -math.inf}),
        msgpack.packb({"t": "input", "seq": -1, "dx": 0.5, "dy": 0.5}),
        msgpack.packb({"t": "input", "seq": MAX_SEQ + 1, "dx": 0.5, "dy": 0.5}),
        msgpack.packb({"t": "ping", "id": 1}),
        packed(b"\x80"),  # a fixmap byte where the seq's fixint is
        packed(b"\xcd\x01"),  # a u16 tag with one byte: 38 bytes, the u8 form's length
        packed(b"\xd0\x01"),  # an int8 tag
        packed(b"\x01") + b"\x00",  # a byte more
        packed(b"\x01")[:-1],  # a byte less
        packed(b"\x01").replace(b"\xa2dy", b"\xa2dz"),
        packed(b"\x01").replace(b"input", b"inpuT"),
    ],
)
def test_any_other_frame_is_left_to_protocol_decode(frame):
    assert input_frame(frame) is None
