"""`--spawn`: where new players appear, on a real server with real clients."""

from __future__ import annotations

import math

from support.wsclient import Player
from world.tilemap import load_map

from server.config import DEFAULT_MAP


async def positions_of_new_players(url: str, n: int) -> list[tuple[float, float]]:
    players = [await Player.join(url, f"p{i}") for i in range(n)]
    try:
        for p in players:
            await p.until(lambda p, m: p.id in p.positions, what="its own position")
        return [p.me() for p in players]
    finally:
        for p in players:
            await p.close()


async def test_random_spawn_spreads_players_over_free_tiles(launch):
    tilemap = load_map(DEFAULT_MAP)
    sx, sy = tilemap.pois["spawn"]
    near_spawn = 4.5 * tilemap.tile_size * math.sqrt(2)  # the spawn spots lie within 3 tiles of it

    spread = await positions_of_new_players(launch("--spawn", "random", "--npcs", "0", "--npc-dir", "").ws_url, 8)
    for x, y in spread:  # every one on a free tile
        assert not tilemap.blocked[int(y // tilemap.tile_size), int(x // tilemap.tile_size)], (x, y)
    far = [(x, y) for x, y in spread if math.hypot(x - sx, y - sy) > near_spawn]
    assert len(far) >= 6, f"random spawns should land all over the map, got {spread}"
    assert len({(round(x), round(y)) for x, y in spread}) == 8
    # players far apart: some pairs see different cells (not everyone in one view)
    width, _ = tilemap.world_size
    assert max(math.dist(a, b) for a in spread for b in spread) > width / 4
    # (the default, near the spawn point, is what every other server test plays in)
