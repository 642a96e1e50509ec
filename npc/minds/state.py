"""The built-in behaviour's memory of every NPC, as arrays.

`Rows`: one row per NPC of a file (rows are reused after a despawn): which
file it runs, the needs it is tending, its patrol stop, the items it gave,
who last decided for it and why, and a ring of the last LINES lines it said
(written for all of a tick's speakers at once: `say`). `Ledger`: times per (NPC, player)
pair: since when the player has been within notice, and when the NPC last
greeted, gave to or approached them. Both are read and written for many NPCs
at once (a think reads a whole file's due NPCs in one gather).

Bounds: Rows grows by doubling (~40 bytes a row, plus LINES x 16 for the ring and its lines' strings). The ledger holds one
entry per pair that ever happened; `forget` drops an entity's pairs when it
leaves the world, so it is bounded by (NPCs x players met while both live).
"""

from __future__ import annotations

import numpy as np

NEVER = float("-inf")

# Who made an NPC's last decision (Rows.by)
BY_NONE, BY_BUILTIN, BY_POLICY, BY_HOOK, BY_DIALOGUE = range(5)
BY_NAMES = ("none", "builtin", "policy", "hook", "dialogue")
LINES = 8  # lines said kept per NPC (GET /npcs/<id>), the newest


class Rows:
    def __init__(self, capacity: int = 256):
        self.row_of: dict[int, int] = {}
        self._free: list[int] = []
        self.n = 0  # high-water mark of rows used
        self._alloc(capacity)

    def _alloc(self, cap: int) -> None:
        old = {
            k: getattr(self, k)
            for k in ("eid", "defi", "tending", "patrol", "gifts", "by", "why", "need", "said_text", "said_s", "said_n")
            if hasattr(self, k)
        }
        self.eid = np.zeros(cap, np.int64)  # 0: a free row
        self.defi = np.full(cap, -1, np.int32)  # index into the cast's definitions list
        self.tending = np.zeros(cap, np.uint64)  # bit k: need k of the file is being tended
        self.patrol = np.zeros(cap, np.int32)  # the current stop of a patrol route
        self.gifts = np.zeros(cap, np.int64)  # items given so far
        self.by = np.zeros(cap, np.int8)  # BY_* of the last decision
        self.why = np.zeros(cap, np.int8)  # the built-in's WHY_* code of it (builtin.Verdict.why)
        self.need = np.full(cap, -1, np.int16)  # the need of a WHY_NEED decision
        # the ring of lines said: line j of a row is at column j % LINES; said_n = lines said so far
        self.said_text = np.full((cap, LINES), None, object)
        self.said_s = np.zeros((cap, LINES), np.float64)  # world s
        self.said_n = np.zeros(cap, np.int64)
        for k, v in old.items():
            getattr(self, k)[: len(v)] = v
        self.capacity = cap

    def add(self, eid: int, defi: int) -> int:
        if self._free:
            r = self._free.pop()
        else:
            if self.n == self.capacity:
                self._alloc(self.capacity * 2)
            r = self.n
            self.n += 1
        self.row_of[eid] = r
        self.eid[r], self.defi[r], self.tending[r], self.patrol[r], self.gifts[r] = eid, defi, 0, 0, 0
        self.by[r], self.why[r], self.need[r] = BY_NONE, 0, -1
        self.said_n[r] = 0
        self.said_text[r] = None
        return r

    def remove(self, eid: int) -> None:
        r = self.row_of.pop(eid, None)
        if r is not None:
            self.eid[r], self.defi[r] = 0, -1
            self._free.append(r)

    def say(self, rows: np.ndarray, texts: list[str], at_s: float) -> None:
        """Lines said at world second at_s by the NPCs of these rows, in order (a row may repeat)."""
        rows = np.asarray(rows, np.int64)
        if not len(rows):
            return
        order = np.argsort(rows, kind="stable")
        r = rows[order]
        head = np.ones(len(r), bool)
        head[1:] = r[1:] != r[:-1]
        first = np.flatnonzero(head)
        counts = np.diff(np.append(first, len(r)))  # lines per row
        nth = np.arange(len(r)) - np.repeat(first, counts)  # each line's place among its row's, in order
        col = (self.said_n[r] + nth) % LINES
        keep = nth >= np.repeat(counts, counts) - LINES  # a row's last LINES lines (distinct columns)
        text = np.empty(len(rows), object)
        text[:] = texts
        self.said_text[r[keep], col[keep]] = text[order][keep]
        self.said_s[r[keep], col[keep]] = at_s
        np.add.at(self.said_n, r, 1)

    def lines_of(self, row: int) -> list[tuple[float, str]]:
        """(world s, text) of the row's last LINES lines, oldest first."""
        n = int(self.said_n[row])
        cols = [j % LINES for j in range(max(0, n - LINES), n)]
        return [(float(self.said_s[row, c]), self.said_text[row, c]) for c in cols]

    def put_lines(self, row: int, lines: list[tuple[float, str]]) -> None:
        """The row's ring holds these lines ((world s, text), oldest first) and no others (a respawn)."""
        lines = lines[-LINES:]
        self.said_text[row] = None
        for j, (at_s, text) in enumerate(lines):
            self.said_text[row, j], self.said_s[row, j] = text, at_s
        self.said_n[row] = len(lines)

    def rows(self, eids) -> np.ndarray:
        return np.fromiter(map(self.row_of.__getitem__, eids), np.int64, len(eids))

    def live(self) -> np.ndarray:
        """Rows in use."""
        return np.flatnonzero(self.eid[: self.n] > 0)


def _keys(npc: np.ndarray, player: np.ndarray) -> np.ndarray:
    return (np.asarray(npc, np.int64) << 32) | np.asarray(player, np.int64)


class PairTimes:
    """A sorted map (npc id, player id) -> world seconds, read and written in bulk."""

    def __init__(self):
        self.keys = np.zeros(0, np.int64)
        self.times = np.zeros(0, np.float64)
        self._later: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # staged writes (`later`)

    def __len__(self) -> int:
        return len(self.keys)

    def get(self, npc: np.ndarray, player: np.ndarray, default: float = NEVER) -> np.ndarray:
        k = _keys(npc, player)
        if not len(self.keys) or not len(k):
            return np.full(len(k), default)
        i = np.searchsorted(self.keys, k)
        np.minimum(i, len(self.keys) - 1, out=i)
        return np.where(self.keys[i] == k, self.times[i], default)

    def set(self, npc: np.ndarray, player: np.ndarray, t) -> None:
        self.set_keys(_keys(npc, player), t)

    def set_keys(self, k: np.ndarray, t, unique_sorted: bool = False) -> None:
        """set() by pair keys; unique_sorted: k is sorted with no key twice (a look's, sorted once by
        its read: no second sort)."""
        if not len(k):
            return
        t = np.broadcast_to(np.asarray(t, np.float64), k.shape)
        if not unique_sorted:
            k, last = np.unique(k[::-1], return_index=True)  # one value per key: the last given wins
            t = t[::-1][last]
        elif not len(self.keys):
            k, t = k.copy(), t.copy()  # kept as the table: its own writable arrays
        if not len(self.keys):  # an empty table (a phase's noticed sets all replaced): the pairs are it
            self.keys, self.times = k, t
            return
        i = np.searchsorted(self.keys, k)
        hit = np.zeros(len(k), bool)
        inside = i < len(self.keys)
        hit[inside] = self.keys[i[inside]] == k[inside]
        self.times[i[hit]] = t[hit]
        new = ~hit  # inserted in order: no re-sort (O(L) copy)
        if new.any():
            self.keys = np.insert(self.keys, i[new], k[new])
            self.times = np.insert(self.times, i[new], t[new])

    def later(self, npc: np.ndarray, player: np.ndarray, t) -> None:
        """set(), written at the next `flush` (Ledger.commit): a think writes once per tick, not once per
        file (each set copies the table: ~100,000 greeted pairs at 10,000 NPCs and 1,000 players). Reads
        before the flush see the old times; a tick decides each NPC once, so it reads only its own."""
        npc = np.asarray(npc, np.int64)
        self._later.append((npc, np.asarray(player, np.int64), np.broadcast_to(np.asarray(t, np.float64), npc.shape)))

    def flush(self) -> None:
        staged, self._later = self._later, []
        if staged:
            self.set(*(np.concatenate(c) for c in zip(*staged)))

    def replace_npcs(self, npcs: np.ndarray, npc: np.ndarray, player: np.ndarray, t: np.ndarray) -> None:
        """Every entry of the NPCs `npcs` is replaced by the given pairs (a new 'within notice' set)."""
        self.replace_keys(npcs, _keys(npc, player), t)

    def replace_keys(self, npcs: np.ndarray, k: np.ndarray, t: np.ndarray, unique_sorted: bool = False) -> None:
        """replace_npcs() by pair keys (unique_sorted: as set_keys)."""
        if len(self.keys) and len(npcs):
            npcs = np.asarray(npcs, np.int64)
            lo = np.searchsorted(self.keys, npcs << 32)  # an NPC's entries are one run of the keys
            hi = np.searchsorted(self.keys, (npcs + 1) << 32)
            counts = hi - lo
            total = int(counts.sum())
            if total == len(self.keys):  # all of them (a phase's NPCs think in one tick): no copy of the rest
                self.keys, self.times = self.keys[:0], self.times[:0]
            elif total:
                run = np.repeat(lo - (np.cumsum(counts) - counts), counts)
                keep = np.ones(len(self.keys), bool)
                keep[run + np.arange(total)] = False
                self.keys, self.times = self.keys[keep], self.times[keep]
        self.set_keys(k, t, unique_sorted)

    def forget(self, eids) -> None:
        """Drop every pair of these entities (NPC or player side): they left the world."""
        self.flush()
        if not len(self.keys):
            return
        e = np.asarray(list(eids), np.int64)
        keep = ~(np.isin(self.keys >> 32, e) | np.isin(self.keys & 0xFFFFFFFF, e))
        self.keys, self.times = self.keys[keep], self.times[keep]

    def of_npc(self, eid: int) -> dict[int, float]:
        lo, hi = np.searchsorted(self.keys, [eid << 32, (eid + 1) << 32])
        return {int(k & 0xFFFFFFFF): float(t) for k, t in zip(self.keys[lo:hi], self.times[lo:hi])}


def _present(phase: np.ndarray, phases: int) -> list[int]:
    """The distinct phases (0..phases-1) in `phase`, ascending: np.unique's, by one count instead of a sort
    (15,000 pairs of several phases: a tick with fallbacks)."""
    return np.flatnonzero(np.bincount(phase, minlength=phases)).tolist()


class Phased:
    """PairTimes split by the NPC's think phase (id % k): a tick replaces the noticed sets of one
    phase's NPCs, and writes the greetings, gifts and approaches of one phase's NPCs, so it rewrites
    a table of 1/k of the pairs, not all of them (greeted: ~100,000 pairs at 10,000 NPCs and 1,000
    players, a 1.6 MB copy per write otherwise)."""

    def __init__(self, k: int):
        self.k = k
        self.parts = [PairTimes() for _ in range(k)]
        self._later: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # staged writes (`later`)

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    @property
    def keys(self) -> np.ndarray:
        return np.concatenate([p.keys for p in self.parts])

    def _split(self, npc: np.ndarray):
        phase = np.asarray(npc, np.int64) % self.k
        if len(phase) and phase.min() == phase.max():  # a tick's due NPCs: mostly one phase (no sort)
            yield int(phase[0]), slice(None)
            return
        for ph in _present(phase, self.k):
            yield ph, phase == ph

    def get(self, npc: np.ndarray, player: np.ndarray, default: float = NEVER) -> np.ndarray:
        npc = np.asarray(npc, np.int64)
        out = np.full(len(npc), default)
        for ph, sel in self._split(npc):
            out[sel] = self.parts[ph].get(npc[sel], np.asarray(player)[sel], default)
        return out

    def set(self, npc: np.ndarray, player: np.ndarray, t) -> None:
        npc = np.asarray(npc, np.int64)
        t = np.broadcast_to(np.asarray(t, np.float64), npc.shape)
        for ph, sel in self._split(npc):
            self.parts[ph].set(npc[sel], np.asarray(player)[sel], t[sel])

    def later(self, npc: np.ndarray, player: np.ndarray, t) -> None:
        """set(), written at the next `flush` (as PairTimes.later)."""
        npc = np.asarray(npc, np.int64)
        self._later.append((npc, np.asarray(player, np.int64), np.broadcast_to(np.asarray(t, np.float64), npc.shape)))

    def flush(self) -> None:
        staged, self._later = self._later, []
        if staged:
            self.set(*(np.concatenate(c) for c in zip(*staged)))

    def replace_npcs(self, npcs: np.ndarray, npc: np.ndarray, player: np.ndarray, t: np.ndarray) -> None:
        self.replace_keys(npcs, _keys(npc, player), t)

    def replace_keys(self, npcs: np.ndarray, k: np.ndarray, t: np.ndarray, unique_sorted: bool = False) -> None:
        """replace_npcs() by pair keys (unique_sorted: as PairTimes.set_keys; a phase's keys stay so). The
        pairs are of the NPCs `npcs`: when those are all of one phase (a tick's look), so are the pairs,
        which go to that phase's table as given (no phase of every key, no split)."""
        npcs, k, t = np.asarray(npcs, np.int64), np.asarray(k, np.int64), np.asarray(t, np.float64)
        phase = None
        for ph, sel in self._split(npcs):
            if isinstance(sel, slice):
                self.parts[ph].replace_keys(npcs, k, t, unique_sorted)
                continue
            if phase is None:
                phase = (k >> 32) % self.k
            mine = phase == ph
            self.parts[ph].replace_keys(npcs[sel], k[mine], t[mine], unique_sorted)

    def forget(self, eids) -> None:
        self.flush()
        for p in self.parts:
            p.forget(eids)

    def of_npc(self, eid: int) -> dict[int, float]:
        return self.parts[eid % self.k].of_npc(eid)


class PairKeys:
    """The keys of a look's (NPC, player) pairs, sorted once and split by think phase, for every read
    of the ledger's tables (`read`) and for writing the noticed sets back (`Ledger.notice`)."""

    def __init__(self, npc: np.ndarray, player: np.ndarray, phases: int):
        self.k = _keys(npc, player)
        self.order = np.argsort(self.k, kind="stable")
        self.sorted = self.k[self.order]
        phase = (self.sorted >> 32) % phases  # ids are >= 0: the NPC's think phase, as Phased._split
        # (phase, its pairs' places in `sorted`): a slice for one phase (views below, not gathers)
        if not len(phase):
            self.groups: list[tuple[int, np.ndarray | slice]] = []
        elif phase.min() == phase.max():  # a tick's due NPCs: mostly one phase
            self.groups = [(int(phase[0]), slice(None))]
        else:
            self.groups = [(ph, np.flatnonzero(phase == ph)) for ph in _present(phase, phases)]

    def __len__(self) -> int:
        return len(self.k)


def read(
    tables: list[Phased],
    npc: np.ndarray | PairKeys,
    player: np.ndarray | None,
    defaults: list[float],
    where: list[np.ndarray | None] | None = None,
) -> list[np.ndarray]:
    """[table.get(npc, player, default) for each table], the same pairs read from tables of the same
    phases: the keys are made, sorted and split by phase once (or given made: npc a PairKeys, player
    None). where[j] (M,) bool: table j is read only for those pairs (the others get its default).
    Sorted keys make each binary search cheap (numpy's searchsorted starts from the previous key's
    place): four tables of 10,000 pairs, 15,000 keys, 1.6 ms sorted (the sort included) against 7.2 ms
    unsorted, measured under load."""
    keys = npc if isinstance(npc, PairKeys) else PairKeys(npc, player, tables[0].k if tables else 1)  # type: ignore[arg-type]
    outs = [np.full(len(keys), d, np.float64) for d in defaults]
    if not len(keys) or not tables:
        return outs
    masks = [None if w is None else np.asarray(w, bool)[keys.order] for w in (where or [None] * len(tables))]
    for ph, at in keys.groups:
        kk, sel = keys.sorted[at], keys.order[at]
        for j, (out, t, d) in enumerate(zip(outs, tables, defaults)):
            part = t.parts[ph]
            if not len(part.keys):
                continue
            m = masks[j]
            if m is None:
                kj, sj = kk, sel
            else:
                mj = m[at]
                kj, sj = kk[mj], sel[mj]
            if not len(kj):
                continue
            i = np.searchsorted(part.keys, kj)  # >= 0: only the end needs bounding (np.clip costs ~2x)
            np.minimum(i, len(part.keys) - 1, out=i)
            out[sj] = np.where(part.keys[i] == kj, part.times[i], d)
    return outs


class Ledger:
    """Per (NPC, player): noticed (since when within notice), greeted, given, approached (when last)."""

    def __init__(self, phases: int = 1):
        self.noticed = Phased(phases)
        self.greeted = Phased(phases)
        self.given = Phased(phases)
        self.approached = Phased(phases)
        # this tick's new noticed sets, not yet written: (npcs, pair keys, since, keys sorted and distinct)
        self._noticed_now: list[tuple[np.ndarray, np.ndarray, np.ndarray, bool]] = []

    def notice(
        self, npcs: np.ndarray, npc: np.ndarray | PairKeys, player: np.ndarray | None, since: np.ndarray
    ) -> None:
        """The noticed sets of these NPCs (their pairs npc, player, or made: npc a PairKeys of distinct
        pairs, player None), written at `commit` (the end of the think step): one rewrite of the phase's
        table per tick instead of one per NPC file. Reads in between see the old sets, which hold the same
        `since` for every pair still within notice (new pairs read as "now" either way)."""
        since = np.asarray(since, np.float64)
        if isinstance(npc, PairKeys):  # the keys the look's read sorted: the write needs no sort of its own
            entry = (np.asarray(npcs, np.int64), npc.sorted, since[npc.order], True)
        else:
            entry = (np.asarray(npcs, np.int64), _keys(npc, np.asarray(player)), since, False)
        self._noticed_now.append(entry)

    def commit(self) -> None:
        """Write what this think staged: the noticed sets, and the greeted / given / approached times."""
        for p in (self.greeted, self.given, self.approached):
            p.flush()
        staged, self._noticed_now = self._noticed_now, []
        if len(staged) == 1:  # a tick's one look: its keys as sorted by its read
            self.noticed.replace_keys(*staged[0])
        elif staged:
            npcs, k, t, _ = zip(*staged)
            self.noticed.replace_keys(np.concatenate(npcs), np.concatenate(k), np.concatenate(t))

    def forget(self, eids) -> None:
        for p in (self.noticed, self.greeted, self.given, self.approached):
            p.forget(eids)
