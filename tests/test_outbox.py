"""A connection's outbound queue, without sockets."""

import msgpack

from server.metrics import Metrics
from server.outbox import MAX_CONTROL, Outbox
from world.snapshot import View


def view(cells, enter=(), leave=(), chat=()):
    return View.make(msgpack.packb(cells), [msgpack.packb([e, 1, f"n{e}", "#fff"]) for e in enter],
                     list(enter), list(leave), [msgpack.packb(c) for c in chat])


async def test_a_newer_update_replaces_an_unsent_one_and_keeps_its_events():
    metrics = Metrics()
    flushes = []
    box = Outbox(metrics, on_update=lambda: flushes.append(1))
    box.push(b"welcome")
    box.push_update(1, 5, view([["old"]], enter=[10, 11], chat=[[10, "n10", "hi", 1]]))
    box.push_update(2, 6, view([["new"]], enter=[12], leave=[11], chat=[[12, "n12", "yo", 2]]))
    assert box.ready.is_set() and metrics.updates_coalesced == 1
    assert flushes == [1]  # a flush is asked for once per pending update, not per merge
    sent = box.take()
    assert sent[0] == b"welcome" and len(sent) == 2
    update = msgpack.unpackb(sent[1])
    assert (update["tick"], update["ack"], update["cells"]) == (2, 6, [["new"]])
    assert [rec[0] for rec in update["enter"]] == [10, 12]  # 11 entered and left: only in leave
    assert update["leave"] == [11]
    assert [line[2] for line in update["chat"]] == ["hi", "yo"]
    assert box.take() == [] and not box.ready.is_set()


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
