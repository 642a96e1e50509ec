"""The ledger's tables (npc/minds/state.py): state.read, the one sorted read of several tables that a
look does, gives what each table's own get gives."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

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


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 10), st.integers(0, 2**31))
def test_phased_replacements_of_one_phase_or_many_match_a_dict(phases, seed):
    """Phased.replace_npcs against a plain dict: the NPCs replaced all of one phase (a tick's look: their
    pairs go to that phase's table whole) or of several (split by phase), with sets in between."""
    rng = np.random.default_rng(seed)
    table, model = Phased(phases), {}
    for step in range(60):
        npc, player, t = rng.integers(1, 50, 80), rng.integers(1, 30, 80), rng.uniform(0, 100, 80)
        if step % 3 == 0:
            table.set(npc, player, t)
            model.update(((int(a), int(b)), float(c)) for a, b, c in zip(npc, player, t))
        else:
            ids = np.unique(npc)
            npcs = ids[ids % phases == ids[0] % phases] if step % 3 == 1 else ids[: max(1, len(ids) // 2)]
            mine = np.isin(npc, npcs)
            pairs = {(int(a), int(b)): float(c) for a, b, c in zip(npc[mine], player[mine], t[mine])}
            table.replace_npcs(npcs, npc[mine], player[mine], t[mine])
            model = {k: v for k, v in model.items() if k[0] not in set(npcs.tolist())}
            model.update(pairs)
        for ph, part in enumerate(table.parts):
            assert part.keys.tolist() == sorted(part.keys.tolist())
            assert all((int(k) >> 32) % phases == ph for k in part.keys)
        got = {(int(k) >> 32, int(k) & 0xFFFFFFFF): float(v) for p in table.parts for k, v in zip(p.keys, p.times)}
        assert got == model


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 10), st.integers(0, 400), st.integers(0, 2**31))
def test_a_read_by_sorted_keys_with_masks_and_its_sorted_write_back_are_the_plain_ones(phases, m, seed):
    """state.read from a look's PairKeys, a table read only where its mask is True (the others its default),
    equals each table's get; the noticed sets written back from those keys (no second sort) leave the same
    table as the same sets written from the pairs."""
    rng = np.random.default_rng(seed)
    tables = [Phased(phases) for _ in range(3)]
    for t in tables[:2]:
        t.set(rng.integers(1, 60, 500), rng.integers(1, 40, 500), rng.uniform(0, 100, 500))
    pairs = np.unique(np.stack([rng.integers(1, 60, m), rng.integers(1, 40, m)], axis=1), axis=0)
    pairs = pairs[rng.permutation(len(pairs))]  # a look's pairs: distinct, in no key order
    npc, player = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
    where = [None, rng.random(len(npc)) < 0.3, rng.random(len(npc)) < 0.5]
    keys = state.PairKeys(npc, player, phases)
    got = state.read(tables, keys, None, [5.0, NEVER, -1.0], where=where)
    for g, t, d, w in zip(got, tables, [5.0, NEVER, -1.0], where):
        want = t.get(npc, player, d)
        if w is not None:
            want = np.where(w, want, d)
        assert np.array_equal(g, want)
    assert np.array_equal(state.read(tables, npc, player, [5.0, NEVER, -1.0])[0], got[0])
    since = rng.uniform(0, 100, len(npc))
    npcs = np.unique(npc)
    a, b = state.Ledger(phases), state.Ledger(phases)
    before = rng.integers(1, 60, 300), rng.integers(1, 40, 300)
    for led in (a, b):
        led.noticed.set(*before, 7.0)
    a.notice(npcs, keys, None, since)
    b.notice(npcs, npc, player, since)
    a.commit()
    b.commit()
    for pa, pb in zip(a.noticed.parts, b.noticed.parts):
        assert pa.keys.tolist() == pb.keys.tolist() and pa.times.tolist() == pb.times.tolist()
        pa.set(np.asarray([1]), np.asarray([1]), 1.0)  # the table's arrays are its own (writable)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(st.integers(0, 5), max_size=30), max_size=12))
def test_the_ring_of_lines_keeps_each_npcs_last_eight_in_order(batches):
    """Rows.say over batches of lines (a row may speak several times in one batch) keeps, per row, what a
    deque of the last LINES (world s, text) does."""
    from collections import deque

    rows = state.Rows(capacity=8)
    for e in range(6):
        rows.add(100 + e, 0)
    model = {r: deque(maxlen=state.LINES) for r in range(6)}
    for b, batch in enumerate(batches):
        texts = [f"line {b}.{k}" for k in range(len(batch))]
        rows.say(np.asarray(batch, np.int64), texts, float(b))
        for r, t in zip(batch, texts):
            model[r].append((float(b), t))
        for r in range(6):
            assert rows.lines_of(r) == list(model[r])
    rows.put_lines(2, [(1.0, "a"), (2.0, "b")])
    assert rows.lines_of(2) == [(1.0, "a"), (2.0, "b")]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 2**40), max_size=200), st.integers(1, 12))
def test_present_phases_are_unique(ids, phases):
    phase = np.asarray(ids, np.int64) % phases
    assert state._present(phase, phases) == np.unique(phase).tolist()
