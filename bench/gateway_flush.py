"""The gateway's per-tick send path, two source trees side by side in ONE process, tick by tick
(issue 14): each player's update handed to its connection (gateway.Seats.update -> Outbox.push_update)
and the Flusher's writes (one writev per connection), on real loopback WebSocket connections of the
picows edge, each tree's own code on its own connections.

Why one process: separate processes on this shared 2-core machine drift 5-25% apart (bench/world.py
--interleave says the same), and bench/client_path.py's turns differ by ~15% between two runs of one
tree. Here both trees' server/ packages are imported side by side (the other tree's under its own
module objects: server.* is imported twice, world/ once, this tree's), each serving N connections on
its own port, and every tick the same Views (one World, N observers) go to both trees' connections,
in alternating order, each tree's push + flush timed with time.thread_time (user + system: the send
syscalls count). A clients process holds the 2N raw WebSocket clients (bench/ws_edge.py's handshake,
one frame naming the player, then they read and discard).

Then, each tick, the messages that many `wander` bots send (an input every other tick, a ping every
20th, staggered) are handed to each tree's connections as its edge hands them a parsed message
(Connection.on_message: limits, decode, the room's intake, a pong queued), timed the same way.

Figures: CPU us per connection-tick (push + flush; the push alone) and per inbound message, medians
over the timed ticks, each tree's, and the medians of the per-tick ratios (this tree / the other).
What it measured (session 17, 1,200 connections a tree, load 7-8): push + flush 19.27 vs 19.99 us
(0.95), inbound 3.84 vs 4.98 us per message (0.76): README "Gateway processes".

Usage: python bench/gateway_flush.py --baseline-src DIR [--clients 1200] [--ticks 200] [--warmup 10]
                                     [--npcs 500] [--seed 0] [--out FILE]
Prints a table and writes bench/results/gateway_flush.json (--out: elsewhere).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import ws_edge  # noqa: E402  bench/ws_edge.py: its raw WebSocket client
from machine import describe, save, stop  # noqa: E402  bench/machine.py

RESULTS = ROOT / "bench" / "results" / "gateway_flush.json"
MAP = ROOT / "assets" / "maps" / "default.tmj"
READY_S = 180.0
SERVER_MODULES = ("gateway", "edge_picows", "config", "http", "metrics")


def load_server(src: Path) -> SimpleNamespace:
    """`src`'s server/ modules (SERVER_MODULES), imported fresh: earlier server.* modules are dropped
    from sys.modules first (those already imported stay alive through the objects that hold them)."""
    for name in [m for m in sys.modules if m == "server" or m.startswith("server.")]:
        del sys.modules[name]
    sys.path.insert(0, str(src))
    try:
        mods = {name: importlib.import_module(f"server.{name}") for name in SERVER_MODULES}
    finally:
        sys.path.remove(str(src))
    assert Path(mods["gateway"].__file__).resolve().is_relative_to(src.resolve()), mods["gateway"].__file__
    return SimpleNamespace(src=str(src), **mods)


class Tree:
    """One tree's side: its edge on a port, its Flusher, Seats and a Connection per player index."""

    def __init__(self, mods: SimpleNamespace, n: int) -> None:
        self.mods, self.n = mods, n
        self.metrics = mods.metrics.Metrics()
        self.flusher = mods.gateway.Flusher()
        self.seats = mods.gateway.Seats(mods.config.NetSection())
        self.room = SimpleNamespace(world=SimpleNamespace(tick=0), command=lambda eid, msg: None)
        self.ready = asyncio.get_running_loop().create_future()
        self.conns: dict[int, Any] = {}
        self.cpu: list[float] = []  # per timed tick, seconds (push and flush)
        self.push: list[float] = []  # per tick, seconds (the push alone)
        self.inbound: list[float] = []  # per tick, seconds: the clients' messages of that tick received

    def serve(self) -> Any:
        g = self.mods.gateway

        async def handler(sock: Any) -> None:
            conn, closed = g.accept(sock, self.room, self.metrics, self.flusher, True)
            first = await conn.hello  # the client's index, 4 bytes
            self.conns[int.from_bytes(first, "big")] = conn
            if len(self.conns) == self.n and not self.ready.done():
                self.ready.set_result(None)
            await closed

        routes = self.mods.http.Routes(MAP, dict, dict, str)
        return self.mods.edge_picows.serve(handler, routes, self.mods.config.NetSection(host="127.0.0.1", port=0))

    def seat(self, players: list[int]) -> None:
        for i, eid in enumerate(players):
            conn = self.conns[i]
            conn.player = SimpleNamespace(eid=eid, name=f"p{i}")
            self.seats.of[eid] = conn

    def send(self, players: list[int], tick: int, acks: list[int], views: dict) -> float:
        """This tick's updates into the connections and the Flusher's writes, now: CPU seconds."""
        update, flusher = self.seats.update, self.flusher
        c0 = time.thread_time()
        for i, eid in enumerate(players):
            update(eid, tick, acks[i], views[eid])
        c1 = time.thread_time()
        flusher.flush()  # (its call_soon then finds nothing to do)
        c2 = time.thread_time()
        self.push.append(c1 - c0)
        return c2 - c0

    def receive(self, messages: list[tuple[int, bytes]]) -> float:
        """Each (player index, frame) handed to its connection as the edge hands it a parsed message
        (Connection.on_message: limits, decode, the room's intake): CPU seconds."""
        conns = self.conns
        c0 = time.thread_time()
        for i, frame in messages:
            conns[i].on_message(frame)
        return time.thread_time() - c0


def messages(tick: int, n: int, seqs: list[int]) -> list[tuple[int, bytes]]:
    """What n `wander` bots send in a tick: an input every other tick, a ping every 20th (staggered)."""
    import msgpack

    out = []
    for i in range(n):
        if (tick + i) % 2 == 0:
            seqs[i] += 1
            a = 0.7 * (seqs[i] // 20 + i)
            out.append(
                (i, msgpack.packb({"t": "input", "seq": seqs[i], "dx": np.cos(a).item(), "dy": np.sin(a).item()}))
            )
        if (tick + i) % 20 == 0:
            out.append((i, msgpack.packb({"t": "ping", "id": tick})))
    return out


async def clients(ports: list[int], n: int) -> None:
    await ws_edge.hold_clients([(p, i) for p in ports for i in range(n)])


async def run(args: argparse.Namespace) -> dict:
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_world", ROOT / "bench" / "world.py")
    assert spec is not None and spec.loader is not None
    bench_world = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_world)
    from world.tilemap import load_map

    labels = ("this tree", "baseline")
    trees = [Tree(load_server(src), args.clients) for src in (ROOT, args.baseline_src)]
    world, players, walk = bench_world.populated(load_map(MAP), args.npcs, args.clients, args.seed)
    rng = np.random.default_rng(args.seed + 2)
    proc = None
    async with trees[0].serve() as edge_a, trees[1].serve() as edge_b:
        cmd = [sys.executable, __file__, "--clients-child", str(edge_a.port), str(edge_b.port), str(args.clients)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        try:
            line = await asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline)  # type: ignore[union-attr]
            print(f"  {args.clients} players per tree: {line.strip()}", flush=True)
            for t in trees:
                await asyncio.wait_for(t.ready, READY_S)
                t.seat(players)
            acks = np.zeros(args.clients, np.int64)
            seqs = [0] * args.clients
            for k in range(args.warmup + args.ticks):
                walk()
                world.step(bench_world.DT)
                views = world.build_views()
                for v in {id(v): v for v in views.values()}.values():  # the bodies built before timing
                    v.body_after(v.build - 1)
                    if k == 0:
                        v.body
                acks += rng.random(args.clients) < 0.5
                ack = acks.tolist()
                order = trees if k % 2 == 0 else trees[::-1]
                for t in order:
                    cpu = t.send(players, world.tick, ack, views)
                    if k >= args.warmup:
                        t.cpu.append(cpu)
                inbound = messages(world.tick, args.clients, seqs)
                for t in order:
                    t.room.world.tick = world.tick
                    cpu = t.receive(inbound)
                    if k >= args.warmup:
                        t.inbound.append(cpu / max(1, len(inbound)))
                await asyncio.sleep(0.05)  # the clients read; the sockets drain
        finally:
            if proc is not None:
                stop(proc)
    n = args.clients
    per = [[1e6 * c / n for c in t.cpu] for t in trees]
    ratios = [a / b for a, b in zip(*per) if b > 0]
    out = {
        "clients": n,
        "ticks": args.ticks,
        "trees": {
            lab: {"src": t.mods.src, "us_per_conn_tick": per[i]} for i, (lab, t) in enumerate(zip(labels, trees))
        },
        "median_us": {lab: statistics.median(per[i]) for i, lab in enumerate(labels)},
        "median_ratio": statistics.median(ratios),
        "coalesced": [t.metrics.updates_coalesced for t in trees],
    }
    q = lambda xs, p: float(np.percentile(xs, p))  # noqa: E731
    print(f"\n{'tree':>10}  {'us/conn-tick p50':>16}  {'p25':>6}  {'p75':>6}")
    for i, lab in enumerate(labels):
        print(f"{lab:>10}  {q(per[i], 50):16.2f}  {q(per[i], 25):6.2f}  {q(per[i], 75):6.2f}")
    for i, (lab, t) in enumerate(zip(labels, trees)):
        push = [1e6 * c / n for c in t.push[-len(t.cpu) :]]
        out["trees"][lab]["push_us_per_conn_tick"] = push
        print(f"{lab:>10}  push alone p50 {q(push, 50):.2f} us/conn-tick")
    for i, (lab, t) in enumerate(zip(labels, trees)):
        inb = [1e6 * c for c in t.inbound]
        out["trees"][lab]["inbound_us_per_message"] = inb
        print(f"{lab:>10}  inbound p50 {q(inb, 50):.2f} us/message")
    inr = [a / b for a, b in zip(trees[0].inbound, trees[1].inbound) if b > 0]
    out["inbound_median_ratio"] = statistics.median(inr)
    print(
        f"inbound per-tick ratio (this / baseline): median {out['inbound_median_ratio']:.3f}, "
        f"p25 {q(inr, 25):.3f}, p75 {q(inr, 75):.3f}"
    )
    print(
        f"per-tick ratio (this / baseline): median {out['median_ratio']:.3f}, "
        f"p25 {q(ratios, 25):.3f}, p75 {q(ratios, 75):.3f}; coalesced {out['coalesced']}"
    )
    return out


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--clients-child":
        a, b, n = sys.argv[2:5]
        uvloop.run(clients([int(a), int(b)], int(n)))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--baseline-src", type=Path, required=True, help="the other tree (git archive main | tar -x -C DIR)"
    )
    ap.add_argument("--clients", type=int, default=1200, help="connections per tree")
    ap.add_argument("--ticks", type=int, default=200, help="timed ticks")
    ap.add_argument("--warmup", type=int, default=10, help="untimed ticks first")
    ap.add_argument("--npcs", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS, metavar="FILE")
    args = ap.parse_args()
    if not (args.baseline_src / "server" / "gateway.py").exists():
        ap.error("--baseline-src: expected a source tree of this project (with server/gateway.py)")
    load = os.getloadavg()
    out = uvloop.run(run(args))
    save(args.out, {"machine": describe(load), **out})
    return 0


if __name__ == "__main__":
    sys.exit(main())
