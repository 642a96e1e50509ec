"""The server's CPU per client and tick, for a fixed amount of work, two source trees side by side
in one run: what bench/capacity.py's CPU figure measures, without its dependence on a quiet machine.

bench/capacity.py runs the server against the clock: on a machine busy with other work the server
gets less of a core, skips ticks and coalesces updates, so its CPU per client falls with the load
and an A/B there measures the load. Here the work is fixed instead. Each server (a subprocess
importing `server/` and `world/` from its tree) is the real room (server/app.py build_room: the
default map, --npcs wandering NPCs, the built-in decider, no dialogue, no store), the real gateway
and the `--ws picows` edge on a loopback port, with N players spread at random (`--spawn random`).
Its tick is driven in lockstep instead of by the clock: it ticks (commands, NPC minds, the world's
step, every observer's view, the flush of every connection), then waits until every client has
answered that update. Each client, one raw WebSocket of this process, answers every update as a
`wander` bot sends: an input every other tick and a ping every 20th (0.55 messages per client and
tick, staggered by client), and the server answers each ping with a pong. So every run does the
same work whatever else the machine does: N clients x --ticks ticks, every update delivered, no
coalescing. The read checks run as in `npcworld serve` (gateway.read_checks: a sweep every 0.5 s of
wall time, a ping per client every 2 s or so, about 2.5% of the messages) and the clients answer
their pings. Not in it: the handshakes and joins (before the measured ticks).

The figure: the server's main thread's CPU (time.thread_time, user + system: its send and receive
syscalls included) over the measured ticks and the waits between them, less the same number of ticks run first in the same
process with no client (the world's own tick: NPC minds and the world's step), in us per client
and tick. The trees take turns,
--rounds times (A B, then B A, ...); the table gives each one's median and the ratio.

Usage: python bench/client_path.py --baseline-src /tmp/base [--clients 600 1200] [--ticks 200] [--rounds 3]
Prints a table and writes bench/results/client_path.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
from pathlib import Path

from machine import describe, save, stop  # bench/machine.py (this script's folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "client_path.json"
WARMUP_TICKS = 20  # run first, not measured: every client has had its first (keyframe) update
INPUT_EVERY, PING_EVERY = 2, 20  # ticks, at 20 Hz: inputs at 10 Hz and a ping a second, as `wander` bots
TURNS = ((0.6, -0.8), (-0.8, -0.6), (-0.6, 0.8), (0.8, 0.6))  # unit directions a client walks in turn


def answers(tick: int, clients: int) -> int:
    """Messages the clients send in answer to the update of `tick` (client i: see Client.update)."""
    return sum(1 for i in range(clients) if (tick + i) % INPUT_EVERY == 0) + sum(
        1 for i in range(clients) if (tick + i) % PING_EVERY == 0
    )


# -- the server (a subprocess: `client_path.py --serve SRC --clients N --ticks T --npcs K`) -----


def serve(src: Path, clients: int, ticks: int, npcs: int) -> None:
    sys.path.insert(0, str(src))
    os.chdir(src)
    import functools
    import time

    import uvloop

    from server import edge_picows, gateway
    from server.app import build_room
    from server.config import flat
    from server.http import Routes
    from server.metrics import Metrics
    from world.tilemap import load_map

    class Counted(Metrics):
        """Metrics whose messages_in wakes the driver once it reaches `target` (the answers to a tick)."""

        def __init__(self) -> None:
            self.arrived = asyncio.Event()
            self.target = 1 << 62
            super().__init__()

        @property
        def messages_in(self) -> int:
            return self._messages_in

        @messages_in.setter
        def messages_in(self, n: int) -> None:
            self._messages_in = n
            if n >= self.target:
                self.arrived.set()

    async def drive(game, metrics: Counted, rate: int, clients: int, ticks: int) -> float:  # noqa: ANN001
        """WARMUP_TICKS then `ticks` ticks in lockstep with `clients` clients; CPU s of the measured ones,
        the waits between them included (the read checks' sweeps and the pongs fall there too)."""
        start = 0.0
        slot = time.monotonic()
        for k in range(WARMUP_TICKS + ticks):
            if k == WARMUP_TICKS:
                start = time.thread_time()
            # no faster than the tick rate: the clients' messages per second stay under the rate limit
            slot += 1.0 / rate
            await asyncio.sleep(max(0.0, slot - time.monotonic()))
            metrics.arrived.clear()
            metrics.target = metrics.messages_in + answers(game.world.tick + 1, clients)
            game.tick()  # world.tick is now the tick its updates carry
            if clients:
                try:  # the flush (call_soon), the reads, every answer handled
                    await asyncio.wait_for(metrics.arrived.wait(), 60)
                except TimeoutError:
                    raise SystemExit(f"tick {game.world.tick}: answers missing after 60 s") from None
            else:
                await asyncio.sleep(0)  # what the tick scheduled (nothing to flush) runs
        return time.thread_time() - start

    async def main() -> None:
        cfg = flat(
            port=0,
            host="127.0.0.1",
            npcs=npcs,
            decider="builtin",
            dialogue=False,
            memory_db="",
            store="",
            grace=0,
            spawn="random",
            max_players=100000,
            ws="picows",
            secret="client-path",
        ).validate()
        metrics = Counted()
        seats = gateway.Seats(cfg.net)
        game = build_room(cfg, load_map(cfg.world.map), metrics, seats, store=None)
        routes = Routes(cfg.world.map, lambda: game.world.map.raw, dict, metrics.render)
        handler = functools.partial(gateway.handle, game=game, seats=seats, metrics=metrics, flusher=gateway.Flusher())
        async with edge_picows.serve(handler, routes, cfg.net) as listening:
            base = await drive(game, metrics, cfg.world.tick_rate, 0, ticks)  # the world alone: no client yet
            print("port", listening.port, flush=True)
            for _ in range(1200):  # at most 60 s for every client's hello
                if game.connected() >= clients:
                    break
                await asyncio.sleep(0.05)
            else:
                raise SystemExit(f"only {game.connected()} of {clients} clients joined")
            stop = asyncio.Event()
            sweep = asyncio.get_running_loop().create_task(gateway.read_checks(seats, stop))
            used = await drive(game, metrics, cfg.world.tick_rate, clients, ticks)
            stop.set()
            await sweep
            print(f"result {used:.6f} {base:.6f} {ticks} {clients} {metrics.updates_coalesced}", flush=True)
            game.close()

    uvloop.run(main())


# -- the clients (this process) -----------------------------------------------------------------


PROTOCOL = [2]  # the clients' hello version (--protocol)


def client_class() -> type:
    """bench/ws_edge.py's raw WebSocket client (its handshake; bots/bot.py's masked frames), answering
    every update and each read-check ping; it reads frame heads only. Made here, in this process: a server
    imports its own tree's world/, and ws_edge imports this tree's."""
    import ws_edge  # bench/ws_edge.py (this script's folder is on sys.path)
    from bots.bot import OP_PING, OP_PONG, client_frame
    from world.protocol import read_update3_head, read_update_head

    class Client(ws_edge.Client):
        def data_received(self, data: bytes) -> None:
            buf = self.buf + data
            if not self.open.done():
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    self.buf = buf
                    return
                self.open.set_result(b" 101 " in buf.split(b"\r\n", 1)[0])
                buf = buf[end + 4 :]
            i = 0
            while len(buf) - i >= 2:  # the server's frames: unmasked, one message each
                n, at = buf[i + 1] & 0x7F, i + 2
                if n == 126:
                    n, at = int.from_bytes(buf[at : at + 2], "big"), at + 2
                elif n == 127:
                    n, at = int.from_bytes(buf[at : at + 8], "big"), at + 8
                if len(buf) < at + n:
                    break
                if buf[i] & 0x0F == OP_PING:  # the read check's: answered as a browser or the bots do
                    assert self.transport is not None
                    self.transport.write(client_frame(OP_PONG, buf[at : at + n]))
                else:
                    head = read_update3_head(buf, at, at + n) or read_update_head(buf, at, at + n)
                    if head is not None:
                        self.update(head[0])
                i = at + n
            self.buf = buf[i:]

        def update(self, tick: int) -> None:
            if (tick + self.index) % INPUT_EVERY == 0:
                self.seq += 1
                dx, dy = TURNS[(self.seq // 20 + self.index) % len(TURNS)]  # a new direction every 2 s
                self.send({"t": "input", "seq": self.seq, "dx": dx, "dy": dy})
            if (tick + self.index) % PING_EVERY == 0:
                self.send({"t": "ping", "id": tick})

    return Client


async def one_turn(src: Path, clients: int, ticks: int, npcs: int) -> dict:
    cmd = [sys.executable, __file__, "--serve", str(src), "--clients", str(clients), "--ticks", str(ticks)]
    proc = subprocess.Popen([*cmd, "--npcs", str(npcs)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    loop = asyncio.get_running_loop()
    try:
        line = await loop.run_in_executor(None, proc.stdout.readline)
        if not line.startswith("port "):
            raise RuntimeError(f"the server from {src} did not start: {line}{proc.stderr.read()[-2000:]}")
        port = int(line.split()[1])
        Client = client_class()
        conns: list = []
        for i in range(0, clients, 50):  # 50 at a time: no handshake storm
            batch = [
                loop.create_connection(lambda i=i + k: Client(port, i), "127.0.0.1", port)
                for k in range(min(50, clients - i))
            ]
            conns.extend(c for _, c in await asyncio.gather(*batch))
        opened = await asyncio.gather(*(c.open for c in conns))
        if not all(opened):
            raise RuntimeError(f"{opened.count(False)} handshakes failed")
        for c in conns:
            c.send({"t": "hello", "v": PROTOCOL[0], "name": f"c{c.index}"})
        line = await asyncio.wait_for(loop.run_in_executor(None, proc.stdout.readline), 600)
        if not line.startswith("result "):
            raise RuntimeError(f"the server from {src} gave no result: {line}{proc.stderr.read()[-2000:]}")
        used, base, n_ticks, n, coalesced = line.split()[1:]
        for c in conns:
            if c.transport is not None:
                c.transport.close()
    finally:
        stop(proc, wait=15)
    return {
        "src": str(src),
        "clients": clients,
        "ticks": int(n_ticks),
        "cpu_s": float(used),
        "base_cpu_s": float(base),  # the same ticks with no client, in the same process, first
        "tick_ms": round(1e3 * float(used) / int(n_ticks), 3),
        "base_tick_ms": round(1e3 * float(base) / int(n_ticks), 3),
        # marginal: above the world's own tick, per client
        "us_per_client_tick": round(1e6 * (float(used) - float(base)) / int(n_ticks) / int(n), 2),
        "coalesced": int(coalesced),
    }


async def run(args) -> dict:
    trees = {"this tree": ROOT, "baseline": args.baseline_src.resolve()}
    results: list[dict] = []
    for n in args.clients:
        for r in range(args.rounds):
            order = list(trees.items()) if r % 2 == 0 else list(trees.items())[::-1]
            for label, src in order:
                got = await one_turn(src, n, args.ticks, args.npcs)
                got.update(tree=label, round=r)
                results.append(got)
                print(
                    f"N={n} round {r + 1} {label}: {got['us_per_client_tick']:.2f} us per client-tick above the "
                    f"world's own tick ({got['tick_ms']:.2f} ms a tick, {got['base_tick_ms']:.2f} with no client)",
                    flush=True,
                )
    return {"turns": results}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--baseline-src", type=Path, help="the other source tree (e.g. `git archive main | tar -x -C DIR`)")
    ap.add_argument("--clients", type=int, nargs="+", default=[600, 1200])
    ap.add_argument("--ticks", type=int, default=200, help="measured ticks per turn (after 20 of warm-up)")
    ap.add_argument("--rounds", type=int, default=3, help="turns of each tree per N (they alternate)")
    ap.add_argument("--npcs", type=int, default=500)
    ap.add_argument(
        "--protocol",
        type=int,
        default=2,
        help="the clients' protocol version (default 2: every tree before 3 speaks it)",
    )
    args = ap.parse_args()
    PROTOCOL[0] = args.protocol
    if args.serve is not None:
        serve(args.serve, args.clients[0], args.ticks, args.npcs)
        return 0
    if args.baseline_src is None or not (args.baseline_src / "server" / "gateway.py").exists():
        ap.error("--baseline-src: expected a source tree of this project (with server/gateway.py)")
    sys.path.insert(0, str(ROOT))
    import uvloop

    out = uvloop.run(run(args))
    rows = [["N", "this tree us/client-tick", "baseline us/client-tick", "ratio", "turns"]]
    summary = []
    for n in args.clients:
        mine = [t["us_per_client_tick"] for t in out["turns"] if t["clients"] == n and t["tree"] == "this tree"]
        base = [t["us_per_client_tick"] for t in out["turns"] if t["clients"] == n and t["tree"] == "baseline"]
        a, b = statistics.median(mine), statistics.median(base)
        summary.append({"clients": n, "this_tree_us": a, "baseline_us": b, "ratio": round(a / b, 3)})
        rows.append([str(n), f"{a:.2f}", f"{b:.2f}", f"{a / b:.2f}x", f"{len(mine)}+{len(base)}"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for k, r in enumerate(rows):
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)))
        if k == 0:
            print("  ".join("-" * w for w in widths))
    save(
        RESULTS,
        {"machine": describe(), "baseline_src": str(args.baseline_src), "ticks": args.ticks, "summary": summary, **out},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
