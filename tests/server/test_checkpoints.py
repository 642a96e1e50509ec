"""The room's checkpoints (server/checkpoints.py) in process, on a real SQLite file: NPCs are
matched by their key across a restart, with the built-in behaviour's state of each NPC file's
NPC, and a checkpoint from another map is not resumed."""

from __future__ import annotations

import dataclasses

from support.maphelp import write_ascii_map
from support.npchelp import write
from support.storehelp import GERDA
from support.storehelp import GERDA_ROWS as ROWS
from server.app import build_room
from server.config import ServerConfig, flat
from server.events import Mailbox
from server.game import Game
from server.metrics import Metrics
from server.store import Store
from world.tilemap import load_map


def room(cfg: ServerConfig) -> Game:
    return build_room(cfg, load_map(cfg.world.map), Metrics(), Mailbox(), store=Store.open(cfg.store.path))


def test_npcs_and_their_minds_resume_by_key(tmp_path):
    folder = tmp_path / "npcs"
    folder.mkdir()
    write(folder / "gerda.toml", GERDA)
    m = write_ascii_map(tmp_path, ROWS, "small.tmj", {"s": "spawn"})
    cfg = flat(
        port=0,
        map=str(m),
        npc_dir=str(folder),
        npcs=3,
        decider="builtin",
        dialogue=False,
        memory_db="",
        store=str(tmp_path / "world.sqlite"),
    ).validate()
    a = room(cfg)
    for _ in range(30):
        a.tick()
    gerda = next(iter(a.cast.minds))
    row = a.cast.rows.row_of[gerda]
    a.cast.rows.gifts[row], a.cast.rows.patrol[row], a.cast.rows.tending[row] = 5, 2, 1
    where = {k: a.world.position(e) for e, k in a.checkpoints.npc_keys().items()}
    activity = a.world.intent(gerda).activity
    a.final_checkpoint()
    a.close()

    b = room(cfg)
    keys = b.checkpoints.npc_keys()
    assert sorted(keys.values()) == sorted(where) == ["gerda#1", "wanderer#1", "wanderer#2", "wanderer#3"]
    assert {k: b.world.position(e) for e, k in keys.items()} == where
    g = next(iter(b.cast.minds))
    r = b.cast.rows.row_of[g]
    assert (b.cast.rows.gifts[r], b.cast.rows.patrol[r], b.cast.rows.tending[r]) == (5, 2, 1)
    assert b.world.intent(g).activity == activity and b.world.tick == a.world.tick
    b.close()

    # Another map (Gerda's place 'a' moved to where 'b' was): the world starts afresh.
    moved = [r.replace("a", ".") for r in ROWS]
    other = write_ascii_map(tmp_path, moved, "other.tmj", {"s": "spawn", "b": "a"})
    c = room(dataclasses.replace(cfg, world=dataclasses.replace(cfg.world, map=str(other))))
    assert c.world.tick == 0
    c.close()
