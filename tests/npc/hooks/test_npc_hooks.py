"""Hooks run contained, and reloads swap definitions in place (in-process, a pure world)."""

import signal

from npc import hooks
from npc.minds import hearing
from npc.minds.cast import Cast
from npc.minds.perception import Seen
from npc.files.loader import load_files, npc_files
from support.npchelp import small_map, write
from world.sim import PLAYER, World, WorldConfig
from world.tilemap import load_map

NPC = """
    name = "Hooky"
    spawn = "a"
    hooks = "hooky.py"

    [[schedule]]
    from = "00:00"
    to = "24:00"
    do = "go_to"
    at = "b"

    [actions]
    allowed = ["idle", "go_to", "talk"]
"""


def setup(tmp_path, module: str, npc: str = NPC, budget_ms: float = 5.0):
    folder = tmp_path / "npcs"
    folder.mkdir(exist_ok=True)
    write(folder / "hooky.toml", npc)
    write(folder / "hooky.py", module)
    w = World(load_map(small_map(tmp_path)), WorldConfig(seed=1))
    cast = Cast(w, str(folder), tick_rate=20, budget_ms=budget_ms)
    results = cast.load_all()
    assert [str(p) for r in results for p in r.problems] == []
    [eid] = cast.minds
    return w, cast, eid


def run(w, cast, ticks):
    for _ in range(ticks):
        cast.tick()
        w.step(0.05)


def reports(cast, kind):
    return [r for r in cast.reports if r.kind == kind]


def test_hooks_decide_and_remember(tmp_path):
    w, cast, e = setup(
        tmp_path,
        """
        def on_spawn(npc):
            npc.memory["thinks"] = 0

        def on_decide(npc):
            npc.memory["thinks"] += 1
            npc.idle(activity="daydreaming")

        def on_hear(npc, speaker, text):
            npc.memory["heard"] = (speaker.kind, speaker.name, text)
            npc.talk("I heard you, " + speaker.name, to=speaker)
    """,
    )
    run(w, cast, 40)
    mind = cast.minds[e]
    assert mind.memory["thinks"] >= 4
    assert (w.intent(e).action, w.intent(e).activity) == ("idle", "daydreaming")
    x, y = w.position(e)
    p = w.spawn(PLAYER, "ada", "#fff", x + 30, y)
    w.say(p, "hello there")
    run(w, cast, 1)
    assert mind.memory["heard"] == ("player", "ada", "hello there")
    assert mind.last_said == "I heard you, ada"
    assert cast.guards["hooky"].status()["state"] == "ok" and not cast.reports


def test_a_raising_hook_falls_back_to_the_builtin_and_is_reported(tmp_path):
    w, cast, e = setup(
        tmp_path,
        """
        def on_decide(npc):
            npc.memory["before"] = True
            return 1 / 0
    """,
    )
    run(w, cast, 30)
    it = w.intent(e)
    assert (it.action, it.place) == ("go_to", "b")  # the built-in: its schedule
    [r, *_] = reports(cast, "hook_error")
    assert r.entity == e and r.npc == "hooky" and r.hook == "on_decide" and r.line == 3
    assert "ZeroDivisionError" in r.message and "ZeroDivisionError" in r.traceback
    assert r.file.endswith("hooky.py") and 'hooky.py", line 3' in r.traceback
    assert cast.listing()["npcs"][0]["errors"][0]["kind"] == "hook_error"
    assert cast.guards["hooky"].status()["state"] == "ok"  # errors alone do not disable


def test_a_hook_cannot_do_what_its_file_does_not_allow(tmp_path):
    w, cast, e = setup(
        tmp_path,
        """
        def on_decide(npc):
            npc.flee(npc.nearest_player or 1)
    """,
    )
    run(w, cast, 15)
    assert w.intent(e).action == "go_to"
    [r, *_] = reports(cast, "hook_error")
    assert "NotAllowed" in r.message and "'flee' is not allowed" in r.message


def test_a_slow_hook_is_reported_then_disabled(tmp_path):
    w, cast, e = setup(
        tmp_path,
        """
        import time

        def on_decide(npc):
            time.sleep(0.008)       # over the 5 ms budget, under the 20 ms hard cap
            npc.idle()
    """,
    )
    run(w, cast, 60)  # about 6 thinks
    slow = reports(cast, "hook_slow")
    # an 8 ms sleep is over the budget; on a loaded machine it may also pass the hard cap (stopped): both overrun
    assert len(slow) == hooks.MAX_OVERRUNS
    assert all("budget 5.0 ms" in r.message or "hard cap 20 ms" in r.message for r in slow)
    assert len(reports(cast, "hook_disabled")) == 1
    status = cast.guards["hooky"].status()
    assert status["state"] == "disabled" and status["calls"] == hooks.MAX_OVERRUNS
    assert w.intent(e).action == "go_to"  # the built-in took over


def test_a_runaway_hook_is_stopped_by_the_hard_cap(tmp_path):
    old = signal.getitimer(signal.ITIMER_REAL)
    w, cast, e = setup(
        tmp_path,
        """
        def on_decide(npc):
            while True:
                try:
                    pass
                except Exception:    # does not catch the timeout (a BaseException)
                    pass
    """,
    )
    run(w, cast, 60)  # each call is stopped after 20 ms; the tick goes on
    stopped = reports(cast, "hook_slow")
    assert len(stopped) == hooks.MAX_OVERRUNS
    assert all("was stopped after" in r.message and r.line in (2, 3, 4, 5, 6) for r in stopped)
    assert cast.guards["hooky"].status()["state"] == "disabled"
    assert w.intent(e).action == "go_to" and w.tick == 60
    # pytest-timeout's alarm (if any) is still armed as it was
    assert (signal.getitimer(signal.ITIMER_REAL)[0] > 0) == (old[0] > 0)


def test_a_reload_swaps_the_definition_and_keeps_memory(tmp_path):
    w, cast, e = setup(
        tmp_path,
        """
        def on_decide(npc):
            npc.memory["n"] = npc.memory.get("n", 0) + 1
    """,
    )
    folder = tmp_path / "npcs"
    run(w, cast, 20)
    n = cast.minds[e].memory["n"]

    # a broken edit keeps the running version
    write(folder / "hooky.toml", NPC.replace('do = "go_to"', 'do = "go_to'))
    cast.apply(load_files(npc_files(folder), cast.places, cast.spawn_points))
    assert list(cast.minds) == [e] and cast.defs["hooky"].name == "Hooky"
    [problem] = cast.errors()["files"][str(folder / "hooky.toml")]
    assert problem["line"] == 8 and "not valid TOML" in problem["message"]

    # a new name: respawned where it stood, with a new id and the same memory
    write(
        folder / "hooky.toml",
        """
        name = "Hooky II"
        hooks = "hooky.py"

        [actions]
        allowed = ["idle"]
    """,
    )
    pos = w.position(e)
    row = cast.rows.row_of[e]
    cast.rows.tending[row], cast.rows.patrol[row], cast.rows.gifts[row] = 1, 2, 3
    cast.apply(load_files(npc_files(folder), cast.places, cast.spawn_points))
    [e2] = cast.minds
    row2 = cast.rows.row_of[e2]  # its state-table row is carried over, not started afresh
    assert (cast.rows.tending[row2], cast.rows.patrol[row2], cast.rows.gifts[row2]) == (1, 2, 3)
    assert e2 != e and not w.alive(e) and w.name_of(e2) == "Hooky II" and w.position(e2) == pos
    assert cast.minds[e2].memory["n"] >= n and cast.errors()["files"] == {}
    run(w, cast, 20)
    assert w.intent(e2).action == "idle" and w.position(e2) == pos  # allowed = ["idle"]: it stands still

    # a count: more of them; a deleted file: gone
    write(folder / "hooky.toml", NPC.replace('name = "Hooky"', 'name = "Hooky {n}"\ncount = 3'))
    cast.apply(load_files(npc_files(folder), cast.places, cast.spawn_points))
    assert sorted(w.name_of(x) for x in cast.minds) == ["Hooky 1", "Hooky 2", "Hooky 3"]
    (folder / "hooky.toml").unlink()
    cast.apply([], removed=[str(folder / "hooky.toml")])
    assert cast.minds == {} and cast.defs == {}


def test_a_hook_slow_now_and_then_is_logged_once_a_minute_and_reported_every_time(tmp_path, caplog):
    """An on_hear slow on one call in ten (never the 3 in 20 that disable it), heard 1,000 times: every
    overrun is a report (GET /errors), the log gets one line for the 100 (it had a line per 100 of them,
    LOG_EVERY: hundreds in a long run), then a line a minute saying how many it held back."""
    w, cast, e = setup(
        tmp_path,
        """
        import time

        def on_hear(npc, speaker, text):
            npc.memory["heard"] = npc.memory.get("heard", 0) + 1
            if npc.memory["heard"] % 10 == 0:
                time.sleep(0.045)       # over the 20 ms budget (the hard cap, 80 ms, may stop it: an overrun too)
    """,
        budget_ms=20.0,  # (with 5 ms, a quick call descheduled on a loaded machine (load 10) overran too: disabled)
    )
    clock = [1000.0]
    cast.slow_log.clock = lambda: clock[0]
    guard, mind = cast.guards["hooky"], cast.minds[e]
    x, y = w.position(e)
    ana = Seen(w.spawn(PLAYER, "Ana", "#ffffff", x + 20, y), "Ana", "player", 20.0, x + 20, y)
    caplog.set_level("WARNING", logger="npcworld.npc")

    def hear(n: int) -> None:
        for i in range(n):
            hearing.spoken(cast, mind, ana, f"hello {i}")  # as a talk reaches the NPC's on_hear

    hear(1000)
    assert guard.status()["calls"] == 1000 and guard.status()["state"] == "ok"  # never disabled
    assert guard.status()["overruns"] >= 100  # each one reported (cast.reports keeps the newest 200)
    lines = [r.getMessage() for r in caplog.records if "on_hear" in r.getMessage()]
    assert len(lines) == 1 and "npc hooky" in lines[0] and "more slow" not in lines[0], lines
    clock[0] += 61  # a minute on: the next overrun is logged, with the count held back
    hear(10)
    lines = [r.getMessage() for r in caplog.records if "on_hear" in r.getMessage()]
    held = guard.status()["overruns"] - 2
    assert len(lines) == 2 and f"({held} more slow on_hear calls of hooky.py not logged since the last)" in lines[1]
