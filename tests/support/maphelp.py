"""Small Tiled maps for tests, drawn as ASCII rows."""

from __future__ import annotations

import json
from pathlib import Path


def write_ascii_map(folder: Path, rows: list[str], name: str, poi_names: dict[str, str] | None = None) -> Path:
    """Write a .tmj from rows: '#' wall, '.' floor, a letter = floor with a POI of that
    name (or of `poi_names[letter]`). Tiles are 32 world units."""
    poi_names = poi_names or {}
    h, w = len(rows), len(rows[0])
    walls, objects = [], []
    for r, row in enumerate(rows):
        for c, ch in enumerate(row):
            walls.append(2 if ch == "#" else 0)
            if ch.isalpha():
                objects.append(
                    {"id": len(objects) + 1, "name": poi_names.get(ch, ch), "x": (c + 0.5) * 32, "y": (r + 0.5) * 32}
                )
    raw = {
        "orientation": "orthogonal",
        "width": w,
        "height": h,
        "tilewidth": 32,
        "tileheight": 32,
        "layers": [
            {"type": "tilelayer", "name": "ground", "data": [1] * (w * h)},
            {"type": "tilelayer", "name": "walls", "data": walls},
            {"type": "objectgroup", "name": "poi", "objects": objects},
        ],
        "tilesets": [{"firstgid": 1, "tiles": []}],
    }
    path = Path(folder) / name
    path.write_text(json.dumps(raw))
    return path
