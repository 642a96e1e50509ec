"""Helpers for the NPC tests: small maps, NPC files, admin HTTP calls."""

from __future__ import annotations

import json
import math
import re
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

from .maphelp import write_ascii_map
from world.tilemap import load_map
from .paths import DEFAULT_MAP

ADMIN = re.compile(r"npcworld admin (http://[\d.]+:\d+/) token=(\S+)")

# 16 x 16 tiles (512 x 512 world units): with 256-unit cells and a view
# radius of 1, a player anywhere sees the whole map.
SMALL = [
    "################",
    "#..............#",
    "#..............#",
    "#..a...........#",
    "#..............#",
    "#..............#",
    "#..............#",
    "#.......s......#",
    "#..............#",
    "#..............#",
    "#..............#",
    "#..............#",
    "#...........b..#",
    "#..............#",
    "#..............#",
    "################",
]
B = (12.5 * 32, 12.5 * 32)  # the 'b' POI of the small map, world units


def near_b(pos) -> bool:
    """At b: NPCs stop at a spot up to 3 tiles from a POI (poi_spread), so within 160 world units
    (a is 400 away)."""
    return pos is not None and math.hypot(pos[0] - B[0], pos[1] - B[1]) < 160


def small_map(
    folder: Path, rows: list[str] = SMALL, name: str = "small.tmj", pois: dict[str, str] | None = None
) -> Path:
    """A map from ASCII rows: '#' wall, '.' floor, a letter a POI ('s' is the 'spawn' POI; another letter
    a POI of that name, or of pois[letter])."""
    return write_ascii_map(folder, rows, name, {"s": "spawn", **(pois or {})})


def write(path: Path, text: str) -> Path:
    """Write a dedented file (the first line of `text` is line 1)."""
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def admin_of(srv) -> tuple[str, str]:
    """(admin base URL, token) from a running server's output."""
    for line in srv.output:
        m = ADMIN.search(line)
        if m:
            return m.group(1), m.group(2)
    raise AssertionError("no admin line in:\n" + "\n".join(srv.output))


def call(url: str, method: str = "GET", token: str | None = None, body: dict | bytes | None = None) -> tuple[int, dict]:
    """One HTTP request; (status, JSON body). Never raises for an HTTP status."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    req = urllib.request.Request(url, data=data, method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def places_of(map_path: Path = DEFAULT_MAP):
    from npc.files.loader import map_places

    return map_places(load_map(map_path))


# A merchant who may only idle and talk, at the 'spawn' point: the NPC of the dialogue tests.
TAM = """
    id = "tam"
    name = "Old Tam"
    spawn = "spawn"
    [persona]
    who = "A travelling merchant who settled at the market."
    style = "chatty, friendly"
    thinking = "Let me see..."
    fallback = ["Everything's for sale, {player}."]
    [actions]
    allowed = ["idle", "talk"]
    [actions.talk]
    reply = false
"""
