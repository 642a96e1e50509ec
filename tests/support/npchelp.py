"""Helpers for the NPC tests: small maps, NPC files, admin HTTP calls."""

from __future__ import annotations

import asyncio
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
B = (12.5 * 32, 12.5 * 32)     # the 'b' POI of the small map, world units


def near_b(pos) -> bool:
    """At b: NPCs stop at a spot up to 3 tiles from a POI (poi_spread), so within 160 world units
    (a is 400 away)."""
    return pos is not None and math.hypot(pos[0] - B[0], pos[1] - B[1]) < 160


def small_map(folder: Path, rows: list[str] = SMALL, name: str = "small.tmj") -> Path:
    """A map from ASCII rows: '#' wall, '.' floor, a letter a POI ('s' is the 'spawn' POI)."""
    return write_ascii_map(folder, rows, name, {"s": "spawn"})


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


async def admin(url: str, path: str, token: str | None, method: str = "GET", body=None):
    """`call` from a test's event loop (in a thread): (status, body)."""
    return await asyncio.to_thread(call, url + path.lstrip("/"), method, token, body)


async def wait_admin(p, url: str, token: str, path: str, pred, timeout: float = 20, what: str = ""):
    """Poll an admin endpoint until pred(body); between polls, read a few updates (no sleeping)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        status, body = await admin(url, path, token)
        assert status == 200, body
        if pred(body):
            return body
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what or path}: {body}")
        for _ in range(4):
            await p.recv()


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

# The map and the NPC of the restart and checkpoint tests (tests/e2e/test_store_restart.py,
# tests/server/test_checkpoints.py): a 16 x 16 room with POIs a, b, c and a spawn.
GERDA_ROWS = ["################",
              "#..............#",
              "#..............#",
              "#..b...........#",
              "#..............#",
              "#..............#",
              "#..............#",
              "#.......s.a....#",
              "#..............#",
              "#..............#",
              "#..............#",
              "#..............#",
              "#...........c..#",
              "#..............#",
              "#..............#",
              "################"]

# Gerda stands near 'a' and gives every player she notices (anywhere on this small map) an item, once.
GERDA = """
    id = "gerda"
    name = "Gerda"
    color = "#aa5500"
    spawn = "a"

    [[schedule]]
    from = "00:00"
    to = "24:00"
    do = "idle"
    at = "a"
    activity = "knitting"

    [actions]
    allowed = ["idle", "talk", "give_item", "wander"]

    [actions.give_item]
    items = ["apple", "pear"]
    line = "Take this {item}, {player}."
    distance = 800
    cooldown = 600

    [senses]
    notice = 800

    [weights]
    give_item = 9
"""
