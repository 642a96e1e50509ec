"""The entity table: one slot per live entity, state as numpy columns.

Invariants:
- an entity id is an int >= 1, handed out in increasing order and never
  reused by the same table (it must fit the wire's uint32);
- a slot is reused after its entity is removed (lowest free slot first, so
  the layout is deterministic); every column is indexed by slot;
- slots in use are all < `n` (the high-water mark); `alive[s]` says whether
  slot s holds an entity.
"""

from __future__ import annotations

import heapq

import msgpack
import numpy as np

PLAYER = 0
NPC = 1
MAX_ID = 2**32 - 1   # ids travel as uint32


class EntityTable:
    """Columns of per-slot state, grown by doubling; other systems add their own columns."""

    def __init__(self, max_entities: int, initial_capacity: int = 256):
        self.max_entities = max_entities
        self.capacity = max(1, min(initial_capacity, max_entities))
        self.n = 0                        # high-water mark of slots ever used
        self.count = 0                    # live entities
        self.next_id = 1
        self.slot_of: dict[int, int] = {}  # entity id -> slot
        self._free: list[int] = []         # heap of free slots below n
        self._cols: dict[str, tuple[object, tuple, object]] = {}
        self._active: np.ndarray | None = None
        self.column("id", np.int64)
        self.column("alive", np.bool_)
        self.column("kind", np.int8)
        self.column("pos", np.float64, 2)     # world units, centre of the circle
        self.column("dir", np.float64, 2)     # held direction, |dir| <= 1 (players)
        self.column("prev_cell", np.int32, fill=-1)  # interest: cell at last build_views
        self.name: list[str | None] = [None] * self.capacity
        self.color: list[str | None] = [None] * self.capacity
        # msgpack [id, kind, name, color, talks]: talks = an NPC that answers a player's `talk`
        self.record: list[bytes | None] = [None] * self.capacity

    def column(self, name: str, dtype, width: int | None = None, fill=0) -> None:
        """Add a per-slot column `self.<name>` (shape (capacity,) or (capacity, width))."""
        shape = () if width is None else (width,)
        self._cols[name] = (dtype, shape, fill)
        setattr(self, name, np.full((self.capacity, *shape), fill, dtype=dtype))

    def _grow(self) -> None:
        new = min(self.capacity * 2, self.max_entities)
        for name, (dtype, shape, fill) in self._cols.items():
            old = getattr(self, name)
            arr = np.full((new, *shape), fill, dtype=dtype)
            arr[: self.capacity] = old
            setattr(self, name, arr)
        extra = [None] * (new - self.capacity)
        self.name += extra
        self.color += extra
        self.record += extra
        self.capacity = new

    def add(self, kind: int, name: str, color: str, x: float, y: float, talks: bool = False) -> tuple[int, int]:
        """Create an entity; return (id, slot). ValueError when the table is full."""
        if self.count >= self.max_entities:
            raise ValueError(f"world full: {self.count} entities (max_entities={self.max_entities})")
        if self.next_id > MAX_ID:
            raise ValueError("entity ids exhausted (ids are uint32 and never reused)")
        if self._free:
            slot = heapq.heappop(self._free)
        else:
            if self.n == self.capacity:
                self._grow()
            slot = self.n
            self.n += 1
        eid = self.next_id
        self.next_id += 1
        self.slot_of[eid] = slot
        self.count += 1
        for cname, (_dtype, _shape, fill) in self._cols.items():
            getattr(self, cname)[slot] = fill
        self.id[slot] = eid
        self.alive[slot] = True
        self.kind[slot] = kind
        self.pos[slot] = (x, y)
        self.name[slot] = name
        self.color[slot] = color
        self.record[slot] = msgpack.packb([eid, kind, name, color, bool(talks)])
        self._active = None
        return eid, slot

    def remove(self, eid: int) -> int:
        """Remove an entity; return the slot it had. KeyError if unknown."""
        slot = self.slot_of.pop(eid)
        self.alive[slot] = False
        self.id[slot] = 0
        self.name[slot] = self.color[slot] = self.record[slot] = None
        self.count -= 1
        heapq.heappush(self._free, slot)
        self._active = None
        return slot

    def slot(self, eid: int) -> int:
        """The slot of a live entity; KeyError naming the id if unknown."""
        try:
            return self.slot_of[eid]
        except KeyError:
            raise KeyError(f"no entity with id {eid}") from None

    def active(self) -> np.ndarray:
        """Slots of live entities, ascending (cached until the next add/remove)."""
        if self._active is None:
            self._active = np.flatnonzero(self.alive[: self.n])
        return self._active
