"""Generate assets/maps/default.tmj and assets/maps/tiles.png, deterministically.

The map: 64 x 64 tiles of 32 world units (2048 x 2048 units), a border wall,
a 3 x 3 grid of rooms joined by corridors through doorways, a few pieces of
furniture (stalls, shelves, hedges) for NPCs to walk around, one named point
of interest per room plus `spawn` in the plaza. Every free tile is reachable
from every other (checked by BFS before writing).

Usage: python scripts/make_default_map.py [--out assets/maps]
"""

from __future__ import annotations

import argparse
import json
import random
import struct
import zlib
from collections import deque
from pathlib import Path

W = H = 64  # tiles
TS = 32  # world units per tile
FLOOR, WALL, GRASS = 1, 2, 3  # gids (firstgid 1): tileset ids 0, 1, 2
SEED = 1

# name of each room's POI, row by row (3 x 3 grid)
ROOMS = [["forge", "market", "tavern"], ["library", "plaza", "garden"], ["barracks", "well", "chapel"]]


def build() -> tuple[list[list[int]], list[list[int]], dict[str, tuple[int, int]]]:
    """(ground gids, wall gids, POI tiles) as [row][col] grids."""
    rng = random.Random(SEED)
    wall = [[1] * W for _ in range(H)]
    ground = [[FLOOR] * W for _ in range(H)]

    def carve(x0, y0, x1, y1):  # half-open tile rectangle
        for y in range(y0, y1):
            for x in range(x0, x1):
                wall[y][x] = 0

    # Room slots: 18 tiles wide, separated by 3-tile walls, 2-tile border.
    slots = [2, 23, 44]
    rooms = {}  # (row, col) -> (x0, y0, x1, y1)
    for r, y in enumerate(slots):
        for c, x in enumerate(slots):
            # shrink some rooms a little so the layout is not a perfect grid
            dx0, dy0 = rng.randint(0, 2), rng.randint(0, 2)
            dx1, dy1 = rng.randint(0, 2), rng.randint(0, 2)
            rooms[r, c] = (x + dx0, y + dy0, x + 18 - dx1, y + 18 - dy1)
            carve(*rooms[r, c])

    # Corridors (3 tiles wide) between neighbouring rooms; two links left out
    # so that some trips go the long way round.
    skip = {((0, 0), (1, 0)), ((1, 2), (2, 2))}
    for (r, c), (x0, y0, x1, y1) in rooms.items():
        if c + 1 < 3 and ((r, c), (r, c + 1)) not in skip:
            nx0, ny0, nx1, ny1 = rooms[r, c + 1]
            lo, hi = max(y0, ny0) + 2, min(y1, ny1) - 5
            cy = rng.randint(lo, hi)
            carve(x1, cy, nx0, cy + 3)
        if r + 1 < 3 and ((r, c), (r + 1, c)) not in skip:
            nx0, ny0, nx1, ny1 = rooms[r + 1, c]
            lo, hi = max(x0, nx0) + 2, min(x1, nx1) - 5
            cx = rng.randint(lo, hi)
            carve(cx, y1, cx + 3, ny0)

    pois = {}
    for (r, c), (x0, y0, x1, y1) in rooms.items():
        pois[ROOMS[r][c]] = ((x0 + x1) // 2, (y0 + y1) // 2)

    # Furniture, kept at least 4 tiles from each room's centre (its POI).
    def furniture(room, cells):
        x0, y0, _, _ = rooms[room]
        for dx, dy in cells:
            wall[y0 + dy][x0 + dx] = 1

    furniture((0, 1), [(x, y) for y in (3, 12) for x in range(3, 13, 3)])  # market stalls
    furniture((1, 0), [(2, y) for y in range(2, 14)] + [(13, y) for y in range(3, 13)])  # shelves
    furniture((0, 0), [(2, 2), (3, 2), (2, 3), (3, 3)])  # the anvil block
    gx0, gy0, gx1, gy1 = rooms[1, 2]
    for y in range(gy0, gy1):
        for x in range(gx0, gx1):
            ground[y][x] = GRASS
    furniture((1, 2), [(x, 2) for x in range(2, 6)] + [(x, 12) for x in range(8, 13)])  # hedges

    # The plaza's spawn point: 4 tiles south of its centre.
    px, py = pois["plaza"]
    pois["spawn"] = (px, py + 4)
    for name, (x, y) in pois.items():
        assert wall[y][x] == 0, f"POI {name} on a wall"
    return ground, wall, pois


def check_connected(wall: list[list[int]]) -> int:
    """BFS over free tiles (4-neighbour); assert one component; return its size."""
    free = [(x, y) for y in range(H) for x in range(W) if not wall[y][x]]
    start = free[0]
    seen = {start}
    q = deque([start])
    while q:
        x, y = q.popleft()
        for nx, ny in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
            if 0 <= nx < W and 0 <= ny < H and not wall[ny][nx] and (nx, ny) not in seen:
                seen.add((nx, ny))
                q.append((nx, ny))
    assert len(seen) == len(free), f"free space not connected: {len(seen)} of {len(free)} reachable"
    for y in range(H):
        assert wall[y][0] and wall[y][W - 1]
    for x in range(W):
        assert wall[0][x] and wall[H - 1][x]
    return len(free)


def tmj(ground, wall, pois) -> dict:
    def layer(lid, name, grid):
        return {
            "data": [v for row in grid for v in row],
            "height": H,
            "width": W,
            "id": lid,
            "name": name,
            "opacity": 1,
            "type": "tilelayer",
            "visible": True,
            "x": 0,
            "y": 0,
        }

    objects = [
        {
            "id": i + 1,
            "name": name,
            "type": "",
            "point": True,
            "x": (x + 0.5) * TS,
            "y": (y + 0.5) * TS,
            "width": 0,
            "height": 0,
            "rotation": 0,
            "visible": True,
        }
        for i, (name, (x, y)) in enumerate(pois.items())
    ]
    return {
        "compressionlevel": -1,
        "height": H,
        "width": W,
        "infinite": False,
        "layers": [
            layer(1, "ground", ground),
            layer(2, "walls", [[WALL if v else 0 for v in row] for row in wall]),
            {
                "draworder": "topdown",
                "id": 3,
                "name": "poi",
                "objects": objects,
                "opacity": 1,
                "type": "objectgroup",
                "visible": True,
                "x": 0,
                "y": 0,
            },
        ],
        "nextlayerid": 4,
        "nextobjectid": len(objects) + 1,
        "orientation": "orthogonal",
        "renderorder": "right-down",
        "tiledversion": "1.10.2",
        "tileheight": TS,
        "tilewidth": TS,
        "type": "map",
        "version": "1.10",
        "tilesets": [
            {
                "columns": 3,
                "firstgid": 1,
                "image": "tiles.png",
                "imageheight": TS,
                "imagewidth": 3 * TS,
                "margin": 0,
                "name": "tiles",
                "spacing": 0,
                "tilecount": 3,
                "tileheight": TS,
                "tilewidth": TS,
                "tiles": [
                    {"id": 0, "type": "floor"},
                    {"id": 1, "type": "wall", "properties": [{"name": "blocked", "type": "bool", "value": True}]},
                    {"id": 2, "type": "grass"},
                ],
            }
        ],
    }


def tiles_png() -> bytes:
    """A 96 x 32 RGB PNG: floor, wall, grass tiles side by side (pure zlib+struct)."""

    def pixel(tile, x, y):
        if tile == 0:  # floor: warm stone with a faint grid
            edge = x == 0 or y == 0
            return (150, 140, 120) if edge else (188, 176, 152)
        if tile == 1:  # wall: dark bricks
            mortar = y % 8 == 0 or (x + (8 if (y // 8) % 2 else 0)) % 16 == 0
            return (60, 55, 55) if mortar else (104, 84, 78)
        return (88, 150, 72) if (x * 7 + y * 13) % 11 else (70, 128, 60)  # grass

    rows = []
    for y in range(TS):
        row = bytearray([0])  # filter type 0
        for x in range(3 * TS):
            row.extend(pixel(x // TS, x % TS, y))
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 3 * TS, TS, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "assets" / "maps"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ground, wall, pois = build()
    n_free = check_connected(wall)
    (out / "default.tmj").write_text(json.dumps(tmj(ground, wall, pois), separators=(",", ":")) + "\n")
    (out / "tiles.png").write_bytes(tiles_png())
    print(f"wrote {out / 'default.tmj'} ({W}x{H} tiles, {n_free} free, {len(pois)} POIs) and {out / 'tiles.png'}")


if __name__ == "__main__":
    main()
