"""Version 3 of `update` (docs/protocol.md, "update, version 3"): the array form, cell blocks with
each entity's step, move blocks with each step's change. Whatever a world does (players turning,
running at full speed, jumping, leaving and coming, observers added again, updates skipped), what a
client holds after applying every update it got is what the keyframe of that tick says, position
for position and step for step, and the positions are those of version 2."""

from __future__ import annotations

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from world import protocol
from world.protocol import apply_cells, apply_cells3, read_update3_head, update3_as_map
from world.sim import NPC, PLAYER, World, WorldConfig
from world.snapshot import encode_update

from support.worldhelp import default_map


def decode3(data: bytes) -> dict:
    msg = msgpack.unpackb(data)
    assert type(msg) is list and len(msg) == protocol.UPDATE3_ITEMS
    return update3_as_map(msg)


def as_dict(cells) -> dict[int, tuple[list, list, list]]:
    """cell -> (ids, positions, steps) as lists (steps absent in version 2: [])."""
    return {c: (v[0].tolist(), v[1].tolist(), v[2].tolist() if len(v) > 2 else []) for c, v in sorted(cells.items())}


def positions(cells) -> dict[int, tuple[int, int]]:
    return {i: tuple(p) for ids, pos, *_ in cells.values() for i, p in zip(ids.tolist(), pos.tolist())}


# One tick of a world: for each of 4 players, maybe a new direction (or a stop); maybe a jump
# (despawn and spawn elsewhere: a new id), maybe the observer added again (a keyframe), maybe the
# update not sent (a gap: a keyframe next).
tick_actions = st.fixed_dictionaries(
    {
        "turn": st.lists(
            st.one_of(
                st.none(),
                st.tuples(st.floats(-1, 1, width=32), st.floats(-1, 1, width=32)),
                st.sampled_from([(1.0, 0.0), (0.0, -1.0), (0.0, 0.0)]),
            ),
            min_size=4,
            max_size=4,
        ),
        "jump": st.integers(0, 30),
        "readd": st.integers(0, 30),
        "skip": st.integers(0, 30),
    }
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    speed=st.sampled_from([40.0, 160.0, 400.0]),
    npcs=st.integers(0, 12),
    ticks=st.lists(tick_actions, min_size=10, max_size=40),
)
def test_a_v3_client_holds_what_every_keyframe_says(speed, npcs, ticks):
    w = World(default_map(), WorldConfig(seed=3, player_speed=speed))
    players = [w.spawn(PLAYER, f"p{i}", "#d08040") for i in range(4)]
    for _ in range(npcs):
        w.spawn(NPC, "n", "#40d080")
    me = players[0]
    w.add_observer(me)
    held3: dict = {}
    held2: dict = {}
    sent3 = sent2 = None
    for t in ticks:
        for p, turn in zip(players, t["turn"]):
            if turn is not None and w.alive(p):
                w.set_direction(p, *turn)
        if t["jump"] == 0:  # the last player leaves and comes back elsewhere, a new entity
            w.despawn(players[-1])
            players[-1] = w.spawn(PLAYER, "j", "#123456", *w.random_open_point())
        if t["readd"] == 0:
            w.add_observer(me)
            sent3 = sent2 = None
        w.step(0.05)
        v = w.build_views()[me]
        if t["skip"] == 0:  # not sent (coalesced away): the next one must be a keyframe
            continue
        data3 = encode_update(w.tick, 7, v, sent3, version=3)
        data2 = encode_update(w.tick, 7, v, sent2, version=2)
        sent3 = sent2 = v.build
        assert read_update3_head(data3, 0, len(data3)) == (w.tick, 7, 0)
        msg = decode3(data3)
        held3 = apply_cells3(held3, msg["cells"], msg["moves"])
        key = apply_cells3({}, decode3(encode_update(w.tick, 7, v, None, version=3))["cells"], [])
        assert as_dict(held3) == as_dict(key)
        msg2 = msgpack.unpackb(data2)
        held2 = apply_cells(held2, msg2["cells"], msg2["moves"])
        assert positions(held3) == positions(held2)


def test_a_v3_update_is_smaller_where_entities_walk_straight():
    """Twenty players walking straight in one cell: after the first two updates each one's change of
    step is 0, so the move block is its head and no change bytes; version 2 sends 2 bytes each."""
    w = World(default_map(), WorldConfig(seed=1))
    me = w.spawn(PLAYER, "me", "#fff")
    x, y = w.position(me)
    walkers = [w.spawn(PLAYER, f"w{i}", "#fff", x, y) for i in range(20)]
    for p in walkers:
        w.set_direction(p, 0.0, 0.25)  # 2 units a tick, 32 quantised: along y only
    w.add_observer(me)
    sent = None
    sizes = []
    for _ in range(4):
        w.step(0.05)
        v = w.build_views()[me]
        sizes.append(
            (len(encode_update(w.tick, 1, v, sent, version=2)), len(encode_update(w.tick, 1, v, sent, version=3)))
        )
        sent = v.build
    msg = decode3(encode_update(w.tick, 1, v, sent - 1, version=3))
    assert all(len(block) == 2 and block[1] == b"" for block in msg["moves"]), msg["moves"]
    v2, v3 = sizes[-1]
    assert v3 < v2 - 40, sizes


def test_changes_pack_two_entities_a_byte_low_half_first_then_the_wide_ones():
    # entity 0: (+1, 0); 1: (+1, -1); 2: (5, -1), its x wide; 3: (0, -9), its y wide
    packed = bytes([0b1101_0001, 0b1000_1110, 5, 256 - 9])
    assert protocol.changes_of(packed, 4).tolist() == [[1, 0], [1, -1], [5, -1], [0, -9]]
    assert protocol.changes_of(bytes([0b0000_0111]), 1).tolist() == [[-1, 1]]  # an odd n: the high half 0
    assert protocol.changes_of(b"", 3).tolist() == [[0, 0]] * 3


def test_read_update3_head_counts_chat_and_refuses_other_layouts():
    body = protocol.view_body3([msgpack.packb([1, "a", "hi", 5])] * 20, [], b"\x90", b"\x90", b"\x90")
    data = protocol.update_head3(70000, -1) + body
    assert read_update3_head(data, 0, len(data)) == (70000, -1, 20)
    assert read_update3_head(msgpack.packb({"t": "pong", "id": 1, "tick": 2}), 0, 12) is None
    assert read_update3_head(b"\x97\x01", 0, 2) is None
    assert msgpack.unpackb(data)[2:] == [[[1, "a", "hi", 5]] * 20, [], [], [], []]
