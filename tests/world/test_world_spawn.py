"""World.random_open_point: where `--spawn random` puts players."""

from world.sim import PLAYER, World, WorldConfig

from support.worldhelp import clearance, grid_map


def test_random_open_points_are_free_reachable_and_seeded(tmp_path):
    # a walled-off pocket (right) that no player at 's' could walk out of
    tilemap = grid_map(tmp_path, ["#########", "#s.....##", "#......#.", "#......##", "#########"])
    points = [World(tilemap, WorldConfig(seed=7)).random_open_point() for _ in range(2)]
    assert points[0] == points[1]  # the same seed, the same place
    world = World(tilemap, WorldConfig(seed=3))
    ts = tilemap.tile_size
    seen = set()
    for _ in range(200):
        x, y = world.random_open_point()
        col, row = int(x // ts), int(y // ts)
        assert not tilemap.blocked[row, col] and col < 7, (x, y)  # never in the pocket at column 8
        assert clearance(tilemap, [(x, y)])[0] >= world.config.radius
        seen.add((col, row))
        world.spawn(PLAYER, "p", "#fff", x, y)  # a valid spawn position
    assert len(seen) > 10  # spread over the room, not one spot
