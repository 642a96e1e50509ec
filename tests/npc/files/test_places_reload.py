"""The places file's live reload (npc/files/reload.Watcher): a place added beside a map whose only
place is 'spawn' cannot be taken live (the world's places would no longer start with the old ones:
'spawn' stops being a place once another exists). The watcher says so in the reload log and the log,
the world goes on with its places, and nothing raises."""

from __future__ import annotations

import asyncio
from pathlib import Path

from npc.files.reload import Watcher
from npc.minds.cast import Cast
from support.npchelp import small_map, write
from world.sim import World, WorldConfig
from world.tilemap import load_map, places_path


def test_a_place_added_to_a_spawn_only_map_is_refused_in_the_reload_log(tmp_path: Path):
    path = small_map(tmp_path, ["######", "#....#", "#.s..#", "######"])
    world = World(load_map(str(path)), WorldConfig())
    assert world.places == ["spawn"]
    npcs = tmp_path / "npcs"
    npcs.mkdir()
    cast = Cast(world, str(npcs))
    watcher = Watcher(cast)
    write(places_path(path), "[pier]\ntile = [2, 1]\n")
    assert asyncio.run(watcher._places()) == []
    assert world.places == ["spawn"]
    last = list(cast.journal.entries)[-1]
    assert (last.kind, last.file) == ("error", watcher.places_file)
    assert "places differ" in last.message and "restart" in last.message
