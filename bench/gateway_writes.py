"""The gateway's write path, A/B in one run: the CPU a tick's flush of every
connection costs with direct writes (server/gateway.py: one writev per
connection of [frame head + update head, the cell's shared body]) and with
websockets' send path (`--no-direct-writes`: a Frame, a copy and a write per
message), on real loopback WebSocket connections.

One process, uvloop: a websockets server whose handler wraps each connection
in the gateway's own `Connection`, K websockets clients that read and discard
what they get, and a World (default map, 500 NPCs, the K players on random
free tiles, walking) whose `build_views` gives each connection its real
update every tick. Each tick every connection gets its update (and every 20th
tick a pong), then the Flusher's work (every `Connection.flush`) is timed with
the thread's CPU clock (time.thread_time: user + system, the send syscalls
included; what the clients do between ticks is not counted). The two paths
take turns in blocks of --block ticks. Figures: CPU µs per connection per
tick (median over blocks) and the ratio; bytes per update.

Usage: python bench/gateway_writes.py [--clients 200 800] [--blocks 10] [--block 20]
Prints a table and writes bench/results/gateway_writes.json.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import socket
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import uvloop
import websockets
from websockets.asyncio.server import serve
from machine import describe, save  # bench/machine.py (this script's folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from world import protocol  # noqa: E402
from server.edge_websockets import WebsocketsSocket  # noqa: E402
from server.gateway import SEND_BUFFER, Connection, Flusher  # noqa: E402
from server.metrics import Metrics  # noqa: E402
from world.sim import NPC, PLAYER, World, WorldConfig  # noqa: E402
from world.tilemap import load_map  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "gateway_writes.json"
MAP = ROOT / "assets" / "maps" / "default.tmj"


async def run(n: int, blocks: int, block: int, seed: int) -> dict:
    tilemap = load_map(MAP)
    world = World(tilemap, WorldConfig(seed=seed))
    rng = np.random.default_rng(seed)
    for i in range(500):
        world.spawn(NPC, f"npc{i}", "#d08040")
    metrics = Metrics()
    flusher = Flusher()
    # The gateway's own Connection, two per socket (direct writes on, off); its room is asked for
    # nothing here (no client sends), so a stand-in with the world's tick will do
    room = SimpleNamespace(world=world, command=None)
    conns: list[tuple[Connection, Connection]] = []  # (direct, websockets) per socket
    players: list[int] = []
    joined = asyncio.Event()

    async def handler(ws):
        sock = ws.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)  # as gateway.handle does
        conns.append(tuple(Connection(ws, room, metrics, flusher, flag) for flag in (True, False)))
        eid = world.spawn(PLAYER, f"p{len(players)}", "#4080d0", *world.random_open_point())
        players.append(eid)
        world.add_observer(eid)
        if len(conns) == n:
            joined.set()
        await ws.wait_closed()

    async def reader(ws):
        async for _ in ws:
            pass

    async with serve(
        handler,
        "127.0.0.1",
        0,
        compression=None,
        max_size=None,
        write_limit=64 * 1024,
        create_connection=WebsocketsSocket,  # the gateway's PlayerSocket on websockets (server/edge_websockets.py)
    ) as server:
        port = server.sockets[0].getsockname()[1]
        clients = []
        for _ in range(n):
            clients.append(await websockets.connect(f"ws://127.0.0.1:{port}", compression=None, max_size=None))
        readers = [asyncio.create_task(reader(c)) for c in clients]
        await asyncio.wait_for(joined.wait(), 30)
        pong = protocol.encode_pong(1, 0)
        cpu = {"direct": [], "websockets": []}
        sizes: list[int] = []
        tick = 0
        for b in range(blocks * 2 + 2):  # the first pair warms up
            path = "direct" if b % 2 == 0 else "websockets"
            used = 0.0
            for _ in range(block):
                for p in players:
                    if rng.random() < 0.05:
                        a = rng.uniform(0, 2 * math.pi)
                        world.set_direction(p, math.cos(a), math.sin(a))
                world.step(0.05)
                tick += 1
                views = world.build_views()
                for pair, eid in zip(conns, players):
                    c = pair[0 if path == "direct" else 1]
                    c.outbox.push_update(tick, 0, views[eid])
                    if tick % 20 == 0:
                        c.outbox.push(pong)
                    if len(sizes) < 2000:
                        sizes.append(len(views[eid].body) + 16)
                dirty, flusher.dirty = flusher.dirty, []
                t0 = time.thread_time()
                for c in dirty:
                    c.flush()
                used += time.thread_time() - t0
                await asyncio.sleep(0.05)  # the clients read; the next tick
            if b >= 2:
                cpu[path].append(used / block / n * 1e6)
        for c in clients:
            await c.close()
        for r in readers:
            r.cancel()
    d, w = statistics.median(cpu["direct"]), statistics.median(cpu["websockets"])
    return {
        "clients": n,
        "direct_us": round(d, 2),
        "websockets_us": round(w, 2),
        "ratio": round(d / w, 3),
        "direct_blocks": [round(v, 2) for v in cpu["direct"]],
        "websockets_blocks": [round(v, 2) for v in cpu["websockets"]],
        "update_bytes_mean": round(statistics.mean(sizes)),
        "coalesced": metrics.updates_coalesced,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, nargs="+", default=[200, 800])
    ap.add_argument("--blocks", type=int, default=10, help="blocks of each path (they alternate)")
    ap.add_argument("--block", type=int, default=20, help="ticks per block")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    args = ap.parse_args()
    rows = [uvloop.run(run(n, args.blocks, args.block, args.seed)) for n in args.clients]
    head = (
        f"{'clients':>8}  {'direct µs/conn/tick':>20}  {'websockets µs/conn/tick':>24}  {'direct/websockets':>18}  "
        f"{'update bytes':>12}  {'coalesced':>9}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['clients']:>8}  {r['direct_us']:>20.2f}  {r['websockets_us']:>24.2f}  {r['ratio']:>17.2f}x  "
            f"{r['update_bytes_mean']:>12,}  {r['coalesced']:>9,}"
        )
    if any(r["coalesced"] for r in rows):
        print(
            "note: coalesced > 0: some clients fell behind (their socket full), so some flushes wrote nothing;"
            " those N measure less than a full tick's writes"
        )
    save(
        args.out,
        {
            "machine": describe(),
            "blocks": args.blocks,
            "block_ticks": args.block,
            "rows": rows,
        },
        indent=1,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
