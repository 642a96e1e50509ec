"""server/gateway_link.py: the updates message (each distinct View once, the bodies a gateway builds
from it byte for byte the tick process's) and the socketpair's framing, over a real socketpair."""

from __future__ import annotations

import asyncio
import socket

import msgpack
import pytest

from server.gateway_link import HEAD, MAX_MESSAGE, open_link, pack_updates, unpack_updates
from world.sim import NPC, PLAYER, World, WorldConfig
from support.worldhelp import default_map


def walked_world(players: int = 12) -> tuple[World, list[int]]:
    """A world whose players stand in pairs (so that some share a cell's View), two builds in."""
    w = World(default_map(), WorldConfig(seed=3))
    for i in range(40):
        w.spawn(NPC, f"npc{i}", "#d08040")
    eids = []
    for i in range(players):
        x, y = w.random_open_point()
        for _ in range(2):
            eids.append(w.spawn(PLAYER, f"p{len(eids)}", "#4080d0", x, y))
            w.add_observer(eids[-1])
    w.build_views()
    for e in eids[::3]:
        w.set_direction(e, 1.0, 0.0)
    for _ in range(5):
        w.step(0.05)
    return w, eids


def test_a_gateway_builds_the_same_bodies_from_each_distinct_view_sent_once():
    w, eids = walked_world()
    views = w.build_views()
    batch = [(slot, 100 + slot, views[e]) for slot, e in enumerate(eids)]
    data = pack_updates(w.tick, batch)
    tick, views_sent, _ = msgpack.unpackb(data)
    assert tick == w.tick
    distinct = {id(v) for _, _, v in batch}
    assert len(views_sent) == len(distinct) < len(batch)  # pairs share their View: sent once
    tick, back = unpack_updates(data)
    assert [(s, a) for s, a, _ in back] == [(s, a) for s, a, _ in batch]
    assert len({id(v) for _, _, v in back}) == len(distinct)  # shared on this side too
    assert any(v.moves is not None for _, _, v in batch)
    for (_, _, sent), (_, _, got) in zip(batch, back):
        assert got.build == sent.build
        for last in (None, sent.build - 1, sent.build - 2):  # keyframe, deltas, keyframe again
            assert got.body_after(last) == sent.body_after(last)


@pytest.mark.parametrize(
    "data", [b"", b"\xc1", msgpack.packb([1, [[1, 2]], [0, 0, 0]]), msgpack.packb([1, [], [0, 5, 0]])]
)
def test_what_is_not_an_updates_message_is_a_clear_error(data):
    with pytest.raises(ValueError, match="not an updates message"):
        unpack_updates(data)


async def test_messages_arrive_whole_and_in_order_over_a_real_socketpair():
    a, b = socket.socketpair()
    got: list[tuple[bytes, bytes]] = []
    lost = asyncio.Event()
    sender = await open_link(a, lambda k, p: None, lambda: None)
    await open_link(b, lambda k, p: got.append((k, p)), lost.set)
    sizes = [0, 1, 5, 70_000, 3_000_000, 17]  # one larger than the socket's buffers: it arrives in pieces
    for i, n in enumerate(sizes):
        sender.send(b"u", bytes([i]) * n)
    for _ in range(500):  # bounded: 5 s
        if len(got) == len(sizes):
            break
        await asyncio.sleep(0.01)
    assert [(k, len(p)) for k, p in got] == [(b"u", n) for n in sizes]
    assert all(p == bytes([i]) * len(p) for i, (_, p) in enumerate(got))
    assert sender.transport is not None
    sender.transport.close()
    await asyncio.wait_for(lost.wait(), 5)


async def test_a_head_past_the_bound_drops_the_link():
    a, b = socket.socketpair()
    lost = asyncio.Event()
    await open_link(b, lambda k, p: None, lost.set)
    a.sendall(HEAD.pack(MAX_MESSAGE + 1, ord("u")))
    await asyncio.wait_for(lost.wait(), 5)
    a.close()
