"""The room's checkpoints: when to take one, who is who in it, and resuming the world from one.

Every `every` ticks the tick copies the world's columns (world/checkpoint.py, no serialisation)
and hands them, with who is who, to the store's writer thread (server/store/writer.py); the tick
never waits on the disk. Who is who: an NPC is named by a key that means the same NPC after a
restart ("wanderer#3", "<file id>#<instance>"), a player by its account id. Those maps are built
only when the world's roster changed (0.15 ms for 3,000 entities), and never mutated afterwards
(the writer reads them from its thread).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Callable

from world import checkpoint as world_checkpoint
from world.sim import World

from .store import Offer, Saved, Store

log = logging.getLogger("npcworld.game")

MIND_COLUMNS = ("eid", "tending", "patrol", "gifts")  # of npc/minds/state.py Rows kept in a checkpoint


def map_id(raw: dict) -> str:
    """A short digest of the map: a checkpoint from another map is not resumed."""
    return hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()[:16]


class Checkpoints:
    def __init__(
        self,
        store: Store,
        world: World,
        cast,
        players: dict,
        wanderers: dict[int, str],
        map_raw: dict,
        every: int,
        wall: Callable[[], float],
    ):
        self.store, self.world, self.cast, self.players, self.wanderers = store, world, cast, players, wanderers
        self.map_id = map_id(map_raw)
        self.every = every  # ticks between checkpoints
        self.wall = wall  # Unix seconds
        self._identities: tuple | None = None  # (roster, NPC keys, accounts) of the last checkpoint

    def due(self, tick: int) -> bool:
        return tick % self.every == 0

    def take(self) -> None:
        """Copy what a checkpoint needs and hand it to the store's writer (the copy's time is counted)."""
        t0 = time.perf_counter()
        frame = world_checkpoint.copy(self.world)
        roster = world_checkpoint.roster(self.world)
        if self._identities is None or self._identities[0] != roster:
            self._identities = (roster, self.npc_keys(), {e: p.account.id for e, p in self.players.items()})
        _, keys, accounts = self._identities
        offer = Offer(frame, keys, accounts, self.map_id, self.wall(), self._minds())
        self.store.writer.copy_s.observe(time.perf_counter() - t0)
        self.store.writer.offer(offer)

    def _minds(self) -> dict:
        """The built-in behaviour's state of each NPC of a file (npc/minds/state.py Rows), copies: the
        needs it is tending, its patrol stop, how many items it gave (which one is next)."""
        rows = self.cast.rows
        live = rows.live()
        return {f"mind_{c}": getattr(rows, c)[live] for c in MIND_COLUMNS}

    def npc_keys(self) -> dict[int, str]:
        """Entity id -> a key that names the same NPC after a restart."""
        keys = dict(self.wanderers)
        keys.update((m.eid, f"{m.defn.id}#{m.n}") for m in self.cast.minds.values())
        return keys

    def resume(self, saved: Saved) -> int:
        """At start: the NPCs as the last checkpoint left them (those whose key is in the world now),
        at its tick and game time. Returns how many were resumed."""
        if saved.map_id != self.map_id:
            log.warning(
                "the last checkpoint was taken on another map: the world starts afresh (players keep their accounts)"
            )
            return 0
        live = {k: e for e, k in self.npc_keys().items()}
        ids = {old: live[k] for old, k in zip(saved.frame.eid.tolist(), saved.keys.tolist()) if k in live}
        n = world_checkpoint.restore(self.world, saved.frame, ids)
        self._resume_minds(saved.extra, ids)
        self.cast.urgent.difference_update(ids.values())  # doing what they did: they re-think in their turn
        gt = self.world.game_time
        log.info(
            "resumed %d NPCs from the checkpoint of tick %d (day %d %s), written %.1f s ago",
            n,
            saved.frame.tick,
            gt.day,
            gt.clock,
            self.wall() - saved.written_at,
        )
        return n

    def _resume_minds(self, extra: dict, ids: dict[int, int]) -> None:
        rows = self.cast.rows
        if not all(f"mind_{c}" in extra for c in MIND_COLUMNS):
            return  # a checkpoint without them: the minds start afresh
        for i, old in enumerate(extra["mind_eid"].tolist()):
            r = rows.row_of.get(ids.get(old, -1))
            if r is not None:
                for c in MIND_COLUMNS[1:]:
                    getattr(rows, c)[r] = extra[f"mind_{c}"][i]
