"""Loading Tiled maps: blocked tiles, POIs, and clear errors for bad files."""

import json
from collections import deque

import numpy as np
import pytest

from world.tilemap import MapError, load_map
from support.paths import ROOT

DEFAULT = ROOT / "assets" / "maps" / "default.tmj"


def small_map(w=4, h=3, walls=None, ground=None, tiles=None, **extra):
    """A minimal valid .tmj dict: `ground` of gid 1 and optional `walls`."""
    layers = [
        {
            "type": "tilelayer",
            "name": "ground",
            "width": w,
            "height": h,
            "data": ground if ground is not None else [1] * (w * h),
        }
    ]
    if walls is not None:
        layers.append({"type": "tilelayer", "name": "walls", "width": w, "height": h, "data": walls})
    layers.append(
        {
            "type": "objectgroup",
            "name": "poi",
            "objects": [
                {"id": 1, "name": "here", "x": 16, "y": 16, "point": True},
                {"id": 2, "name": "", "x": 1, "y": 1},
            ],
        }
    )
    raw = {
        "orientation": "orthogonal",
        "width": w,
        "height": h,
        "tilewidth": 32,
        "tileheight": 32,
        "infinite": False,
        "layers": layers,
        "tilesets": [{"firstgid": 1, "name": "t", "tilecount": 3, "tiles": tiles if tiles is not None else []}],
    }
    raw.update(extra)
    return raw


def write(tmp_path, raw, name="m.tmj"):
    p = tmp_path / name
    p.write_text(raw if isinstance(raw, str) else json.dumps(raw))
    return p


def test_default_map_loads():
    m = load_map(DEFAULT)
    assert (m.width, m.height, m.tile_size) == (64, 64, 32)
    assert m.world_size == (2048, 2048)
    assert m.blocked.shape == (64, 64) and m.blocked.dtype == bool
    assert m.blocked[0].all() and m.blocked[-1].all() and m.blocked[:, 0].all() and m.blocked[:, -1].all()
    for name in ("plaza", "forge", "market", "tavern", "library", "garden", "barracks", "well", "spawn"):
        x, y = m.pois[name]
        assert not m.blocked[int(y // 32), int(x // 32)], name
    assert m.raw["layers"][0]["name"] == "ground"
    # all free space is one connected region
    free = ~m.blocked
    start = tuple(np.argwhere(free)[0])
    seen, q = {start}, deque([start])
    while q:
        r, c = q.popleft()
        for n in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
            if free[n] and n not in seen:
                seen.add(n)
                q.append(n)
    assert len(seen) == free.sum()


def test_blocked_from_walls_layer(tmp_path):
    walls = [0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]
    m = load_map(write(tmp_path, small_map(walls=walls)))
    assert m.blocked.tolist() == [
        [False, True, False, False],
        [False, False, False, False],
        [False, False, False, True],
    ]
    assert m.pois == {"here": (16.0, 16.0)}  # unnamed objects are not POIs
    assert m.world_size == (128, 96)


def test_blocked_from_tile_property_with_flip_flags(tmp_path):
    tiles = [
        {"id": 1, "properties": [{"name": "blocked", "type": "bool", "value": True}]},
        {"id": 2, "properties": [{"name": "blocked", "type": "bool", "value": False}]},
    ]
    flipped = 2 | 0x80000000 | 0x40000000  # gid 2 flipped horizontally + vertically
    ground = [1, 2, 3, flipped, 1, 1, 1, 1, 3, 3, 3, 2]
    m = load_map(write(tmp_path, small_map(ground=ground, tiles=tiles)))
    assert m.blocked.tolist() == [[False, True, False, True], [False, False, False, False], [False, False, False, True]]


@pytest.mark.parametrize(
    "mutate, expect",
    [
        (lambda r: r["layers"][0].pop("data"), "no 'data'"),
        (lambda r: r["layers"][0].update(encoding="base64", data="AAAA"), "base64"),
        (lambda r: r["layers"][0].update(compression="zlib"), "compression"),
        (lambda r: r.pop("width"), "'width'"),
        (lambda r: r.update(tileheight=16), "square"),
        (lambda r: r["layers"][0].update(data=[1, 2]), "expected 4*3=12"),
        (lambda r: r["layers"][0].pop("type"), "no 'type'"),
        (lambda r: r.update(tilesets=[{"firstgid": 1, "source": "tiles.tsx"}]), "external"),
        (lambda r: r.update(orientation="isometric"), "orthogonal"),
        (lambda r: r["layers"][-1]["objects"].append({"name": "far", "x": 9999, "y": 0}), "outside"),
        (lambda r: r["layers"][-1]["objects"].append({"name": "here", "x": 1, "y": 1}), "twice"),
        (lambda r: r.update(layers=[r["layers"][-1]]), "no tile layer"),
    ],
)
def test_malformed_maps_raise_map_error_naming_the_file(tmp_path, mutate, expect):
    raw = small_map()
    mutate(raw)
    p = write(tmp_path, raw)
    with pytest.raises(MapError) as e:
        load_map(p)
    assert str(p) in str(e.value)
    assert expect in str(e.value)


def test_bad_json_and_missing_file(tmp_path):
    p = write(tmp_path, '{"width": 4,', "broken.tmj")
    with pytest.raises(MapError, match="broken.tmj.*not valid JSON"):
        load_map(p)
    with pytest.raises(MapError, match="nope.tmj.*cannot read"):
        load_map(tmp_path / "nope.tmj")
    with pytest.raises(MapError, match="top level"):
        load_map(write(tmp_path, "[1, 2]", "list.tmj"))
