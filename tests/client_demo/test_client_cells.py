"""The browser client's update decoder (client_demo/snapshot.js: applyCells, positionsOf), run by
Node on updates the server's encoder wrote: every update of a world whose players run, turn, cross
cells and join late, whole cells and deltas (int8 moves and fixes) alike. What the JavaScript holds
after each update must be what the keyframe of that tick says, position for position."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from world.protocol import apply_cells
from world.sim import NPC, PLAYER, World, WorldConfig
from world.snapshot import encode_update
from world.tilemap import load_map

from support.paths import CLIENT_DIR, ROOT

MSGPACK_ESM = os.path.join(CLIENT_DIR, "node_modules", "@msgpack", "msgpack", "dist.esm", "index.mjs")

pytestmark = [
    pytest.mark.skipif(not shutil.which("node"), reason="no node"),
    pytest.mark.skipif(
        not os.path.isfile(MSGPACK_ESM), reason="client_demo/node_modules missing: run `npm install` in client_demo/"
    ),
]

# Reads length-prefixed update frames on stdin; prints, per update, the positions it holds (quantised).
SCRIPT = """
import { decode } from %(msgpack)s;
import { applyCells, positionsOf } from %(snapshot)s;
const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const all = Buffer.concat(chunks);
let held = new Map(), at = 0;
const out = [];
while (at < all.length) {
  const n = all.readUInt32LE(at);
  const msg = decode(all.subarray(at + 4, at + 4 + n));
  at += 4 + n;
  held = applyCells(held, msg.cells, msg.moves);
  out.push(Object.fromEntries([...positionsOf(held, 1)].map(([id, p]) => [id, [p.x, p.y]])));
}
console.log(JSON.stringify(out));
"""


def scene(seed: int):
    """A world of 3 fast players and 30 NPCs, the first player observing: (world, rng, players, me)."""
    w = World(load_map(ROOT / "assets" / "maps" / "default.tmj"), WorldConfig(seed=8, player_speed=400.0))
    rng = np.random.default_rng(seed)
    players = [w.spawn(PLAYER, f"p{i}", "#d08040") for i in range(3)]
    for _ in range(30):
        w.spawn(NPC, "n", "#40d080")
    me = players[0]
    w.add_observer(me)
    return w, rng, players, me


def in_node(template: str, frames: list[bytes]):
    """What `template`'s script (the decoder under test) printed for the length-prefixed frames."""
    script = template % {
        "msgpack": json.dumps("file://" + os.path.abspath(MSGPACK_ESM)),
        "snapshot": json.dumps("file://" + os.path.abspath(os.path.join(CLIENT_DIR, "snapshot.js"))),
    }
    out = subprocess.run(
        ["node", "--input-type=module", "-e", script], input=b"".join(frames), capture_output=True, timeout=60
    )
    assert out.returncode == 0, out.stderr.decode()
    return json.loads(out.stdout)


def test_the_browser_client_holds_what_every_keyframe_says():
    w, rng, players, me = scene(8)
    frames, expected, sent, held, forms = [], [], None, {}, set()
    for step in range(100):
        if step == 50:
            w.add_observer(me)  # re-added (as after a resume): a keyframe again
            sent = None
        for p in players:
            if rng.random() < 0.2:
                w.set_direction(p, *rng.uniform(-1, 1, 2))
        w.step(0.05)
        v = w.build_views()[me]
        data = encode_update(w.tick, -1, v, sent)
        sent = v.build
        msg = msgpack.unpackb(data)
        forms |= {"whole"} if msg["cells"] else set()
        forms |= {"moves"} if any(b[1] for b in msg["moves"]) else set()
        forms |= {"fix"} if any(b[2] for b in msg["moves"]) else set()
        forms |= {"regroup"} if any(len(b) > 3 for b in msg["moves"]) else set()
        held = apply_cells(held, msg["cells"], msg["moves"])
        key = apply_cells({}, msgpack.unpackb(encode_update(w.tick, -1, v))["cells"], [])
        expected.append(
            {str(i): [float(x), float(y)] for ids, pos in key.values() for i, (x, y) in zip(ids.tolist(), pos.tolist())}
        )
        frames.append(len(data).to_bytes(4, "little") + data)
    assert forms == {"whole", "moves", "fix", "regroup"}
    got = in_node(SCRIPT, frames)
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g == e, f"update {i}"


SCRIPT3 = """
import { decode } from %(msgpack)s;
import { applyCells3, positionsOf } from %(snapshot)s;
const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const all = Buffer.concat(chunks);
let held = new Map(), at = 0;
const out = [];
while (at < all.length) {
  const n = all.readUInt32LE(at);
  const [tick, ack, chat, enter, leave, cells, moves] = decode(all.subarray(at + 4, at + 4 + n));
  at += 4 + n;
  held = applyCells3(held, cells, moves);
  const steps = {};
  for (const { ids, steps: s } of held.values()) ids.forEach((id, i) => (steps[id] = [s[2 * i], s[2 * i + 1]]));
  out.push([Object.fromEntries([...positionsOf(held, 1)].map(([id, p]) => [id, [p.x, p.y]])), steps]);
}
console.log(JSON.stringify(out));
"""


def keyframe3(tick: int, view) -> list:
    """What the v3 keyframe of `view` says, as the Node script prints it: [positions, steps] by id."""
    from world.protocol import apply_cells3, update3_as_map

    key = apply_cells3({}, update3_as_map(msgpack.unpackb(encode_update(tick, -1, view, None, version=3)))["cells"], [])
    return [
        {str(i): [float(x), float(y)] for ids, pos, _ in key.values() for i, (x, y) in zip(ids.tolist(), pos.tolist())},
        {str(i): s for ids, _, steps in key.values() for i, s in zip(ids.tolist(), steps.tolist())},
    ]


def test_the_browser_client_holds_what_every_v3_keyframe_says():
    """The same in version 3 (applyCells3): positions and steps, through every form of move block."""
    from world.protocol import update3_as_map

    w, rng, players, me = scene(9)
    frames, expected, sent, forms = [], [], None, set()
    for step in range(120):
        if step == 60:
            w.add_observer(me)  # re-added (as after a resume): a keyframe again
            sent = None
        for p in players:
            if rng.random() < 0.2:
                w.set_direction(p, *rng.uniform(-0.4, 0.4, 2))  # slow enough for changes to fit 2 bits
            elif rng.random() < 0.05:
                w.set_direction(p, 1.0, 0.0)  # a turn to 400 u/s: a fix, then steps of 320 units
        w.step(0.05)
        v = w.build_views()[me]
        data = encode_update(w.tick, -1, v, sent, version=3)
        sent = v.build
        msg = update3_as_map(msgpack.unpackb(data))
        forms |= {"whole"} if msg["cells"] else set()
        forms |= {"changes"} if any(b[1] for b in msg["moves"]) else set()
        forms |= {"fix"} if any(len(b) > 2 and b[2] for b in msg["moves"]) else set()
        forms |= {"regroup"} if any(len(b) > 3 for b in msg["moves"]) else set()
        expected.append(keyframe3(w.tick, v))
        frames.append(len(data).to_bytes(4, "little") + data)
    assert forms == {"whole", "changes", "fix", "regroup"}
    got = in_node(SCRIPT3, frames)
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g == e, f"update {i}"


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    speed=st.sampled_from([60.0, 160.0, 400.0]),
    turn=st.floats(0.02, 0.5),
    skips=st.sets(st.integers(1, 59), max_size=4),
)
def test_the_browser_client_v3_decoder_agrees_with_the_servers_keyframes_whatever_the_world(seed, speed, turn, skips):
    """Hypothesis: any seed, speed and rate of turning, updates skipped (a keyframe after each):
    applyCells3 (Node) holds each keyframe's positions and steps."""

    w = World(load_map(ROOT / "assets" / "maps" / "default.tmj"), WorldConfig(seed=seed % 100, player_speed=speed))
    rng = np.random.default_rng(seed)
    players = [w.spawn(PLAYER, f"p{i}", "#d08040") for i in range(4)]
    for _ in range(20):
        w.spawn(NPC, "n", "#40d080")
    w.add_observer(players[0])
    frames, expected, sent = [], [], None
    for step in range(60):
        for p in players:
            if rng.random() < turn:
                w.set_direction(p, *rng.uniform(-1, 1, 2))
        w.step(0.05)
        v = w.build_views()[players[0]]
        if step in skips:
            continue  # not sent: the next one is a keyframe
        data = encode_update(w.tick, -1, v, sent, version=3)
        sent = v.build
        expected.append(keyframe3(w.tick, v))
        frames.append(len(data).to_bytes(4, "little") + data)
    assert in_node(SCRIPT3, frames) == expected
