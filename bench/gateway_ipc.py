"""What `--gateways N` would cost and save, per tick, side by side in one run (issue 14): the tick
process's flush of every player's update into its own sockets (today's in-process path) against
shipping each gateway process its players' updates (every distinct View once, plus a (slot, ack)
record per player: server/gateway_link.py) over a socketpair, and the gateway's cost to turn that
into the same per-connection writes.

Processes, all real, on loopback:
- this one, the tick process: a World as bench/world.py builds it (`populated`: --npcs NPCs, the
  players on random free tiles, walking), serving N WebSocket connections on the picows edge
  (server/edge_picows.py), each wrapped in the gateway's own `Connection` (server/gateway.py);
- --gateways K gateway processes (this file, `--gateway-child`), each serving its share of the
  players (player i: gateway i % K) on its own picows edge with the same `Connection`s, behind a
  socketpair to this process (an AF_UNIX stream; 4 MiB buffers, so that a tick's message does not
  wait on the reader);
- one clients process (`--clients-child`): 2N raw WebSocket clients (a handshake, one frame naming
  the player, then they read and discard), one per player on this process and one on its gateway.

Every tick: the players walk, the world steps and builds every observer's View (not timed), then
both paths run on that tick's Views, in alternating order: `in-process` pushes each player's update
into its Connection's outbox and flushes them all (what Seats.update and the Flusher do after a
tick); `ship` packs each gateway's batch and writes it to that gateway's socketpair. Each gateway,
woken by its socketpair, reads the message, unpacks it (`read`), pushes each update into its
Connection and flushes (`write`). Each figure is the CPU time of the thread doing it
(time.thread_time: user + system, so the send syscalls count; waiting does not), per player-tick,
median over the timed ticks. Before timing, one tick's batches are unpacked again here and every
player's bodies (keyframe and delta) compared with the originals.

What the server does (`npcworld serve --gateways N`: server/gateways.py, server/gateway_proc.py) is
this with the socketpair on the event loop (a uvloop transport, never blocking) instead of a blocking
sendall, and the room's own work per player (Gateways.update: a dict lookup and an append).

With --path SRC [SRC...]: the path alone as the server's code runs it, no sockets, each tree's code
in a process of its own, taking turns (an A/B against an older commit): per tick the room's update
per player into Gateways, Gateways.send's packing, each gateway's Gateway.on_message (unpacking and
pushes into real Outboxes; the flush a no-op): CPU µs per player-tick of each part.

Usage: python bench/gateway_ipc.py [--players 600 1200 2400] [--gateways 2] [--npcs 500]
                                   [--ticks 200] [--warmup 20] [--seed 0] [--out FILE]
                                   [--path SRC [SRC ...] [--rounds 3]]
Prints a table and writes bench/results/gateway_ipc.json (--out: elsewhere).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib.util
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import numpy as np
import uvloop
import ws_edge  # bench/ws_edge.py: its raw WebSocket client
from machine import describe, save, stop  # bench/machine.py (this script's folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
# `--path-child SRC ...`: the server's code (server/) from the source tree SRC (an A/B of an older
# commit's path); everything else (world/ too, which bench/world.py imports first), this one's
SRC = Path(sys.argv[2]).resolve() if len(sys.argv) > 2 and sys.argv[1] == "--path-child" else ROOT
sys.path.insert(0, str(SRC))
# bench/world.py's world (`populated`), loaded under another name: `world` is the package
_spec = importlib.util.spec_from_file_location("bench_world", ROOT / "bench" / "world.py")
assert _spec is not None and _spec.loader is not None
bench_world = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_world)
DT, populated = bench_world.DT, bench_world.populated
sys.path.insert(0, str(SRC))  # (bench/world.py put this tree first again)
# bench/world.py imports server.app (its tune_gc) from this tree: dropped, so that `server` below is SRC's
for _name in [m for m in sys.modules if m == "server" or m.startswith("server.")]:
    del sys.modules[_name]

from server import edge_picows  # noqa: E402
from server.config import NetSection  # noqa: E402
from server.gateway import SEND_BUFFER, Connection, Flusher  # noqa: E402
from server import gateway_link  # noqa: E402
from server.gateway_link import pack_updates, unpack_updates, unpack_views  # noqa: E402
from server.gateways import Gateways  # noqa: E402
from server.http import Routes  # noqa: E402
from server.metrics import Metrics  # noqa: E402
from world.tilemap import load_map  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "gateway_ipc.json"
MAP = ROOT / "assets" / "maps" / "default.tmj"
LINK_BUFFER = 4 * 1024 * 1024  # bytes, each way of a socketpair (the kernel doubles it; wmem_max allowing)
HEAD = struct.Struct("!IB")  # a link message: payload length, kind (b"u" updates, b"r" ready, b"e" end, b"c" cpu)
READY_S = 180.0  # at most this long for every connection to open


# -- the socketpair's messages -------------------------------------------------------------------


def send_msg(sock: socket.socket, kind: bytes, payload: bytes = b"") -> None:
    sock.sendall(HEAD.pack(len(payload), kind[0]))
    sock.sendall(payload)


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = sock.recv_into(view[got:])
        if not k:
            raise EOFError("the other end of the socketpair closed")
        got += k
    return bytes(buf)


def recv_msg(sock: socket.socket) -> tuple[bytes, bytes]:
    n, kind = HEAD.unpack(recv_exact(sock, HEAD.size))
    return bytes((kind,)), recv_exact(sock, n)


# -- the edge's sockets, each a Connection (this process and every gateway) ------------------------


async def served(expected: int, metrics: Metrics, flusher: Flusher, conns: dict[int, Connection]):
    """A picows edge whose every socket becomes a Connection, filed in `conns` under the player index
    its client's first frame names."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    async def handler(sock: edge_picows.PicowsSocket) -> None:
        transport_sock = sock.transport.get_extra_info("socket")
        if transport_sock is not None:
            transport_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)  # as gateway.handle
        conn = Connection(sock, None, metrics, flusher, True)  # type: ignore[arg-type]  # flush never reads the game

        def first(frame: bytes | str) -> None:
            if isinstance(frame, bytes) and len(frame) == 4 and conn.player is None:
                conns[int.from_bytes(frame, "big")] = conn
                if len(conns) == expected and not ready.done():
                    ready.set_result(None)

        sock.hand_messages_to(first)
        await sock.wait_closed()

    routes = Routes(MAP, dict, dict, str)
    return edge_picows.serve(handler, routes, NetSection(host="127.0.0.1", port=0)), ready


def flush_all(flusher: Flusher) -> None:
    """The Flusher's work, now (its call_soon then finds nothing to do): Flusher.flush itself, the
    direct writes (one writev per connection) as the server runs them. Before session 17 this called
    each Connection.flush, which is the send path of a connection without direct writes (a picows
    send per message), not the server's."""
    flusher.flush()


# -- a gateway process (`--gateway-child FD EXPECTED`) ----------------------------------------------


async def gateway(fd: int, expected: int) -> None:
    link = socket.socket(fileno=fd)
    link.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, LINK_BUFFER)
    metrics, flusher, conns = Metrics(), Flusher(), {}
    listening, ready = await served(expected, metrics, flusher, conns)
    clock = time.thread_time
    ticks: list[tuple[int, float, float, float, int]] = []  # (tick, read s, push s, flush s, bytes written)
    done = asyncio.get_running_loop().create_future()

    pending = bytearray()  # what the socketpair brought of the messages not yet handled
    reading = [0.0]  # CPU seconds spent reading the message being received

    def on_link() -> None:
        """The socketpair is readable (uvloop made it non-blocking): take what is there, handle each
        whole message. A message's read time counts every recv of its bytes."""
        c0 = clock()
        try:
            chunk = link.recv(1 << 20)
        except BlockingIOError:
            return
        if not chunk:
            if not done.done():
                done.set_result(None)  # the tick process is gone
            return
        pending.extend(chunk)
        reading[0] += clock() - c0
        while len(pending) >= HEAD.size:
            n, kind = HEAD.unpack_from(pending)
            if len(pending) < HEAD.size + n:
                return
            c1 = clock()
            payload = bytes(pending[HEAD.size : HEAD.size + n])
            del pending[: HEAD.size + n]
            if kind == ord("u"):
                tick, views, records = unpack_views(payload)
                c2 = clock()
                sent = metrics.bytes_out
                it = iter(records)
                for slot, i, ack in zip(it, it, it):  # as gateway_proc.Gateway.on_message
                    conn = conns.get(slot)
                    if conn is not None:
                        conn.outbox.push_update(tick, ack, views[i])
                c3 = clock()
                flush_all(flusher)
                ticks.append((tick, reading[0] + c2 - c1, c3 - c2, clock() - c3, metrics.bytes_out - sent))
            elif kind == ord("e"):
                asyncio.get_running_loop().remove_reader(fd)
                link.setblocking(True)
                send_msg(link, b"c", msgpack.packb({"ticks": ticks, "coalesced": metrics.updates_coalesced}))
                done.set_result(None)
                return
            reading[0] = 0.0

    async with listening as edge:
        print(f"port {edge.port}", flush=True)
        await asyncio.wait_for(ready, READY_S)
        send_msg(link, b"r")
        asyncio.get_running_loop().add_reader(fd, on_link)
        await done


# -- the clients process (`--clients-child PORT:FIRST:COUNT:STEP ...`) ---------------------------------


async def clients(groups: list[str]) -> None:
    """The raw clients of `groups` ("port:first:count:step" each), held until terminated."""
    wanted = []
    for g in groups:
        port, first, count, step = map(int, g.split(":"))
        wanted += [(port, first + k * step) for k in range(count)]
    await ws_edge.hold_clients(wanted)


# -- the tick process (this one) ------------------------------------------------------------------


def _child(*args: str, pass_fds: tuple[int, ...] = ()) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True, cwd=ROOT, pass_fds=pass_fds
    )


async def _line(proc: subprocess.Popen, prefix: str) -> str:
    line = await asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline)  # type: ignore[union-attr]
    if not line.startswith(prefix):
        raise RuntimeError(f"a child process said {line!r}, not {prefix!r}...")
    return line


def outbound(players: list[int], k: int) -> Gateways:
    """The tick process's Outbound of `npcworld serve --gateways k` (server/gateways.py) with player i
    seated on gateway i % k as connection i; its sends are this bench's (`scheduled` stays set)."""
    room = Gateways(NetSection(gateways=k), Metrics(), str(MAP))
    room.of = {eid: (i % k, i) for i, eid in enumerate(players)}
    room.batch, room.control, room.links = (
        [gateway_link.Updates() for _ in range(k)],
        [[] for _ in range(k)],
        [None] * k,
    )
    room.scheduled = True
    return room


def check_round_trip(tick: int, batch: list) -> None:
    """Every player's bodies as a gateway gets them equal the tick process's (keyframe and delta)."""
    _, back = unpack_updates(pack_updates(tick, batch))
    for (slot, ack, view), (slot2, ack2, view2) in zip(batch, back, strict=True):
        assert (slot, ack) == (slot2, ack2)
        for sent in (None, view.build - 1):
            assert view.body_after(sent) == view2.body_after(sent), f"player {slot}: bodies differ"


async def case(n: int, k: int, npcs: int, ticks: int, warmup: int, seed: int) -> dict:
    world, players, walk = populated(load_map(MAP), npcs, n, seed)
    rng = np.random.default_rng(seed + 2)
    metrics, flusher, conns = Metrics(), Flusher(), {}
    listening, ready = await served(n, metrics, flusher, conns)
    members = [list(range(g, n, k)) for g in range(k)]  # player i: gateway i % k
    room = outbound(players, k)
    links, gateways = [], []
    for g in range(k):
        a, b = socket.socketpair()
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, LINK_BUFFER)
        gateways.append(_child("--gateway-child", str(b.fileno()), str(len(members[g])), pass_fds=(b.fileno(),)))
        b.close()
        links.append(a)
    procs = list(gateways)
    try:
        async with listening as edge:
            ports = [int((await _line(p, "port ")).split()[1]) for p in gateways]
            groups = [f"{edge.port}:0:{n}:1"] + [f"{ports[g]}:{g}:{len(members[g])}:{k}" for g in range(k)]
            procs.append(_child("--clients-child", *groups))
            print(f"  {n} players: {(await _line(procs[-1], 'open ')).strip()}", flush=True)
            await asyncio.wait_for(ready, READY_S)
            for a in links:
                assert recv_msg(a)[0] == b"r"
            clock = time.thread_time
            acks = np.zeros(n, np.int64)
            rows: list[dict] = []
            for t in range(warmup + ticks):
                walk()
                world.step(DT)
                views = world.build_views()
                tick = world.tick
                acks += rng.random(n) < 0.5  # an input about every 100 ms per player, as bots send
                ack = acks.tolist()
                if t == warmup // 2:
                    for m in members:
                        check_round_trip(tick, [(i, ack[i], views[players[i]]) for i in m])
                    continue  # its bodies are built now: not a tick to time
                row: dict = {"tick": tick}
                for path in ("in_process", "ship") if t % 2 == 0 else ("ship", "in_process"):
                    c0 = clock()
                    if path == "in_process":
                        sent = metrics.bytes_out
                        for i, eid in enumerate(players):
                            conn = conns.get(i)
                            if conn is not None:
                                conn.outbox.push_update(tick, ack[i], views[eid])
                        flush_all(flusher)
                        row["in_process_s"] = clock() - c0
                        row["written"] = metrics.bytes_out - sent
                    else:
                        for i, eid in enumerate(players):  # the room hands each player's update over
                            room.update(eid, tick, ack[i], views[eid])
                        c1 = clock()
                        shipped, data = 0, []
                        for g in range(k):  # as Gateways.send
                            batch, room.batch[g] = room.batch[g], gateway_link.Updates()
                            data.append(batch.pack(tick))
                        c2 = clock()
                        for g in range(k):
                            send_msg(links[g], b"u", data[g])
                            shipped += len(data[g])
                        c3 = clock()
                        row["ship_s"] = c3 - c0
                        row["ship_parts_s"] = (c1 - c0, c2 - c1, c3 - c2)
                        row["shipped"] = shipped
                row["views"] = [len({id(views[players[i]]) for i in m}) for m in members]
                if t >= warmup:
                    rows.append(row)
                await asyncio.sleep(DT)  # the clients and gateways read; the next tick
            reports = []
            for a in links:
                send_msg(a, b"e")
                kind, payload = recv_msg(a)
                assert kind == b"c"
                reports.append(msgpack.unpackb(payload))
    finally:
        stop(*procs, wait=10)
        for a in links:
            a.close()
    return summarise(n, k, rows, reports, metrics.updates_coalesced)


def summarise(n: int, k: int, rows: list[dict], reports: list[dict], coalesced: int) -> dict:
    by_tick = [{t: (r, p + f, b, p, f) for t, r, p, f, b in rep["ticks"]} for rep in reports]
    timed = [r for r in rows if all(r["tick"] in g for g in by_tick)]  # ticks every gateway reported
    per = 1e6 / n  # seconds per tick -> µs per player-tick

    def med(values) -> float:
        return round(statistics.median(values), 3)

    inproc = [r["in_process_s"] * per for r in timed]
    ship = [r["ship_s"] * per for r in timed]
    read = [sum(g[r["tick"]][0] for g in by_tick) * per for r in timed]
    write = [sum(g[r["tick"]][1] for g in by_tick) * per for r in timed]
    push = [sum(g[r["tick"]][3] for g in by_tick) * per for r in timed]
    flush = [sum(g[r["tick"]][4] for g in by_tick) * per for r in timed]
    gw = [a + b for a, b in zip(read, write)]
    parts = [[r["ship_parts_s"][j] * per for r in timed] for j in range(3)]
    return {
        "players": n,
        "gateways": k,
        "ticks": len(timed),
        "in_process_us": med(inproc),
        "ship_us": med(ship),
        "gateway_read_us": med(read),
        "gateway_write_us": med(write),
        # the per-player profile of the path, µs per player-tick: the tick process's side, then the gateways'
        "profile_us": {
            "tick: Gateways.update (the room's Outbound)": med(parts[0]),
            "tick: packing (Updates.pack, as Gateways.send)": med(parts[1]),
            "tick: socketpair send": med(parts[2]),
            "gateway: recv + unpack_views": med(read),
            "gateway: push_update per player": med(push),
            "gateway: flush (frames, writev)": med(flush),
            "in-process for comparison: push + flush": med(inproc),
        },
        "gateway_us": med(gw),
        "ship_over_in_process": round(med(ship) / med(inproc), 3),
        "added_us": round(med([s + g - i for s, g, i in zip(ship, gw, inproc)]), 3),
        "in_process_ms_per_tick": round(med(inproc) * n / 1000, 3),
        "ship_ms_per_tick": round(med(ship) * n / 1000, 3),
        "in_process_us_p90": round(float(np.percentile(inproc, 90)), 3),
        "ship_us_p90": round(float(np.percentile(ship, 90)), 3),
        "shipped_bytes_per_tick": round(statistics.mean(r["shipped"] for r in timed)),
        "written_bytes_per_tick": round(statistics.mean(r["written"] for r in timed)),
        "gateway_written_bytes_per_tick": round(statistics.mean(sum(g[r["tick"]][2] for g in by_tick) for r in timed)),
        "distinct_views_per_gateway": round(statistics.mean(statistics.mean(r["views"]) for r in timed), 1),
        "coalesced_in_process": coalesced,
        "coalesced_gateways": sum(rep["coalesced"] for rep in reports),
    }


# -- the path alone, as the server's code runs it (`--path SRC SRC ...`) ---------------------------


class RecordingLink:
    """A gateway link that keeps what the tick side sends (Gateways.send), for the gateway side."""

    transport = None

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []

    def send(self, kind: bytes, payload: bytes) -> None:
        self.sent.append((kind, payload))


class Outboxed:
    __slots__ = ("outbox",)


async def path_case(n: int, k: int, npcs: int, ticks: int, warmup: int, seed: int) -> dict:
    """The tick<->gateway path of SRC's code, no sockets: per tick the room's update per player into
    Gateways (server/gateways.py), Gateways.send (the packing; its links record), then each gateway's
    gateway_proc.Gateway.on_message of that message (the unpacking, the pushes into real Outboxes;
    its flush, the writes, a no-op here: the same code in any tree, timed in the full bench). CPU µs
    per player-tick of each part (thread time, medians)."""
    from server import gateway_link as wire
    from server.gateway_proc import Gateway
    from server.outbox import Outbox

    assert Path(wire.__file__).resolve().is_relative_to(SRC), f"{wire.__file__} is not of {SRC}"

    world, players, walk = populated(load_map(MAP), npcs, n, seed)
    room = Gateways(NetSection(gateways=k), Metrics(), str(MAP))
    room.of = {eid: (i % k, i) for i, eid in enumerate(players)}
    links = [RecordingLink() for _ in range(k)]
    room.links, room.control = links, [[] for _ in range(k)]  # type: ignore[assignment]
    # each gateway's batch as this tree's Gateways.update takes it: an Updates, or (older trees) a list
    probe = world.build_views()
    for make in [m for m in (getattr(wire, "Updates", None), list) if m is not None]:
        room.batch = [make() for _ in range(k)]  # type: ignore[misc]
        try:
            room.scheduled = True
            room.update(players[0], 0, 0, probe[players[0]])
        except AttributeError:
            continue
        room.batch = [make() for _ in range(k)]  # type: ignore[misc]
        break
    gws = []
    for g in range(k):
        gw = Gateway(NetSection())
        gw.flusher.flush = gw.flusher.dirty.clear  # type: ignore[method-assign]
        for i in range(g, n, k):
            c = Outboxed()
            c.outbox = Outbox(gw.metrics, on_ready=functools.partial(gw.flusher.mark, c))  # type: ignore[arg-type]
            gw.conns[i] = c  # type: ignore[assignment]
        gws.append(gw)
    clock = time.thread_time
    parts: dict[str, list[float]] = {"tick: Gateways.update": [], "tick: Gateways.send (pack)": []}
    parts["gateway: Gateway.on_message (unpack, push)"] = []
    for t in range(warmup + ticks):
        walk()
        world.step(DT)
        views = world.build_views()
        tick = world.tick
        await asyncio.sleep(0.005)  # as between two ticks: other work runs (caches go cold)
        room.scheduled = True  # no call_soon: the send is called here
        c0 = clock()
        for i, eid in enumerate(players):
            room.update(eid, tick, 100 + i, views[eid])
        c1 = clock()
        room.send()
        c2 = clock()
        for g in range(k):
            for kind, payload in links[g].sent:
                gws[g].on_message(kind, payload)
            links[g].sent.clear()
        c3 = clock()
        for gw in gws:
            for c in gw.conns.values():
                c.outbox.update = None  # as written
        if t >= warmup:
            for key, d in zip(parts, (c1 - c0, c2 - c1, c3 - c2)):
                parts[key].append(d * 1e6 / n)
    return {key: round(statistics.median(v), 3) for key, v in parts.items()}


def path_ab(srcs: list[Path], args) -> list[dict]:
    """Each tree's path (`--path-child`), taking turns, --rounds times: one process per run."""
    runs = []
    for r in range(args.rounds):
        for src in srcs:
            for n in args.players:
                cmd = [sys.executable, __file__, "--path-child", str(src), str(n), str(args.gateways)]
                cmd += [str(args.npcs), str(args.ticks), str(args.warmup), str(args.seed)]
                done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
                if done.returncode != 0:
                    raise RuntimeError(f"{src}: {done.stderr[-2000:]}")
                row = {"src": str(src), "players": n, "round": r, "load": os.getloadavg()[0]}
                runs.append(row | {"us": json.loads(done.stdout.strip().splitlines()[-1])})
                print(f"  round {r + 1}, {src}, {n} players: {runs[-1]['us']}", flush=True)
    return runs


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--path-child":
        n, k, npcs, ticks, warmup, seed = map(int, sys.argv[3:9])
        print(json.dumps(uvloop.run(path_case(n, k, npcs, ticks, warmup, seed))))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--gateway-child":
        uvloop.run(gateway(int(sys.argv[2]), int(sys.argv[3])))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--clients-child":
        uvloop.run(clients(sys.argv[2:]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--players", type=int, nargs="+", default=[600, 1200, 2400])
    ap.add_argument("--gateways", type=int, default=2, help="gateway processes (player i on gateway i %% K)")
    ap.add_argument("--npcs", type=int, default=500)
    ap.add_argument("--ticks", type=int, default=200, help="timed ticks per case")
    ap.add_argument("--warmup", type=int, default=20, help="untimed ticks first")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--path",
        type=Path,
        nargs="+",
        default=None,
        metavar="SRC",
        help="instead: the tick<->gateway path alone, as the server's code runs it (no sockets), of each "
        "source tree SRC (e.g. . and an older commit's `git archive` copy), taking turns --rounds times",
    )
    ap.add_argument("--rounds", type=int, default=3, help="with --path: runs of each tree, taking turns")
    ap.add_argument("--out", type=Path, default=RESULTS, metavar="FILE", help=f"results (default: {RESULTS})")
    args = ap.parse_args()
    if args.gateways < 1:
        ap.error("--gateways must be at least 1")
    load = os.getloadavg()
    if args.path:
        runs = path_ab(args.path, args)
        print(
            f"\nthe path's CPU µs per player-tick, medians over {args.rounds} rounds (load {load[0]:.1f} at the start):"
        )
        summary = []
        for n in args.players:
            for src in args.path:
                mine = [r["us"] for r in runs if r["src"] == str(src) and r["players"] == n]
                med = {key: round(statistics.median(u[key] for u in mine), 3) for key in mine[0]}
                med["tick side"] = round(sum(v for key, v in med.items() if key.startswith("tick")), 3)
                summary.append({"src": str(src), "players": n, "us": med})
                print(f"  {n:>6,}  {src}: " + "  ".join(f"{key} {v:.3f}" for key, v in med.items()))
        save(args.out, {"bench": "gateway_ipc --path", "machine": describe(load), "runs": runs, "summary": summary})
        return 0
    rows = [uvloop.run(case(n, args.gateways, args.npcs, args.ticks, args.warmup, args.seed)) for n in args.players]
    head = (
        f"{'players':>7}  {'in-process':>10}  {'ship':>6}  {'ship/in':>7}  {'gw read':>7}  {'gw write':>8}  "
        f"{'added':>6}  {'tick ms saved':>13}  {'KB shipped':>10}  {'KB written':>10}  {'views/gw':>8}"
    )
    print(f"\nCPU µs per player-tick (medians over ticks), {args.gateways} gateways, {args.npcs} NPCs")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['players']:>7,}  {r['in_process_us']:>10.2f}  {r['ship_us']:>6.2f}  {r['ship_over_in_process']:>6.2f}x  "
            f"{r['gateway_read_us']:>7.2f}  {r['gateway_write_us']:>8.2f}  {r['added_us']:>6.2f}  "
            f"{r['in_process_ms_per_tick'] - r['ship_ms_per_tick']:>13.2f}  "
            f"{r['shipped_bytes_per_tick'] / 1000:>10.1f}  {r['written_bytes_per_tick'] / 1000:>10.1f}  "
            f"{r['distinct_views_per_gateway']:>8.1f}"
        )
    print(
        "in-process: the tick process's push + flush into its own sockets; ship: its packing and socketpair"
        " writes instead; gw read / write: the gateways' unpacking, and their push + flush (summed over"
        " gateways); added: ship + gw read + gw write - in-process; KB = 1000 bytes per tick"
    )
    for r in rows:
        print(f"\nper-player profile of the path at {r['players']:,} players (µs per player-tick, medians):")
        for part, us in r["profile_us"].items():
            print(f"  {us:7.3f}  {part}")
    if any(r["coalesced_in_process"] or r["coalesced_gateways"] for r in rows):
        print("note: coalesced > 0 in some row: some clients fell behind, so some flushes wrote less (see the JSON)")
    save(
        args.out,
        {
            "bench": "gateway_ipc",
            "machine": describe(load),
            "gateways": args.gateways,
            "npcs": args.npcs,
            "warmup": args.warmup,
            "rows": rows,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
