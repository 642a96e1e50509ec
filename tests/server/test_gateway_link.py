"""server/gateway_link.py: the updates message (each distinct View once, the bodies a gateway builds
from it byte for byte the tick process's) and the socketpair's framing, over a real socketpair."""

from __future__ import annotations

import asyncio
import math
import socket

import msgpack
import pytest

from server.gateway_link import (
    CHAT,
    COMMANDS,
    COMMANDS_PER_MESSAGE,
    COUNTERS,
    FROM_GATEWAY,
    HEAD,
    INPUT,
    JOIN,
    MAX_MESSAGE,
    TALK,
    Link,
    open_link,
    pack_updates,
    unpack_commands,
    unpack_join,
    unpack_leave,
    unpack_stats,
    unpack_updates,
)
from server.gateway_proc import RoomLink
from world.protocol import MAX_FRAME, MAX_TALK, Chat, Hello, Input, Talk
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
    n = int.from_bytes(data[:4], "big")
    tick, views_sent, _ = msgpack.unpackb(data[4 : 4 + n])
    raw = sum(
        n_cells + (n_moves or 0) + (n_cells3 or 0) + (n_moves3 or 0)
        for _, n_cells, _, n_moves, _, _, _, _, n_cells3, _, n_moves3 in views_sent
    )
    assert 4 + n + raw == len(data)  # the head's length, the head, then each View's cells and moves bytes raw
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
            assert got.body3_after(last) == sent.body3_after(last)  # and in version 3


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        b"\x00\x00\x00\x09\x01",  # a head longer than the message
        *(
            len(m).to_bytes(4, "big") + m
            for m in (msgpack.packb([1, [[1, 2]], [0, 0, 0]]), msgpack.packb([1, [], [0, 5, 0]]))
        ),
    ],
)
def test_what_is_not_an_updates_message_is_a_clear_error(data):
    with pytest.raises(ValueError, match="not an updates message"):
        unpack_updates(data)


def test_an_updates_message_whose_raw_bytes_are_short_or_over_is_a_clear_error():
    w, eids = walked_world(4)
    views = w.build_views()
    data = pack_updates(w.tick, [(slot, 1, views[e]) for slot, e in enumerate(eids)])
    for bad in (data[:-1], data + b"\x00"):
        with pytest.raises(ValueError, match="not an updates message: -?1 bytes left over"):
            unpack_updates(bad)


async def test_messages_arrive_whole_and_in_order_over_a_real_socketpair():
    a, b = socket.socketpair()
    got: list[tuple[bytes, bytes]] = []
    lost = asyncio.Event()
    sender = await open_link(a, lambda k, p: None, lambda: None)
    await open_link(b, lambda k, p: got.append((k, p)), lost.set)
    sizes = [0, 1, 5, 70_000, 3_000_000, 17]  # one larger than the socket's buffers: it arrives in pieces
    for i, n in enumerate(sizes):
        sender.send(b"u", bytes([i]) * n)
    await until(lambda: len(got) == len(sizes), "every message")
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


async def until(ok, what: str) -> None:
    for _ in range(500):  # bounded: 5 s
        if ok():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


@pytest.mark.parametrize(
    "kind, n, why",
    [
        (COMMANDS, FROM_GATEWAY[COMMANDS[0]] + 1, "at most"),
        (JOIN, MAX_FRAME + 64, "at most"),
        (b"u", 10, "unknown kind"),  # updates go the other way
    ],
)
async def test_a_gateway_s_message_past_its_kind_s_bound_breaks_the_link_before_its_payload_is_held(kind, n, why):
    a, b = socket.socketpair()
    broken: list[str] = []
    got: list[bytes] = []
    link = Link(lambda k, p: got.append(k), lambda: None, bounds=FROM_GATEWAY, on_broken=broken.append)
    await asyncio.get_running_loop().connect_accepted_socket(lambda: link, b)
    a.sendall(HEAD.pack(2, ord("l")) + b"\x91\x05" + HEAD.pack(n, kind[0]))  # a leave, then the head alone
    await until(lambda: broken, "the link broken")
    assert got == [b"l"] and len(broken) == 1 and why in broken[0], broken
    assert link.broken and not link.pending
    a.close()


async def test_a_gateway_s_largest_commands_fit_its_bound_and_more_are_split_into_several_messages():
    a, b = socket.socketpair()
    got: list[bytes] = []
    broken: list[str] = []
    tick_side = Link(lambda k, p: got.append(p), lambda: None, bounds=FROM_GATEWAY, on_broken=broken.append)
    await asyncio.get_running_loop().connect_accepted_socket(lambda: tick_side, b)
    room = RoomLink()
    room.link = await open_link(a, lambda k, p: None, lambda: None)
    n = 2 * COMMANDS_PER_MESSAGE + 5
    for i in range(n):  # one loop iteration's commands, each the largest a connection can send
        room.command(2**64 - 1 - i, Talk(2**32 - 1, "\U0010ffff" * MAX_TALK))
    await until(lambda: len(got) == 3 or broken, "three commands messages")
    assert not broken
    assert max(len(p) for p in got) <= FROM_GATEWAY[COMMANDS[0]]
    assert max(len(p) for p in got) > 0.99 * FROM_GATEWAY[COMMANDS[0]]  # the bound is the largest, not slack
    back = [c for p in got for c in unpack_commands(p)]
    assert len(back) == n and back[0] == (2**64 - 1, Talk(2**32 - 1, "\U0010ffff" * MAX_TALK))


async def test_a_link_whose_other_end_reads_nothing_breaks_once_past_its_bound_and_sends_no_more():
    a, b = socket.socketpair()  # b is never read
    broken: list[str] = []
    link = Link(lambda k, p: None, lambda: None, behind=1_000_000, on_broken=broken.append)
    await asyncio.get_running_loop().connect_accepted_socket(lambda: link, a)
    assert link.transport is not None
    page = bytes(100_000)
    sent = 0
    while not broken and sent < 100:  # bounded: 10 MB
        link.send(b"h", page)
        sent += 1
    assert len(broken) == 1 and "at most 1000000" in broken[0], broken
    assert 10 <= sent <= 100 and link.transport.is_closing()
    link.send(b"h", page)  # nothing more
    assert len(broken) == 1
    b.close()


def test_what_a_gateway_sends_comes_back_checked_as_the_room_takes_it():
    good = [[5, INPUT, 3, 0.5, -1.0], [6, CHAT, "hi"], [7, TALK, 12, "hello"]]
    assert unpack_commands(msgpack.packb(good)) == [(5, Input(3, 0.5, -1.0)), (6, Chat("hi")), (7, Talk(12, "hello"))]
    hello = msgpack.packb({"t": "hello", "v": 1, "name": "ann"})
    assert unpack_join(msgpack.packb([4, hello])) == (4, Hello(1, "ann", None))
    assert unpack_leave(msgpack.packb([4])) == 4
    stats = {name: 1 for name in COUNTERS} | {"errors_sent": {"rate": 2}, "closes": {4002: 1}}
    assert unpack_stats(msgpack.packb(stats)) == stats


@pytest.mark.parametrize(
    "unpack, value",
    [
        (unpack_commands, {"not": "a list"}),
        (unpack_commands, [[5, INPUT, 3, "fast", 0.0]]),
        (unpack_commands, [[5, INPUT, 3, math.nan, 0.0]]),
        (unpack_commands, [[5, INPUT, 3, 2.0, 0.0]]),  # out of [-1, 1]
        (unpack_commands, [[5, INPUT, -1, 0.0, 0.0]]),
        (unpack_commands, [[5, INPUT, 3, 1, 0.0]]),  # an int dx: the gateway sends floats
        (unpack_commands, [["5", CHAT, "hi"]]),
        (unpack_commands, [[5, CHAT, ""]]),
        (unpack_commands, [[5, CHAT, "x" * 201]]),
        (unpack_commands, [[5, TALK, -1, "hi"]]),
        (unpack_commands, [[5, 9, "hi"]]),
        (unpack_commands, [[5]]),
        (unpack_join, [4, b"\xc1"]),
        (unpack_join, [4, msgpack.packb({"t": "ping", "id": 1})]),
        (unpack_join, [[4], b""]),
        (unpack_leave, [[4]]),
        (unpack_leave, 4),
        (unpack_stats, {"connections": 1}),
        (unpack_stats, {name: -1 for name in COUNTERS} | {"errors_sent": {}, "closes": {}}),
        (unpack_stats, {name: 1 for name in COUNTERS} | {"errors_sent": {"rate": "2"}, "closes": {}}),
    ],
)
def test_what_is_not_a_gateway_s_message_is_a_clear_error(unpack, value):
    with pytest.raises(ValueError, match="not a .* message"):
        unpack(msgpack.packb(value))


@pytest.mark.parametrize("unpack", [unpack_commands, unpack_join, unpack_leave, unpack_stats])
def test_garbage_is_a_clear_error(unpack):
    with pytest.raises(ValueError, match="not a .* message"):
        unpack(b"\xc1\x00")
