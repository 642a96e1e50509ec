"""The ledger's tables (npc/minds/state.py): state.read, the one sorted read of several tables that a
look does, gives what each table's own get gives."""

from __future__ import annotations

import numpy as np

from npc.minds import state
from npc.minds.state import NEVER, Phased


def test_one_read_of_several_tables_equals_each_tables_get():
    rng = np.random.default_rng(7)
    for phases in (1, 10):
        tables = [Phased(phases) for _ in range(4)]
        for t in tables[:3]:  # the fourth stays empty
            npc, player = rng.integers(1, 300, 3000), rng.integers(1, 200, 3000)
            t.set(npc, player, rng.uniform(0, 100, 3000))
        for one_phase in (True, False):
            n = rng.integers(0, 30, 2000) * (phases if one_phase else 1) + (3 if one_phase else 1)
            p = rng.integers(1, 200, 2000)
            defaults = [12.5, NEVER, NEVER, -1.0]
            got = state.read(tables, n, p, defaults)
            for g, t, d in zip(got, tables, defaults):
                assert np.array_equal(g, t.get(n, p, d))
            assert (got[0] != 12.5).any() and (got[3] == -1.0).all()  # hits, and the empty table's default
    assert [len(x) for x in state.read(tables, np.zeros(0, np.int64), np.zeros(0, np.int64), [0.0] * 4)] == [0] * 4


def test_pair_times_match_a_dict_through_sets_replacements_and_forgets():
    """PairTimes against a plain dict (npc, player) -> time, through random writes: sets with repeated keys
    (the last wins), replacements of some NPCs' sets and of every NPC's (the table emptied and refilled, as
    a phase's noticed sets are at each think), writes into an empty table, and forgets."""
    rng = np.random.default_rng(3)
    table, model = state.PairTimes(), {}

    def check():
        assert list(table.keys) == sorted(table.keys.tolist())
        got = {(int(k) >> 32, int(k) & 0xFFFFFFFF): float(t) for k, t in zip(table.keys, table.times)}
        assert got == model

    for step in range(200):
        op = step % 4
        npc, player = rng.integers(1, 40, 60), rng.integers(1, 30, 60)
        t = rng.uniform(0, 100, 60)
        if op == 0:
            table.set(npc, player, t)
            model.update(((int(a), int(b)), float(c)) for a, b, c in zip(npc, player, t))
        elif op in (1, 2):
            known = np.unique(table.keys >> 32)
            npcs = known if op == 2 else np.unique(rng.choice(known, min(len(known), 5))) if len(known) else known
            mine = np.isin(npc, npcs)  # the new sets name only the NPCs replaced
            pairs = {(int(a), int(b)): float(c) for a, b, c in zip(npc[mine], player[mine], t[mine])}
            table.replace_npcs(npcs, npc[mine], player[mine], t[mine])
            model = {k: v for k, v in model.items() if k[0] not in set(npcs.tolist())}
            model.update(pairs)
            if op == 2:
                assert len(table) == len(pairs)  # every NPC replaced: only the new pairs are left
        else:
            gone = rng.integers(1, 40, 3)
            table.forget(gone)
            model = {k: v for k, v in model.items() if k[0] not in gone and k[1] not in gone}
        check()
