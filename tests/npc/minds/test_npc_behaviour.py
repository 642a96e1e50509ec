"""The built-in behaviour in a pure world: schedule, needs and surroundings drive it.

The game clock only moves when the world is stepped (20 steps per simulated
second here), never with the wall clock.
"""

import math

from npc.minds.cast import Cast
from support.npchelp import small_map, write
from world.clock import game_time, parse_clock
from world.sim import PLAYER, World, WorldConfig
from world.tilemap import load_map

DT = 0.05


def town(tmp_path, files: dict[str, str], start: str = "08:00", day_length_s: float = 1440.0):
    """A world on the small map with these NPC files, and its cast."""
    npcs = tmp_path / "npcs"
    npcs.mkdir(exist_ok=True)
    for name, text in files.items():
        write(npcs / name, text)
    m = load_map(small_map(tmp_path))
    w = World(m, WorldConfig(seed=3, day_length_s=day_length_s, start_minute=parse_clock(start)))
    cast = Cast(w, str(npcs), tick_rate=20)
    results = cast.load_all()
    assert [str(p) for r in results for p in r.problems] == []
    return w, cast


def run(w, cast, ticks: int, every: int = 1, probe=None) -> list:
    out = []
    for i in range(ticks):
        cast.tick()
        w.step(DT)
        if probe and i % every == 0:
            out.append(probe())
    return out


def one(cast, npc_id):
    [eid] = [e for e, m in cast.minds.items() if m.defn.id == npc_id]
    return eid


def dist(w, eid, place):
    x, y = w.position(eid)
    px, py = w.place_position(place)
    return math.hypot(x - px, y - py)


def test_the_game_clock_follows_stepping(tmp_path):
    assert game_time(0, 1440, 480).clock == "08:00"
    t = game_time(1440, 1440, 480)  # 24 real minutes = a game day at the default length
    assert (t.day, t.clock) == (1, "08:00")
    assert game_time(90, 1440, 23 * 60 + 59).day == 1
    w = World(load_map(small_map(tmp_path)), WorldConfig(day_length_s=240, start_minute=parse_clock("23:00")))
    for _ in range(200):  # 10 simulated seconds = one game hour with a 240 s day
        w.step(DT)
    assert (w.game_time.day, w.game_time.clock) == (1, "00:00")


SCHEDULE = """
    name = "Smith"
    spawn = "a"

    [needs.energy]
    start = 50
    rate = 0
    [needs.energy.during]
    forging = -60        # a point per game minute, at the anvil only
    napping = 120

    [[schedule]]
    from = "00:00"
    to = "08:00"
    do = "work"
    at = "a"
    activity = "forging"

    [[schedule]]
    from = "08:00"
    to = "24:00"
    do = "rest"
    at = "b"
    activity = "napping"

    [actions]
    allowed = ["idle", "work", "rest"]
"""


def test_the_schedule_sends_an_npc_to_work_then_to_rest(tmp_path):
    w, cast = town(tmp_path, {"smith.toml": SCHEDULE}, start="07:50")
    e = one(cast, "smith")
    run(w, cast, 180)  # 9 s: 07:59
    assert w.game_time.clock == "07:59"
    it = w.intent(e)
    assert (it.action, it.place, it.activity, it.arrived) == ("work", "a", "forging", True)
    assert dist(w, e, "a") < w.place_radius
    energy = w.stats(e)["energy"]
    assert 40 < energy < 50  # forging at the anvil: -1 per game minute

    seen = run(w, cast, 600, 10, lambda: (w.game_time.minute, w.intent(e)))
    rest = [(minute, it) for minute, it in seen if it.action == "rest"]
    assert rest and rest[0][0] >= 8 * 60  # not before 08:00
    assert rest[0][0] < 8 * 60 + 1  # and within a game minute of it (a re-think)
    it = w.intent(e)
    assert (it.action, it.place, it.activity, it.arrived) == ("rest", "b", "napping", True)
    assert dist(w, e, "b") < w.place_radius
    assert w.stats(e)["energy"] > energy  # napping at b restores energy
    assert cast.listing()["npcs"][0]["activity"] == "napping"


NEEDS = """
    name = "Tired"
    spawn = "a"

    [needs.energy]
    start = 40
    rate = -60           # per game hour: a point per game minute, a point per second here
    low = 30
    full = 60
    relief = "rest"
    at = "b"
    activity = "napping"
    [needs.energy.during]
    napping = 600

    [[schedule]]
    from = "00:00"
    to = "24:00"
    do = "work"
    at = "a"
    activity = "forging"

    [actions]
    allowed = ["idle", "work", "rest"]
"""


def test_a_low_need_interrupts_the_schedule_until_it_is_full_again(tmp_path):
    w, cast = town(tmp_path, {"tired.toml": NEEDS})
    e = one(cast, "tired")
    seen = run(w, cast, 1200, 5, lambda: (w.intent(e).action, w.intent(e).place, w.stats(e)["energy"]))
    actions = [a for a, _, _ in seen]
    # work -> rest -> work, in that order
    first_rest = actions.index("rest")
    back = actions.index("work", first_rest)
    assert "work" in actions[:first_rest]
    # it starts tending below `low` (a think is at most half a second = half a point late) ...
    assert 29 <= seen[first_rest][2] < 30
    assert all(energy >= 29 for a, _, energy in seen[:first_rest])
    # ... and keeps at it, above `low`, until `full`
    assert all(a == "rest" for a, _, energy in seen[first_rest:back])
    assert any(30 < energy < 60 for _, _, energy in seen[first_rest:back])
    assert seen[back][2] >= 60
    assert seen[first_rest][1] == "b" and seen[back][1] == "a"


GUARD = """
    name = "Guard"
    spawn = "a"

    [[schedule]]
    from = "00:00"
    to = "24:00"
    do = "work"
    at = "a"
    activity = "standing guard"

    [actions]
    allowed = ["idle", "work", "follow"]

    [actions.follow]
    who = "suspicious"
    linger = 2
    distance = 40
    give_up = 200

    [weights]
    follow = {follow}
"""


def test_a_guard_follows_a_player_who_lingers_and_gives_up_far_away(tmp_path):
    w, cast = town(
        tmp_path,
        {
            "guard.toml": GUARD.replace("{follow}", "1.2"),
            "lazy.toml": GUARD.replace("{follow}", "0.5").replace('"Guard"', '"Lazy"'),
        },
    )
    guard, lazy = one(cast, "guard"), one(cast, "lazy")
    run(w, cast, 100)
    gx, gy = w.position(guard)
    p = w.spawn(PLAYER, "sneaky", "#fff", gx + 60, gy + 60)
    run(w, cast, 20)  # 1 s: not suspicious yet
    assert w.intent(guard).action == "work"
    run(w, cast, 40)  # 3 s: lingered 2 s
    it = w.intent(guard)
    assert (it.action, it.target) == ("follow", p)
    assert w.intent(lazy).action == "work"  # its follow weight (0.5) is below its schedule's (1.0)
    w.set_direction(p, 1.0, 1.0)  # the player runs off (160 units/s; NPCs walk at 60)
    seen = run(w, cast, 200, 5, lambda: w.intent(guard).action)
    assert seen.index("work") > seen.index("follow")  # followed, then gave up and went back to work


FLEE = """
    name = "Hen"
    spawn = "b"

    [actions]
    allowed = ["idle", "flee"]

    [actions.flee]
    distance = 80
    safe = 150
"""


def test_an_npc_flees_a_player_who_comes_close(tmp_path):
    w, cast = town(tmp_path, {"hen.toml": FLEE})
    hen = one(cast, "hen")
    run(w, cast, 20)
    assert w.intent(hen).action == "idle"
    hx, hy = w.position(hen)
    p = w.spawn(PLAYER, "fox", "#fff", hx - 40, hy - 40)
    run(w, cast, 20)
    assert (w.intent(hen).action, w.intent(hen).target) == ("flee", p)
    run(w, cast, 60)
    px, py = w.position(p)
    x, y = w.position(hen)
    assert math.hypot(x - px, y - py) > 100


TALKER = """
    name = "Tam"
    spawn = "a"

    [persona]
    greeting = "Welcome, {player}!"
    fallback = ["Everything's for sale.", "Best prices!"]

    [actions]
    allowed = ["idle", "talk", "give_item"]

    [actions.give_item]
    items = ["apple", "pear"]
    line = "Take this {item}, {player}."
    distance = 64
    cooldown = 100

    [actions.talk]
    distance = 96
    duration = 1
"""


def test_greeting_giving_and_answering(tmp_path):
    w, cast = town(tmp_path, {"tam.toml": TALKER})
    tam = one(cast, "tam")
    run(w, cast, 20)
    x, y = w.position(tam)
    p = w.spawn(PLAYER, "ada", "#fff", x + 40, y)
    said = []

    def listen():
        for line in w.take_lines():  # (the cast also takes lines; read them right after each step)
            if line.speaker == tam:
                said.append(line.text)

    for _ in range(100):
        cast.tick()
        w.step(DT)
        listen()
    # giving (1.6) beats greeting (1.5); the greeting follows once the gift is done
    assert said[:2] == ["Take this apple, ada.", "Welcome, ada!"]
    assert cast.gifts_given(tam) == 1  # what dialogue's choice of an action after a reply reads
    assert w.intent(tam).action in ("idle", "talk")
    w.say(p, "how much for the pear?")
    for _ in range(5):
        cast.tick()
        w.step(DT)
        listen()
    assert said[-1] == "Everything's for sale."
    listing = cast.listing()["npcs"][0]
    assert listing["last_utterance"]["text"] == "Everything's for sale."
