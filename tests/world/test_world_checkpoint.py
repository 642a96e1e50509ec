"""A world checkpoint: copied from one World, restored into another built the same way, it goes on
exactly as the first one (same positions, intents, stats and random draws, bit for bit)."""

import numpy as np

from world import checkpoint
from world.sim import NPC, PLAYER, World, WorldConfig

from support.worldhelp import default_map


def busy_world(seed: int = 3) -> tuple[World, list[int]]:
    w = World(default_map(), WorldConfig(seed=seed))
    ids = [w.spawn(NPC, f"n{i}", "#888") for i in range(30)]
    ids.append(w.spawn(PLAYER, "ada", "#fff"))
    places = w.places
    for i, e in enumerate(ids[:10]):
        w.set_intent(e, "go_to", place=places[i % len(places)], activity="errand")
    w.set_intent(ids[10], "follow", target=ids[11])
    w.set_intent(ids[12], "flee", target=ids[-1])  # from the player
    for e in ids[:30]:
        w.set_stats(e, {"energy": 50.0 + e, "hunger": 10.0})
        w.set_stat_rates(e, {"energy": -2.0, "hunger": 3.0})
    return w, ids


def test_copy_is_a_copy_and_restore_goes_on_bit_for_bit():
    a, ids = busy_world()
    for _ in range(200):
        a.step(0.05)
    frame = checkpoint.copy(a)
    pos_then = frame.columns["pos"].copy()
    a.step(0.05)  # the world steps on: the frame does not move
    assert np.array_equal(frame.columns["pos"], pos_then)
    assert len(frame) == len(ids) and set(frame.eid.tolist()) == set(ids)

    b, ids_b = busy_world()  # a fresh world, the same entities spawned again
    n = checkpoint.restore(b, frame, dict(zip(ids, ids_b)))
    assert n == len(ids)
    assert (b.tick, b.time_s) == (frame.tick, frame.time_s)
    for e, eb in zip(ids, ids_b):
        assert b.position(eb) == tuple(pos_then[frame.row_of()[e]])
    a2, _ = busy_world()  # the first world again, restored to the frame too
    checkpoint.restore(a2, frame, dict(zip(ids, ids)))
    for _ in range(100):
        a2.step(0.05)
        b.step(0.05)
    for e, eb in zip(ids, ids_b):
        assert a2.position(e) == b.position(eb)
        if b.kind_of(eb) == NPC:
            assert a2.intent(e).action == b.intent(eb).action and a2.stats(e) == b.stats(eb)


def test_a_target_left_out_of_the_restore_becomes_idle():
    a, ids = busy_world()
    frame = checkpoint.copy(a)
    b, ids_b = busy_world()
    mapping = dict(zip(ids[:-1], ids_b[:-1]))  # the player is not back
    checkpoint.restore(b, frame, mapping)
    assert b.intent(ids_b[12]).action == "idle"  # fled from the player: nobody to flee now
    assert b.intent(ids_b[10]).action == "follow" and b.intent(ids_b[10]).target == ids_b[11]


def test_a_world_with_a_free_slot_copies_only_the_live_entities():
    a, ids = busy_world()
    a.despawn(ids[3])  # a hole below the last slot: the gather path
    frame = checkpoint.copy(a)
    assert ids[3] not in frame.eid.tolist() and len(frame) == len(ids) - 1
    rows = frame.row_of()
    assert all(tuple(frame.columns["pos"][rows[e]]) == a.position(e) for e in ids if e != ids[3])
