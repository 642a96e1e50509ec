"""bots/bot.py's frames, bytes in and out: what the bot writes is what websockets (a server's parser)
reads, at every length; each frame has a mask key of its own."""

from __future__ import annotations

import os

from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from bots.bot import OP_BINARY, OP_PONG, client_frame


def parsed(data: bytes) -> Frame:
    """The one frame in `data` as websockets reads a client's (masked) frame; the rest must be empty."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=True)
    try:
        next(parser)
    except StopIteration as done:
        assert reader.at_eof()
        return done.value
    raise AssertionError("incomplete frame")


def test_client_frames_are_masked_final_frames_websockets_reads_at_every_length():
    for n in (0, 1, 3, 4, 5, 40, 125, 126, 127, 0xFFFF, 0x10000, 70_000):
        payload = os.urandom(n)
        frame = parsed(client_frame(OP_BINARY, payload))
        assert (frame.opcode, frame.fin, frame.data) == (Opcode.BINARY, True, payload), n
    assert parsed(client_frame(OP_PONG, b"\0\0\0\1")).opcode == Opcode.PONG


def test_every_frame_has_its_own_mask_key():
    payload = b"x" * 40
    keys = {client_frame(OP_BINARY, payload)[2:6] for _ in range(3000)}  # across a refill of the key pool
    assert len(keys) > 2990  # 4 random bytes each: a repeat among 3,000 is rare, never the rule
