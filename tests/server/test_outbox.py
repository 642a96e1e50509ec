"""A connection's outbound queue, without sockets."""

import msgpack

from server.metrics import Metrics
from server.outbox import MAX_CONTROL, Outbox
from world.snapshot import View


def view(cells, enter=(), leave=(), chat=()):
    return View.make(
        msgpack.packb(cells),
        [msgpack.packb([e, 1, f"n{e}", "#fff"]) for e in enter],
        list(enter),
        list(leave),
        [msgpack.packb(c) for c in chat],
    )


async def test_a_newer_update_replaces_an_unsent_one_and_keeps_its_events():
    metrics = Metrics()
    flushes = []
    box = Outbox(metrics, on_ready=lambda: flushes.append(1))
    box.push(b"welcome")
    box.push_update(1, 5, view([["old"]], enter=[10, 11], chat=[[10, "n10", "hi", 1]]))
    box.push_update(2, 6, view([["new"]], enter=[12], leave=[11], chat=[[12, "n12", "yo", 2]]))
    assert metrics.updates_coalesced == 1
    assert flushes == [1]  # a flush is asked for once while anything is pending, not per message or merge
    sent = box.take()
    assert sent[0] == b"welcome" and len(sent) == 2
    update = msgpack.unpackb(sent[1])
    assert (update["tick"], update["ack"], update["cells"]) == (2, 6, [["new"]])
    assert [rec[0] for rec in update["enter"]] == [10, 12]  # 11 entered and left: only in leave
    assert update["leave"] == [11]
    assert [line[2] for line in update["chat"]] == ["hi", "yo"]
    assert box.take() == [] and not box.ready.is_set()
    box.push(b"pong")  # empty again: the next message asks for a flush again
    assert flushes == [1, 1]


async def test_control_messages_are_bounded():
    metrics = Metrics()
    box = Outbox(metrics)
    accepted = [box.push(b"pong") for _ in range(MAX_CONTROL + 3)]
    assert accepted.count(False) == 3 and metrics.control_dropped == 3
    assert len(box.take()) == MAX_CONTROL


async def test_pieces_are_the_same_messages_with_the_cells_body_shared_not_copied():
    shared = view([["cell", 1]], enter=[3])
    boxes = [Outbox(Metrics()) for _ in range(2)]
    for box in boxes:
        box.push(b"pong")
        box.push_update(7, 2, shared)
    whole = boxes[0].take()
    pieces = boxes[1].take_pieces()
    assert [b"".join(p) for p in pieces] == whole
    assert pieces[-1][1] is shared.body  # the very bytes every observer of the cell gets
    assert boxes[1].take_pieces() == [] and not boxes[1].ready.is_set()


async def test_frames_are_the_messages_as_websocket_frames_with_the_cells_body_shared():
    """take_frames (the gateway's direct writes): byte for byte the frames websockets writes for each
    message of `take`, in order, the shared body as its own uncopied piece; then nothing is left."""
    from websockets.frames import Frame, Opcode

    shared = view([["cell", 1]], enter=[3])
    boxes = [Outbox(Metrics()) for _ in range(2)]
    for box in boxes:
        box.push(b"pong")
        box.push(b"x" * 300)  # a 16-bit length
        box.push_update(7, 2, shared)
    whole = boxes[0].take()
    frames, size, count = boxes[1].take_frames()

    def serialize(data: bytes) -> bytes:
        return Frame(Opcode.BINARY, data).serialize(mask=False)  # a server's frame: unmasked

    assert b"".join(frames) == b"".join(map(serialize, whole))
    assert frames[-1] is shared.body and (size, count) == (sum(map(len, whole)), 3)
    assert boxes[1].take_frames() == ([], 0, 0) and not boxes[1].ready.is_set()
    for box in boxes:  # an update alone: every tick's case
        box.push_update(8, 3, shared)
    (alone,), (frames, size, count) = boxes[0].take(), boxes[1].take_frames()
    assert b"".join(frames) == serialize(alone) and frames[-1] is shared.body and (size, count) == (len(alone), 1)


def delta_view(build, tag):
    """A view of `build` with both forms: whole cells [[tag]], and moves [[tag, b"d", b""]] against build - 1."""
    v = view([[tag]])
    v.build, v.moves = build, (msgpack.packb([]), msgpack.packb([[tag, b"d", b""]]))
    return v


async def test_deltas_go_out_only_against_the_update_sent_before():
    box = Outbox(Metrics())
    forms = []
    for tick, build, push_twice in ((1, 0, False), (2, 1, False), (4, 3, False), (6, 5, True), (7, 6, False)):
        if push_twice:  # coalesced: build 4 is replaced by 5 before it is sent
            box.push_update(tick - 1, 0, delta_view(build - 1, "b"))
        box.push_update(tick, 0, delta_view(build, "b"))
        update = msgpack.unpackb(box.take()[0])
        forms.append("moves" if update["moves"] else "whole")
    # the first: nothing sent before; 2 follows 1; 3 never came (a gap); 5 was merged with 4; 6 follows 5
    assert forms == ["whole", "moves", "whole", "whole", "moves"]
    v1 = Outbox(Metrics())
    v1.version = 1  # a version-1 session: keyframes only
    for build in range(3):
        v1.push_update(build + 1, 0, delta_view(build, "b"))
        update = msgpack.unpackb(b"".join(v1.take_pieces()[0]))
        assert update["moves"] == [] and update["cells"] == [["b"]]


async def test_a_v3_session_after_a_slow_read_gets_a_merged_keyframe_then_moves_again():
    """Version 3 with a real world: two updates merged while the client did not read go out as one
    keyframe (its cells whole, with steps; no moves); the next goes out as moves against it; a client
    applying what it got holds what each keyframe says."""
    from world.protocol import apply_cells3, update3_as_map
    from world.sim import NPC, PLAYER, World, WorldConfig
    from world.snapshot import encode_update

    from support.worldhelp import default_map

    w = World(default_map(), WorldConfig(seed=5))
    me = w.spawn(PLAYER, "me", "#fff")
    for _ in range(40):
        w.spawn(NPC, "n", "#0f0", *w.position(me))
    w.set_direction(me, 0.6, 0.8)
    w.add_observer(me)
    box = Outbox(Metrics())
    box.version = 3
    held: dict = {}
    forms = []
    for tick in range(1, 13):
        w.step(0.05)
        v = w.build_views()[me]
        box.push_update(tick, tick, v)
        if tick in (4, 8):  # the client is slow: the next update is merged into this one
            continue
        (data,) = box.take()
        msg = update3_as_map(msgpack.unpackb(data))
        assert msg["tick"] == tick
        forms.append("moves" if msg["moves"] else "whole")
        held = apply_cells3(held, msg["cells"], msg["moves"])
        key = apply_cells3({}, update3_as_map(msgpack.unpackb(encode_update(tick, tick, v, None, 3)))["cells"], [])
        assert {c: [a.tolist() for a in x] for c, x in held.items()} == {
            c: [a.tolist() for a in x] for c, x in key.items()
        }, tick
    assert box.metrics.updates_coalesced == 2
    assert forms == ["whole", "moves", "moves", "whole", "moves", "moves", "whole", "moves", "moves", "moves"]
