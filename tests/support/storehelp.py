"""The map and the NPC of the restart and checkpoint tests (tests/e2e/test_store_restart.py,
tests/server/test_checkpoints.py)."""

from __future__ import annotations

# a 16 x 16 room with POIs a, b, c and a spawn
GERDA_ROWS = [
    "################",
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
    "################",
]

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
