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
