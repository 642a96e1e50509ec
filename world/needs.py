"""Named stats per entity (energy, hunger, ...): levels 0..100 that change at
per-game-hour rates, integrated by the world every step.

Names are registered on first use and shared by all entities (column k of
the `stats` array is the same name for everyone); an entity has a stat only
once it was set (`stat_has`). The width of the arrays grows by doubling as
names are added, so there is no fixed limit other than memory: each name
costs 17 bytes per entity slot (two float64 and a bool).
"""

from __future__ import annotations

import numpy as np

from .entities import EntityTable

LOW, HIGH = 0.0, 100.0  # every stat is clamped to this range


class Stats:
    def __init__(self, table: EntityTable, width: int = 4):
        self.table = table
        self.names: list[str] = []
        self.index: dict[str, int] = {}
        self.width = 0
        self._widen(width)

    def _widen(self, width: int) -> None:
        t = self.table
        old = [getattr(t, c, None) for c in ("stats", "stat_rate", "stat_has")]
        t.column("stats", np.float64, width)
        t.column("stat_rate", np.float64, width)  # per game hour
        t.column("stat_has", np.bool_, width)
        for name, arr in zip(("stats", "stat_rate", "stat_has"), old):
            if arr is not None:
                getattr(t, name)[:, : self.width] = arr
        self.width = width

    def column_of(self, name: str) -> int:
        k = self.index.get(name)
        if k is None:
            k = self.index[name] = len(self.names)
            self.names.append(name)
            if k >= self.width:
                self._widen(self.width * 2)
        return k

    def set_values(self, slot: int, values: dict[str, float]) -> None:
        t = self.table
        for name, v in values.items():
            k = self.column_of(name)
            t.stats[slot, k] = min(max(float(v), LOW), HIGH)
            t.stat_has[slot, k] = True

    def set_rates(self, slot: int, rates: dict[str, float]) -> None:
        """Rates per game hour; stats not named keep their rate."""
        t = self.table
        for name, r in rates.items():
            k = self.column_of(name)
            t.stat_rate[slot, k] = float(r)
            t.stat_has[slot, k] = True

    def set_rates_many(self, slots: np.ndarray, names: tuple[str, ...], rates: np.ndarray) -> None:
        """rates (n, len(names)) per game hour for many slots at once."""
        t = self.table
        for k, name in enumerate(names):
            c = self.column_of(name)
            t.stat_rate[slots, c] = rates[:, k]
            t.stat_has[slots, c] = True

    def of(self, slot: int) -> dict[str, float]:
        t = self.table
        return {n: float(t.stats[slot, k]) for k, n in enumerate(self.names) if t.stat_has[slot, k]}

    def rates_of(self, slot: int) -> dict[str, float]:
        """Its stats' rates of change, per game hour (only the stats it has)."""
        t = self.table
        return {n: float(t.stat_rate[slot, k]) for k, n in enumerate(self.names) if t.stat_has[slot, k]}

    def step(self, slots: np.ndarray, hours: float) -> None:
        """Advance the stats of `slots` (ascending) by `hours` game hours (a no-op before any stat exists).
        Slots that are one run (NPCs spawned together, the usual case) are advanced in place, without
        the gather and scatter (the same arithmetic, so the same values)."""
        if not self.names or hours <= 0 or len(slots) == 0:
            return
        t = self.table
        n = len(self.names)
        lo, hi = int(slots[0]), int(slots[-1]) + 1
        if hi - lo == len(slots):
            s = t.stats[lo:hi, :n]
            s += t.stat_rate[lo:hi, :n] * hours
        else:
            s = t.stats[slots, :n] + t.stat_rate[slots, :n] * hours
        np.minimum(s, HIGH, out=s)  # (np.clip costs twice these two)
        np.maximum(s, LOW, out=s)
        if hi - lo != len(slots):
            t.stats[slots, :n] = s
