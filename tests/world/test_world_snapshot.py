"""The 'update' message bytes and the coalescing of views."""

import msgpack
import numpy as np

from world.sim import NPC, PLAYER, World, WorldConfig
from world.protocol import apply_cells
from world.snapshot import View, encode_update, merge_views

from support.worldhelp import default_map


def rec(eid):
    return msgpack.packb([eid, NPC, f"n{eid}", "#123456"])


def view(enter=(), leave=(), chat=(), cells=b"\x90"):
    return View.make(
        cells, [rec(e) for e in enter], list(enter), list(leave), [msgpack.packb([e, "x", t, 1]) for e, t in chat]
    )


def test_encode_update_decodes_to_the_documented_shape():
    w = World(default_map(), WorldConfig(seed=2))
    p = w.spawn(PLAYER, "ada", "#d08040")
    npcs = [w.spawn(NPC, f"n{i}", "#40d080", *w.position(p)) for i in range(3)]
    w.add_observer(p)
    w.say(p, "hello")
    w.step(0.05)
    msg = msgpack.unpackb(encode_update(w.tick, 41, w.build_views()[p]))
    assert list(msg) == ["t", "tick", "ack", "cells", "moves", "enter", "leave", "chat"]
    assert msg["moves"] == []  # a connection's first update is a keyframe
    assert msg["t"] == "update" and msg["tick"] == 1 and msg["ack"] == 41
    seen = {}
    for block in msg["cells"]:
        cell, ids, pos = block
        assert isinstance(cell, int) and isinstance(ids, bytes) and isinstance(pos, bytes)
        ids = np.frombuffer(ids, "<u4")
        pos = np.frombuffer(pos, "<u2").reshape(-1, 2) / 16
        assert len(pos) == len(ids)
        for i, xy in zip(ids.tolist(), pos):
            seen[i] = (cell, tuple(xy))
    assert set(seen) == {p, *npcs}
    x, y = w.position(p)
    assert seen[p][0] == int(y // 256) * 8 + int(x // 256)
    assert abs(seen[p][1][0] - x) <= 1 / 32 and abs(seen[p][1][1] - y) <= 1 / 32
    assert sorted(msg["enter"]) == sorted(w.entity_record(e) for e in (p, *npcs))
    assert all(
        isinstance(r[0], int) and r[1] in (PLAYER, NPC) and isinstance(r[2], str) and isinstance(r[3], str)
        for r in msg["enter"]
    )
    assert msg["leave"] == []
    assert msg["chat"] == [[p, "ada", "hello", 1]]
    # the next tick: nothing new
    w.step(0.05)
    msg = msgpack.unpackb(encode_update(w.tick, -1, w.build_views()[p]))
    assert (msg["tick"], msg["ack"], msg["enter"], msg["leave"], msg["chat"]) == (2, -1, [], [], [])


def test_view_body_is_the_five_pairs():
    v = view(enter=[3], leave=[4, 5], chat=[(3, "hi")])
    assert msgpack.unpackb(b"\x85" + v.body) == {
        "cells": [],
        "moves": [],
        "enter": [[3, NPC, "n3", "#123456"]],
        "leave": [4, 5],
        "chat": [[3, "x", "hi", 1]],
    }


def test_large_counts_use_long_array_headers():
    v = view(enter=range(1, 70001), leave=range(100001, 100020))
    d = msgpack.unpackb(encode_update(2**40, 2**32 - 1, v))
    assert len(d["enter"]) == 70000 and d["tick"] == 2**40 and d["ack"] == 2**32 - 1


def test_merge_views_follows_the_coalescing_rules():
    older = view(enter=[1, 2], leave=[3, 4], chat=[(1, "a")], cells=msgpack.packb([[0, b"", b""]]))
    newer = view(enter=[3, 5], leave=[2, 6], chat=[(5, "b")], cells=msgpack.packb([[7, b"", b""]]))
    before = (list(older.enter_ids), list(older.leave), older.body)
    m = merge_views(older, newer)
    assert m.enter_ids == [1, 3, 5]  # 2 entered then left: only in leave
    assert m.enter == [rec(1), rec(3), rec(5)]
    assert m.leave == [3, 4, 2, 6]  # 3 left then came back: leave, then enter again
    assert m.cells == newer.cells
    assert [msgpack.unpackb(c)[2] for c in m.chat] == ["a", "b"]
    assert msgpack.unpackb(b"\x85" + m.body)["enter"] == [msgpack.unpackb(rec(e)) for e in (1, 3, 5)]
    assert (older.enter_ids, older.leave, older.body) == before  # inputs untouched
    # applying leave-then-enter of the merge == applying both in turn
    known = {3, 4, 6, 9}
    a = (known - set(older.leave)) | set(older.enter_ids)
    a = (a - set(newer.leave)) | set(newer.enter_ids)
    assert (known - set(m.leave)) | set(m.enter_ids) == a


def _key_cells(view):
    """The cells of a view's keyframe, decoded."""
    return apply_cells({}, msgpack.unpackb(b"\x85" + view.body)["cells"], [])


def _same(a, b):
    assert set(a) == set(b)
    for c in a:
        assert a[c][0].tolist() == b[c][0].tolist() and a[c][1].tolist() == b[c][1].tolist(), c


def test_deltas_applied_in_turn_give_the_keyframe_of_every_tick():
    # Observers that stay, walk across cells, run fast (moves past int8: fixes) and join late:
    # a client applying each update's deltas to what it holds always holds the keyframe's cells.
    w = World(default_map(), WorldConfig(seed=5, player_speed=400.0))
    rng = np.random.default_rng(5)
    players = [w.spawn(PLAYER, f"p{i}", "#d08040") for i in range(6)]
    npcs = [w.spawn(NPC, "n", "#40d080") for _ in range(40)]
    held, sent = {}, {}
    for p in players[:4]:
        w.add_observer(p)
    kinds = {"whole": 0, "moves": 0, "fix": 0, "still": 0, "regroup": 0}
    for step in range(120):
        if step == 30:
            w.add_observer(players[4])
        if step % 20 == 10:  # NPCs leave the world and others come (their slots reused)
            for e in npcs[:5]:
                w.despawn(e)
            npcs = npcs[5:] + [w.spawn(NPC, "m", "#40d080", *w.position(players[0])) for _ in range(5)]
        for p in players:
            if rng.random() < 0.2:
                w.set_direction(p, *rng.uniform(-1, 1, 2))
        w.step(0.05)
        views = w.build_views()
        for p, v in views.items():
            msg = msgpack.unpackb(encode_update(w.tick, -1, v, sent.get(p)))
            kinds["whole"] += len(msg["cells"])
            kinds["moves"] += sum(1 for b in msg["moves"] if b[1])
            kinds["fix"] += sum(1 for b in msg["moves"] if b[2])
            kinds["still"] += sum(1 for b in msg["moves"] if not b[1] and not b[2] and len(b) == 3)
            kinds["regroup"] += sum(1 for b in msg["moves"] if len(b) > 3)
            held[p] = apply_cells(held.get(p, {}), msg["cells"], msg["moves"])
            _same(held[p], _key_cells(v))
            sent[p] = v.build
    assert all(kinds.values()), kinds  # every form was exercised


def test_a_view_sent_after_a_gap_is_a_keyframe():
    w = World(default_map(), WorldConfig(seed=2))
    p = w.spawn(PLAYER, "ada", "#d08040")
    w.set_direction(p, 1.0, 0.3)
    w.add_observer(p)
    builds = []
    for _ in range(3):
        w.step(0.05)
        builds.append(w.build_views()[p])
    first, second, third = builds
    assert second.body_after(first.build) != second.body  # deltas against the build sent
    assert msgpack.unpackb(b"\x85" + second.body_after(first.build))["moves"]
    assert third.body_after(first.build) == third.body  # second never sent: keyframe
    assert first.body_after(None) == first.body  # nothing sent yet: keyframe
    merged = merge_views(second, third)
    assert merged.body_after(first.build) == merged.body  # a merge is never sent as deltas
