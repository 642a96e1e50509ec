"""Hearing in one pass (npc/minds/hearing.py): over random layouts of hooked and plain listeners, players
and lines, every listener hears exactly what a plain loop over each line and each listener says it
should, in the same order; and what a hook does not read is not perceived."""

from __future__ import annotations

import math
import signal
import tempfile
import textwrap
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npc.minds import hearing
from npc.minds.cast import Cast
from npc.minds.perception import Seen
from support.npchelp import small_map, write
from world.sim import NPC, PLAYER, World, WorldConfig
from world.tilemap import load_map

RECORD = """
    def on_hear(npc, speaker, text):
        npc.memory.setdefault("heard", []).append((speaker.id, text, speaker.distance, npc.spoken_to))
"""


def npc_file(name: str, spawn: str, count: int, hear: float, talk: float | None, hooks: bool) -> str:
    allowed = ["idle", "wander"] + (["talk"] if talk is not None else [])
    return textwrap.dedent(
        f"""
        name = "{name}"
        spawn = "{spawn}"
        count = {count}
        {'hooks = "record.py"' if hooks else ""}

        [persona]
        fallback = ["Hm.", "Well."]

        [actions]
        allowed = {allowed!r}
        {f"[actions.talk]{chr(10)}distance = {talk}" if talk is not None else ""}

        [senses]
        hear = {hear}
        """
    ).replace("'", '"')


def town(folder: Path, seed: int, radii: list[float], talk: float) -> tuple[World, Cast]:
    """Two hooked files (one also answers players), one that only answers players, one deaf."""
    write(folder / "record.py", RECORD)
    write(folder / "ear.toml", npc_file("Ear", "a", 4, radii[0], talk, True))
    write(folder / "hook.toml", npc_file("Hook", "b", 4, radii[1], None, True))
    write(folder / "plain.toml", npc_file("Plain", "a", 5, radii[2], talk, False))
    write(folder / "deaf.toml", npc_file("Deaf", "b", 3, radii[3], None, False))
    w = World(load_map(small_map(folder)), WorldConfig(seed=seed))
    cast = Cast(w, str(folder), tick_rate=20, budget_ms=1000.0)  # a loaded machine never disables the hook
    results = cast.load_all()
    assert [str(p) for r in results for p in r.problems] == []
    return w, cast


def expected(w: World, cast: Cast, lines, talked: set) -> tuple[dict, dict]:
    """A plain loop: per hooked listener, the lines it hears (players' first, then NPCs', each as said);
    per listener that answers players, how many fallback lines it says."""
    heard: dict[int, list] = {}
    replies: dict[int, int] = {}
    for m in cast.minds.values():
        hooked = m.defn.hooks is not None
        answers = "talk" in m.defn.allowed
        x, y = w.position(m.eid)
        mine = []
        for kind in (PLAYER, NPC):
            for ln in lines:
                d = math.hypot(ln.x - x, ln.y - y)
                if (
                    ln.kind != kind
                    or ln.speaker == m.eid
                    or d > m.defn.senses["hear"]
                    or (m.eid, ln.speaker, ln.text) in talked
                ):
                    continue
                if hooked:
                    mine.append((ln.speaker, ln.text, d))
                if answers and kind == PLAYER and d <= m.defn.params["talk"]["distance"]:
                    replies[m.eid] = replies.get(m.eid, 0) + 1
        if hooked:
            heard[m.eid] = mine
    return heard, replies


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 10_000),
    radii=st.lists(st.floats(10.0, 400.0), min_size=4, max_size=4),
    talk=st.floats(16.0, 300.0),
    players=st.lists(st.tuples(st.floats(40.0, 470.0), st.floats(40.0, 470.0)), min_size=0, max_size=6),
    said=st.lists(st.tuples(st.integers(0, 10_000), st.booleans()), min_size=1, max_size=30),
    talks=st.integers(0, 3),
    walk=st.integers(0, 30),
    all_pairs=st.sampled_from([0, hearing.ALL_PAIRS]),  # 0: the grid query, either way round
)
def test_everyone_hears_what_a_loop_over_each_line_and_listener_says(
    monkeypatch, seed, radii, talk, players, said, talks, walk, all_pairs
):
    monkeypatch.setattr(hearing, "ALL_PAIRS", all_pairs)
    with tempfile.TemporaryDirectory() as tmp:
        w, cast = town(Path(tmp), seed, radii, talk)
        for _ in range(walk):  # the NPCs walk off their spawn points (and greet, and hear: not checked)
            cast.tick()
            w.step(0.05)
        pids = [w.spawn(PLAYER, f"p{k}", "#ffffff", x, y) for k, (x, y) in enumerate(players)]
        npcs = sorted(cast.minds)
        w.take_lines()
        for k, (who, by_player) in enumerate(said):
            speakers = pids if by_player and pids else npcs
            w.say(speakers[who % len(speakers)], f"line {k:02d}")  # no line the start of another (_same)
        lines = w.take_lines()
        # a few of the players' lines were said *to* a hooked NPC first (a talk): it does not hear them again
        talked = set()
        hooked = [m for m in cast.minds.values() if m.defn.hooks is not None]
        for k, ln in enumerate([ln for ln in lines if ln.kind == PLAYER][:talks]):
            m = hooked[k % len(hooked)]
            hearing.spoken(cast, m, Seen(ln.speaker, ln.name, "player", 0.0, ln.x, ln.y), ln.text)
            talked.add((m.eid, ln.speaker, ln.text))
        for m in cast.minds.values():
            m.memory.pop("heard", None)
            m.state.replies = 0
        want_heard, want_replies = expected(w, cast, lines, talked)
        hearing.hear(cast, lines)
        for eid, want in want_heard.items():
            got = cast.minds[eid].memory.get("heard", [])
            assert [(s, t) for s, t, _, _ in got] == [(s, t) for s, t, _ in want], eid
            assert all(math.isclose(a[2], b[2], abs_tol=1e-9) and not a[3] for a, b in zip(got, want))
        got_replies = {m.eid: m.state.replies for m in cast.minds.values() if m.state.replies}
        assert got_replies == want_replies
        assert not [r for r in cast.reports if r.kind != "hook_slow"]


def one_listener(folder: Path, module: str) -> tuple[World, Cast, int]:
    write(folder / "record.py", module)
    write(folder / "ear.toml", npc_file("Ear", "a", 1, 400.0, None, True))
    w = World(load_map(small_map(folder)), WorldConfig(seed=3))
    cast = Cast(w, str(folder), tick_rate=20, budget_ms=5.0)
    assert [str(p) for r in cast.load_all() for p in r.problems] == []
    [eid] = cast.minds
    return w, cast, eid


def counted_perceive(cast: Cast) -> list[int]:
    """The cast's real perceive, counted (the issue's "count it")."""
    made: list[int] = []
    real = cast.perceive

    def perceive(m):
        made.append(m.eid)
        return real(m)

    cast.perceive = perceive  # type: ignore[method-assign]
    return made


def test_a_hook_that_reads_nothing_costs_no_perception_and_one_that_reads_costs_one_a_tick(tmp_path):
    w, cast, e = one_listener(
        tmp_path,
        """
        def on_hear(npc, speaker, text):
            if speaker.kind != "player":
                return  # as the bard: another NPC's line is not for her
            npc.memory.setdefault("at", []).append((npc.position, npc.players[0].name if npc.players else None))
        """,
    )
    x, y = w.position(e)
    others = [w.spawn(NPC, f"n{k}", "#ffffff", x + 10 + k, y) for k in range(20)]
    made = counted_perceive(cast)
    for k, o in enumerate(others):
        w.say(o, f"good day {k}")
    hearing.hear(cast, w.take_lines())
    assert made == [] and cast.guards["ear"].status()["calls"] == 20
    p = w.spawn(PLAYER, "ana", "#ffffff", x + 30, y)
    for k in range(3):
        w.say(p, f"hello {k}")
    w.say(others[0], "and you")
    hearing.hear(cast, w.take_lines())
    assert made == [e]  # one perception for the three lines it heard this tick
    assert cast.minds[e].memory["at"] == [((x, y), "ana")] * 3


def test_a_hook_that_raises_or_runs_away_while_hearing_is_reported_and_the_next_line_is_heard(tmp_path):
    w, cast, e = one_listener(
        tmp_path,
        """
        def on_hear(npc, speaker, text):
            npc.memory.setdefault("heard", []).append(text)
            if text == "boom":
                return 1 / 0
            if text == "spin":
                while True:
                    pass
        """,
    )
    x, y = w.position(e)
    p = w.spawn(PLAYER, "ana", "#ffffff", x + 30, y)
    for text in ("boom", "spin", "after"):
        w.say(p, text)
    handler = signal.getsignal(signal.SIGALRM)
    hearing.hear(cast, w.take_lines())
    assert signal.getsignal(signal.SIGALRM) == handler  # the pass's handler is gone
    assert cast.minds[e].memory["heard"] == ["boom", "spin", "after"]
    kinds = {r.kind: r for r in cast.reports}
    assert "ZeroDivisionError" in kinds["hook_error"].message and kinds["hook_error"].hook == "on_hear"
    assert "was stopped after" in kinds["hook_slow"].message and kinds["hook_slow"].entity == e
    assert {r["kind"] for r in cast.errors()["recent"]} == {"hook_error", "hook_slow"}  # GET /errors
