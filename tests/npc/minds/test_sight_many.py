"""One look for a whole tick (npc/minds/sight.look_many): the shipped NPC files in a real world with
players; the per-file Sights it hands out (slices of one gather and one grid query) equal what one
look per file sees, and the think step looks once per tick, whatever the number of files."""

from __future__ import annotations


import numpy as np

from npc.minds import think
from npc.minds.cast import Cast
from npc.minds.sight import Sight, look, look_many
from world.sim import PLAYER, World, WorldConfig
from world.tilemap import load_map

from support.paths import ROOT


def village(players: int = 40) -> Cast:
    world = World(load_map(str(ROOT / "assets" / "maps" / "default.tmj")), WorldConfig(seed=3))
    cast = Cast(world, str(ROOT / "assets" / "npcs"), tick_rate=20)
    cast.load_all()
    for def_id in sorted(cast.defs):  # a few more of each, spread over the places
        for k in range(6):
            cast.spawn(def_id, place=list(cast.spawn_points)[k % len(cast.spawn_points)])
    rng = np.random.default_rng(0)
    for k in range(players):  # players near the NPCs, so that pairs exist
        x, y = world.position(int(rng.choice(list(cast.minds))))
        world.spawn(PLAYER, f"p{k}", "#fff", x + rng.uniform(-60, 60), y + rng.uniform(-60, 60))
    for _ in range(60):  # intents, greetings, noticed times, needs: some history
        cast.tick()
        world.step(0.05)
    return cast


def same(a: Sight, b: Sight) -> None:
    for f in Sight.__dataclass_fields__:
        x, y = getattr(a, f), getattr(b, f)
        if isinstance(x, np.ndarray):
            assert x.shape == y.shape, f
            if x.dtype == object:
                assert x.tolist() == y.tolist(), f
            else:
                np.testing.assert_array_equal(x, y, err_msg=f)
        else:
            assert x == y, f


def by_file(cast: Cast) -> tuple[list, np.ndarray, np.ndarray]:
    """Every NPC, a file at a time, as look_many takes them: (parts (defn, lo, hi), eids, state rows)."""
    rows = cast.rows.live()
    eids, defi = cast.rows.eid[rows], cast.rows.defi[rows]
    order = np.argsort(defi, kind="stable")
    eids, rows, defi = eids[order], rows[order], defi[order]
    cuts = np.concatenate([[0], np.flatnonzero(np.diff(defi)) + 1, [len(defi)]])
    return [(cast.def_list[int(defi[lo])], int(lo), int(hi)) for lo, hi in zip(cuts[:-1], cuts[1:])], eids, rows


def test_one_look_for_all_files_sees_what_a_look_per_file_sees():
    cast = village()
    parts, eids, rows = by_file(cast)
    assert len(parts) >= 5
    players = cast.players()
    many = look_many(cast.world, parts, eids, rows, cast.rows, cast.ledger, players, advance=False)
    assert sum(len(s.p_id) for s in many) > 0  # players within notice: pairs to slice
    for (defn, lo, hi), s in zip(parts, many):
        same(s, look(cast.world, defn, eids[lo:hi], rows[lo:hi], cast.rows, cast.ledger, players, advance=False))


def test_the_think_step_looks_once_a_tick(monkeypatch):
    cast = village(players=10)
    calls = []

    def counting(world, parts, *a, **k):
        calls.append(len(parts))
        return look_many(world, parts, *a, **k)

    monkeypatch.setattr(think, "look_many", counting)
    for _ in range(20):
        cast.tick()
        cast.world.step(0.05)
    assert len(calls) == 20 and max(calls) >= 5  # every file's due NPCs, in one look


def _decided(cast: Cast, bad: bool):
    """Every file's NPCs looked at once and decided by the built-in (a fresh decision: none kept). bad:
    in the first file a go_to without a place (the world refuses it), in the second an action the file
    does not allow (the cast refuses it)."""
    from npc.minds import builtin
    from world.intents import ACTION_INDEX, ACTIONS

    parts, eids, rows = by_file(cast)
    sights = look_many(cast.world, parts, eids, rows, cast.rows, cast.ledger, cast.players(), advance=False)
    out = []
    for k, s in enumerate(sights):
        v = builtin.decide(s, cast.world.places)
        v.keep[:] = False
        v.say[v.action == ACTION_INDEX["talk"]] = builtin.SAY_GREETING
        if bad and k == 0:
            v.action[0], v.place[0] = ACTION_INDEX["go_to"], -1
        if bad and k == 1:
            v.action[1] = next(i for i, a in enumerate(ACTIONS) if a not in s.defn.allowed)
        out.append((s, v))
    return out


def _state(cast: Cast) -> tuple:
    w, led = cast.world, cast.ledger
    led.commit()
    think.say_pending(cast)  # the lines the verdicts staged
    intents = [
        (e, *((it := w.intent(e)).action, it.activity, it.place, it.target, it.distance)) for e in sorted(cast.minds)
    ]
    lines = [(ln.speaker, ln.text) for ln in w.take_lines()]
    tables = [
        (t.keys.tolist(), np.concatenate([p.times for p in t.parts]).tolist())
        for t in (led.noticed, led.greeted, led.given, led.approached)
    ]
    r = cast.rows
    return (
        intents,
        lines,
        tables,
        [(x.kind, x.message, x.npc, x.entity) for x in cast.reports if x.kind == "intent"],  # (not hook timings)
        (r.by.tolist(), r.why.tolist(), r.need.tolist(), r.gifts.tolist()),
        list(cast.gifts),
        [(e, m.last_said) for e, m in sorted(cast.minds.items())],
    )


def test_applying_every_files_verdicts_at_once_is_applying_them_a_file_at_a_time():
    """think.apply_verdicts over all files (one read, one set_intents, one say_many) leaves the world, the
    ledger, the rows, the reports (in order: per file, the refused before the world's refusals) and the
    lines as one think.apply_verdict per file in turn does."""
    from npc.minds.state import BY_BUILTIN

    together, apart = village(players=20), village(players=20)
    assert _state(together) == _state(apart)  # the same town twice
    parts = _decided(together, bad=True)
    think.apply_verdicts(together, parts, BY_BUILTIN)
    for s, v in _decided(apart, bad=True):
        think.apply_verdict(apart, s, v, BY_BUILTIN)
    a, b = _state(together), _state(apart)
    assert [r[:2] for r in a[3][-2:]] == [
        ("intent", "go_to could not be done: no such place or live target"),
        ("intent", a[3][-1][1]),
    ] and a[3][-1][1].endswith("is not allowed; ignored")
    assert len(a[1]) > 0  # greetings said
    for k, name in enumerate(("intents", "lines", "ledger", "reports", "rows", "gifts", "last lines")):
        assert a[k] == b[k], name
