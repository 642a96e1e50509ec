"""`npcworld npc new NAME` and `npcworld npc places`: start an NPC file, list where NPCs can go.

`new` writes a commented template that passes `npcworld npc check` (tested):
every section a designer usually needs, with the defaults written out and
what each line means; it never overwrites a file.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from world.tilemap import MapError, load_map, places_path

from npc.files.loader import map_places

TEMPLATE = """# {id}.toml: an NPC of npcworld. The reference of every field: docs/designers.md.
# Check it with `npcworld npc check {id}.toml`; save it while the server runs and it is live.

name = "{name}"            # what players see (1..24 characters)
# color = "#c08040"        # default: a colour from the id
spawn = "{spawn}"          # a place (npcworld npc places lists them), or [x, y] in world units
# count = 1                # an archetype: this many NPCs from one file ({{n}} in name: their number)
# speed = 60               # world units per second when walking (players run at 160)
# hooks = "{id}.py"        # Python hooks beside this file (docs/designers.md, "Hooks")

[persona]                  # for dialogue: the model answers in this voice
who = "Who {name} is, in a sentence or two."
style = "how they speak"
greeting = "Hello, {{player}}."                    # said to a player who comes near
fallback = ["Not now, {{player}}.", "Hm."]       # said in turn when there is no model

[actions]
allowed = ["idle", "wander", "talk"]           # everything it may ever do

# A need: a level 0..100 that changes per game hour and sends it to rest when low.
# [needs.energy]
# start = 80
# rate = -2
# low = 25
# full = 70
# relief = "rest"          # add "rest" to allowed
# at = "{spawn}"

# A day in blocks ("HH:MM"; the game starts at 08:00, a game minute per real second by default).
# [[schedule]]
# from = "08:00"
# to = "18:00"
# do = "wander"
"""
ID_OK = re.compile(r"[^a-z0-9_-]+")


def file_id(name: str) -> str:
    """The file id (and file name) of an NPC name: lowercase, '_' between words, at most 40 characters."""
    return ID_OK.sub("_", name.strip().lower()).strip("_-")[:40] or "npc"


def new(name: str, folder: Path, spawn: str, out=None) -> int:
    out = out or sys.stdout
    if not 1 <= len(name.strip()) <= 24 or '"' in name or "\\" in name:
        print(
            f"npcworld npc new: a name is 1..24 characters without quotes or backslashes, got {name!r}", file=sys.stderr
        )
        return 2
    fid = file_id(name)
    path = folder / f"{fid}.toml"
    if path.exists():
        print(f"npcworld npc new: {path} exists; not overwritten", file=sys.stderr)
        return 1
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(TEMPLATE.format(id=fid, name=name.strip(), spawn=spawn), encoding="utf-8")
    print(f"wrote {path}; check it with: npcworld npc check {path}", file=out)
    return 0


def places(map_path: str, out=None) -> int:
    out = out or sys.stdout
    try:
        tm = load_map(map_path)
    except MapError as e:
        print(f"npcworld npc places: {e}", file=sys.stderr)
        return 2
    walk, spawn_points = map_places(tm)
    extra = places_path(map_path)
    for name in spawn_points:
        x, y = tm.pois[name]
        note = "" if name in walk else "  (spawn only: NPCs can start here but not walk to it)"
        print(
            f"{name:<16} x={x:7.1f} y={y:7.1f}  tile=[{int(x // tm.tile_size)}, {int(y // tm.tile_size)}]{note}",
            file=out,
        )
    print(
        f"{len(spawn_points)} places in {map_path}"
        + (f" and {extra}" if extra.exists() else f" (add more in {extra.name} beside it)"),
        file=out,
    )
    return 0
