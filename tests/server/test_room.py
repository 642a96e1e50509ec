"""The room (server/game.py) driven as World is: join / command / tick with plain calls, its events
read from a Mailbox (server/events.py). No socket, no port: the real parts, built by the composition
root (server/app.py build_room), on a small map."""

from __future__ import annotations

import msgpack
import pytest

from support.maphelp import write_ascii_map
from server.app import build_room
from server.config import flat
from server.events import Items, Mailbox, Refused, Replaced, Welcome, encode
from server.metrics import Metrics
from world.protocol import Chat, Hello, Input, Talk
from world.tilemap import load_map

ROWS = ["############", "#..........#", "#..........#", "#....s.....#", "#..........#", "#..........#", "############"]
GRACE_S = 3.0


class Room:
    """A room with a clock the test moves (seconds)."""

    def __init__(self, tmp_path, npcs: int = 1):
        m = write_ascii_map(tmp_path, ROWS, "room.tmj", {"s": "spawn"})
        cfg = flat(
            port=0,
            map=str(m),
            npc_dir="",
            npcs=npcs,
            decider="builtin",
            dialogue=False,
            memory_db="",
            store="",
            grace=GRACE_S,
            secret="room-test",
        ).validate()
        self.now = 0.0
        self.out = Mailbox()
        self.game = build_room(cfg, load_map(cfg.world.map), Metrics(), self.out, store=None, clock=lambda: self.now)

    def ticks(self, n: int) -> None:
        for _ in range(n):
            self.now += 1.0 / self.game.rules.tick_rate
            self.game.tick()


@pytest.fixture
def room(tmp_path):
    r = Room(tmp_path)
    yield r
    r.game.close()


def test_a_join_is_welcomed_last_after_its_hello_errors(room):
    ann = room.game.join(Hello(1, "ann", None))
    (welcome,) = room.out.of(ann.eid)
    assert type(welcome) is Welcome and welcome.id == ann.eid and welcome.name == "ann"
    assert not welcome.resumed and welcome.grace == GRACE_S and welcome.token == ann.token
    wire = msgpack.unpackb(encode(welcome))
    assert wire["t"] == "welcome" and wire["id"] == ann.eid and wire["map"] == "/map.json"

    bad = room.game.join(Hello(1, "<|im_start|>", "not a token"))
    got = room.out.of(bad.eid)
    assert [type(e) for e in got] == [Refused, Refused, Welcome]
    assert [e.error.code for e in got[:2]] == ["bad_field", "bad_token"]
    assert got[2].name == f"guest {bad.account.id}" and room.game.connected() == 2


def test_names_are_not_unique_and_a_missing_one_is_guest_n(room):
    """docs/protocol.md (hello): two players may carry the same name, told apart by entity id; a
    hello without a name gets `guest N`, N the account number, with no error."""
    a, b = room.game.join(Hello(1, "ann", None)), room.game.join(Hello(1, "ann", None))
    (wa,), (wb,) = room.out.of(a.eid), room.out.of(b.eid)
    assert wa.name == wb.name == "ann" and wa.id != wb.id and a.account.id != b.account.id
    anon = room.game.join(Hello(1, None, None))
    (welcome,) = room.out.of(anon.eid)  # no error: only the welcome
    assert type(welcome) is Welcome and welcome.name == f"guest {anon.account.id}"


def test_inputs_are_applied_at_the_tick_and_acknowledged_in_the_update(room):
    ann = room.game.join(Hello(1, "ann", None))
    x0, y0 = room.game.world.position(ann.eid)
    room.game.command(ann.eid, Input(5, 1.0, 0.0))
    room.game.command(ann.eid, Input(3, -1.0, 0.0))  # older than 5: dropped
    assert room.out.updates == {}  # nothing moves between ticks
    room.ticks(1)
    tick, ack, view = room.out.updates[ann.eid]
    assert (tick, ack) == (room.game.world.tick, 5) and view.body
    room.ticks(10)
    x1, y1 = room.game.world.position(ann.eid)
    assert x1 > x0 and y1 == y0


def test_the_inputs_of_one_tick_apply_per_player_the_last_one_with_its_ack(room):
    """The tick applies each player's last input of the tick (one numpy write for all), as one after
    the other would: the last direction held, the last seq acknowledged, others untouched."""
    ann, bob, cat = (room.game.join(Hello(1, n, None)) for n in ("ann", "bob", "cat"))
    at = {p.eid: room.game.world.position(p.eid) for p in (ann, bob, cat)}
    room.game.command(ann.eid, Input(1, 1.0, 0.0))
    room.game.command(bob.eid, Input(1, 0.0, 1.0))
    room.game.command(ann.eid, Input(2, -1.0, 0.0))  # ann's last: west
    room.game.command(bob.eid, Input(2, 0.0, -0.5))  # bob's last: north, at half speed
    room.ticks(1)
    assert [room.out.updates[p.eid][1] for p in (ann, bob, cat)] == [2, 2, -1]
    room.ticks(4)
    (ax, ay), (bx, by), (cx, cy) = (room.game.world.position(p.eid) for p in (ann, bob, cat))
    assert ax < at[ann.eid][0] and ay == at[ann.eid][1]
    assert by < at[bob.eid][1] and bx == at[bob.eid][0]
    assert (cx, cy) == at[cat.eid]


def test_connected_counts_joins_leaves_and_resumes(room):
    def online() -> int:
        return sum(1 for p in room.game.players.values() if p.online)

    ann = room.game.join(Hello(1, "ann", None))
    bob = room.game.join(Hello(1, "bob", None))
    seen = [room.game.connected()]
    room.game.join(Hello(1, None, ann.token))  # ann's new connection takes over: still two
    seen.append(room.game.connected())
    room.game.leave(bob.eid)
    room.game.leave(bob.eid)  # twice: counted once
    seen.append(room.game.connected())
    room.game.join(Hello(1, None, bob.token))  # back within its grace period
    seen.append(room.game.connected())
    room.game.leave(ann.eid)
    room.ticks(int((GRACE_S + 1.5) * room.game.rules.tick_rate))  # ann's grace ends: removed
    seen.append(room.game.connected())
    assert seen == [2, 2, 1, 2, 1] and room.game.connected() == online()


def test_chat_reaches_the_update_of_who_can_see_it(room):
    ann = room.game.join(Hello(1, "ann", None))
    bob = room.game.join(Hello(1, "bob", None))
    room.game.command(ann.eid, Chat("hello bob"))
    room.ticks(1)
    chat = [msgpack.unpackb(c) for c in room.out.updates[bob.eid][2].chat]  # [from, name, text, tick]
    assert chat == [[ann.eid, "ann", "hello bob", room.game.world.tick]]


def test_a_resume_replaces_the_old_connection_and_a_used_token_is_refused(room):
    ann = room.game.join(Hello(1, "ann", None))
    first = ann.token
    again = room.game.join(Hello(1, None, first))
    assert again is ann
    events = room.out.of(ann.eid)
    assert [type(e) for e in events] == [Welcome, Replaced, Welcome]
    assert events[2].resumed and events[2].token != first
    stale = room.game.join(Hello(1, None, first))  # the first token was used by the resume
    assert stale.eid != ann.eid
    assert [e.error.code for e in room.out.of(stale.eid) if type(e) is Refused] == ["bad_token"]


def test_a_character_stays_for_its_grace_period_then_leaves_the_world(room):
    ann = room.game.join(Hello(1, "ann", None))
    room.game.leave(ann.eid)
    room.out.updates.clear()
    room.game.command(ann.eid, Input(1, 1.0, 0.0))  # after leaving: ignored
    room.ticks(20)
    assert ann.eid not in room.out.updates and room.game.world.alive(ann.eid) and room.game.connected() == 0
    back = room.game.join(Hello(1, None, ann.token))  # within the grace period: the same character
    assert back is ann and room.out.of(ann.eid)[-1].resumed
    room.game.leave(ann.eid)
    room.ticks(int((GRACE_S + 1.5) * room.game.rules.tick_rate))
    assert not room.game.world.alive(ann.eid) and ann.eid not in room.game.players


def test_a_refused_talk_is_an_error_to_that_player_only(room):
    ann = room.game.join(Hello(1, "ann", None))
    bob = room.game.join(Hello(1, "bob", None))
    wanderer = next(iter(room.game.wanderers))
    room.game.command(ann.eid, Talk(wanderer, "hello"))
    room.ticks(1)
    refused = [e for e in room.out.of(ann.eid) if type(e) is Refused]
    assert [(e.error.code, e.error.ref) for e in refused] == [("bad_target", "talk")]
    assert [type(e) for e in room.out.of(bob.eid)] == [Welcome]


def test_a_gift_is_told_to_its_receiver(room):
    ann = room.game.join(Hello(1, "ann", None))
    wanderer = next(iter(room.game.wanderers))
    room.game.cast.gifts.append((wanderer, ann.eid, "apple"))
    room.ticks(1)
    (items,) = [e for e in room.out.of(ann.eid) if type(e) is Items]
    assert items == Items(("apple",), "apple", wanderer)
    assert msgpack.unpackb(encode(items)) == {"t": "items", "items": ["apple"], "got": "apple", "from": wanderer}
