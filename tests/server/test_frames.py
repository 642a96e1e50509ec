"""server/frames.py: the frames and heads the gateway writes itself, against websockets' own."""

from websockets.frames import Frame, Opcode

import pytest

from server.frames import binary_frame_head, ping_frame


def test_a_head_and_its_payload_are_the_frame_websockets_writes():
    for n in (*range(130), 4000, 0xFFFE, 0xFFFF, 0x10000, 70_000):  # every 7-bit length (a table), each class's bounds
        payload = bytes(i % 251 for i in range(n))
        expected = Frame(Opcode.BINARY, payload).serialize(mask=False)  # a server's frame: unmasked
        assert binary_frame_head(n) + payload == expected, n


def test_a_ping_frame_is_the_one_websockets_writes_and_at_most_125_bytes():
    for payload in (b"", b"\0\0\0\1", bytes(125)):
        assert ping_frame(payload) == Frame(Opcode.PING, payload).serialize(mask=False)
    with pytest.raises(ValueError, match="at most 125 bytes"):
        ping_frame(bytes(126))


async def test_direct_frames_and_compressed_ones_reach_their_clients(launch):
    """A plain client gets the frames the gateway writes itself; a client that negotiated
    permessage-deflate gets websockets' compressed ones; each sees the other move."""
    from support.wsclient import Player

    srv = launch("--compression", "--ws", "websockets", "--npcs", "5", "--npc-dir", "")  # deflate: websockets only
    plain = await Player.join(srv.ws_url, "plain", compression=None)
    packed = await Player.join(srv.ws_url, "packed", compression="deflate")
    assert not plain.ws.protocol.extensions and packed.ws.protocol.extensions
    await plain.until(lambda p, m: packed.id in p.positions, what="plain sees packed")
    await packed.until(lambda p, m: plain.id in p.positions, what="packed sees plain")
    for mover, watcher in ((plain, packed), (packed, plain)):
        start = watcher.positions[mover.id]
        seq = await mover.move(1.0, 0.0)
        await mover.until(lambda p, m: p.ack >= seq, what="the input acknowledged")
        await watcher.until(lambda p, m: p.positions.get(mover.id) not in (None, start), what="it moves")
        await mover.move(0.0, 0.0)
    await plain.send({"t": "ping", "id": 7})
    await plain.until(lambda p, m: any(x["id"] == 7 for x in p.pongs), what="a pong among direct frames")
    await plain.close()
    await packed.close()
