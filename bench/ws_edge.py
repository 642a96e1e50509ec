"""The socket edge's inbound path, side by side in one run: the server's CPU per client message
for each way of getting a WebSocket message from the socket to the gateway's decode.

    queue     websockets as the gateway used it until session 12: a handler task per
              connection reading `async for message in ws` (websockets queues each parsed
              message in its Assembler and wakes that task), max_queue 32
    callback  websockets with server/gateway.py's PlayerSocket (create_connection): each
              message handed to a callback as it is parsed, no queue, no task switch
    picows    picows (Cython): WSListener.on_ws_frame, called from its C frame parser
              (skipped, with the reason, where picows cannot be imported)
    picows-edge  the server's `--ws picows` edge: server/edge_picows.py's PicowsSocket (picows
              plus what the edge checks per frame: reserved bits, fragments, UTF-8), serving
              the port with the HTTP routes, each message handed to a callback

Each server runs alone in its own process (uvloop), as `npcworld serve` would, and decodes
every message with world.protocol.decode (what Connection.receive does first; the room's
share is left out: it is the same for every edge). This process opens K raw WebSocket
connections to it (bots/bot.py's masked frames, hello first) and has each send what a
`wander` bot sends (an input every 100 ms, a ping every second), spread evenly, for --seconds;
then waits until the server has counted every message. The server's CPU (utime + stime from
/proc) over that span, divided by the messages it received, is the figure: a fixed amount of
work, so a machine busy with other work slows the run but barely moves it. The edges take
turns, --rounds times; the table gives the median per edge and its ratio to `queue`.

Usage: python bench/ws_edge.py [--clients 600] [--seconds 8] [--rounds 3] [--edges queue,callback,picows,picows-edge]
Prints a table and writes bench/results/ws_edge.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import msgpack
from machine import describe, save, stop  # bench/machine.py (this script's folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bots.bot import OP_BINARY, client_frame  # noqa: E402
from world import protocol  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "ws_edge.json"
CLK_TCK = os.sysconf("SC_CLK_TCK")
EDGES = ("queue", "callback", "picows", "picows-edge")
SLOTS = 10  # the clients are spread over 10 slots of 10 ms: each sends its input in its own slot


# -- the server (a subprocess: `ws_edge.py --serve EDGE`) ---------------------------------------


def serve(edge: str) -> None:
    import uvloop

    count = 0

    def receive(frame: bytes | str) -> None:
        nonlocal count
        count += 1
        try:
            protocol.decode(frame)
        except protocol.ProtocolError:
            pass

    async def report() -> None:  # the count, 10 times a second, for the parent to wait on
        last = -1
        while True:
            await asyncio.sleep(0.1)
            if count != last:
                last = count
                print(f"count {count}", flush=True)

    async def main() -> None:
        if edge == "picows":
            from picows import WSListener, WSMsgType, ws_create_server

            class Listener(WSListener):  # type: ignore[misc]
                def on_ws_frame(self, transport, frame) -> None:  # noqa: ANN001
                    if frame.msg_type == WSMsgType.BINARY:
                        receive(frame.get_payload_as_bytes())

            server = await ws_create_server(
                lambda request: Listener(), "127.0.0.1", 0, max_frame_size=protocol.MAX_FRAME, backlog=2048
            )
            port = server.sockets[0].getsockname()[1]
        elif edge == "picows-edge":
            from server import edge_picows
            from server.config import NetSection
            from server.http import Routes

            async def by_edge(sock: edge_picows.PicowsSocket) -> None:
                sock.hand_messages_to(receive)
                await sock.wait_closed()

            routes = Routes(ROOT / "assets/maps/default.tmj", dict, dict, str)
            listening = edge_picows.serve(by_edge, routes, NetSection(host="127.0.0.1", port=0))
            port = (await listening.__aenter__()).port  # served until the process ends
        else:
            from websockets.asyncio.server import serve as ws_serve

            from server.edge_websockets import WebsocketsSocket as PlayerSocket

            async def by_queue(ws) -> None:  # noqa: ANN001
                async for frame in ws:
                    receive(frame)

            async def by_callback(ws: PlayerSocket) -> None:
                ws.hand_messages_to(receive)
                await ws.wait_closed()

            common = dict(
                max_size=protocol.MAX_FRAME, write_limit=64 * 1024, ping_interval=None, backlog=2048, compression=None
            )
            if edge == "queue":
                server = await ws_serve(by_queue, "127.0.0.1", 0, max_queue=32, **common)
            else:
                server = await ws_serve(by_callback, "127.0.0.1", 0, create_connection=PlayerSocket, **common)
            port = server.sockets[0].getsockname()[1]
        print(f"port {port}", flush=True)
        await report()

    uvloop.run(main())


# -- the clients (this process) -------------------------------------------------------------------


class Client(asyncio.Protocol):
    def __init__(self, port: int, index: int) -> None:
        self.port, self.index = port, index
        self.open = asyncio.get_running_loop().create_future()
        self.buf = b""
        self.seq = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:  # noqa: ANN001
        self.transport = transport
        key = base64.b64encode(os.urandom(16))
        transport.write(
            b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n" % (self.port, key)
        )

    def data_received(self, data: bytes) -> None:
        if not self.open.done():
            self.buf += data
            if b"\r\n\r\n" in self.buf:
                self.open.set_result(b" 101 " in self.buf.split(b"\r\n", 1)[0])
        # after the handshake the server sends nothing here: nothing to read

    def connection_lost(self, exc) -> None:  # noqa: ANN001
        if not self.open.done():
            self.open.set_result(False)

    def send(self, msg: dict) -> None:
        assert self.transport is not None
        self.transport.write(client_frame(OP_BINARY, msgpack.packb(msg)))


class NamingClient(Client):
    """A raw client that names its player in its first frame (its index, 4 bytes big-endian), then reads
    and discards: what bench/gateway_flush.py's and bench/gateway_ipc.py's servers expect."""

    def data_received(self, data: bytes) -> None:
        if self.open.done():
            return  # updates: read and dropped
        self.buf += data
        if b"\r\n\r\n" in self.buf:
            ok = b" 101 " in self.buf.split(b"\r\n", 1)[0]
            if ok:
                assert self.transport is not None
                self.transport.write(client_frame(OP_BINARY, self.index.to_bytes(4, "big")))
            self.open.set_result(ok)


async def hold_clients(wanted: list[tuple[int, int]]) -> None:
    """A NamingClient for each (port, index) of `wanted`, opened 100 at a time (no handshake storm); prints
    "open K of N" once all are done, then holds them until this process is terminated."""
    loop = asyncio.get_running_loop()
    opened = []
    for k in range(0, len(wanted), 100):
        batch = [
            loop.create_connection(lambda p=p, i=i: NamingClient(p, i), "127.0.0.1", p) for p, i in wanted[k : k + 100]
        ]
        for _, c in await asyncio.gather(*batch):
            opened.append(await c.open)
    print(f"open {sum(opened)} of {len(opened)}", flush=True)
    await asyncio.Event().wait()  # until terminated


def server_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


async def one_turn(edge: str, clients: int, seconds: float) -> dict:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", edge], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    loop = asyncio.get_running_loop()
    counted = [0]
    port_line = await loop.run_in_executor(None, proc.stdout.readline)
    if not port_line.startswith("port "):
        proc.kill()
        raise RuntimeError(f"{edge} server did not start: {port_line}{proc.stderr.read()[-2000:]}")
    port = int(port_line.split()[1])

    def pump() -> None:
        for line in proc.stdout:
            if line.startswith("count "):
                counted[0] = int(line.split()[1])

    reader = loop.run_in_executor(None, pump)
    try:
        conns: list[Client] = []
        for i in range(0, clients, 50):  # 50 at a time: no handshake storm
            batch = [
                loop.create_connection(lambda i=i + k: Client(port, i), "127.0.0.1", port)
                for k in range(min(50, clients - i))
            ]
            for _, c in await asyncio.gather(*batch):
                conns.append(c)
        opened = await asyncio.gather(*(c.open for c in conns))
        if not all(opened):
            raise RuntimeError(f"{edge}: {opened.count(False)} handshakes failed")
        for c in conns:
            c.send({"t": "hello", "v": protocol.VERSION, "name": f"edge{c.index}"})
        await asyncio.sleep(1.0)
        base = counted[0]
        cpu0, t0 = server_cpu(proc.pid), time.monotonic()
        sent = 0
        slot = 0
        tick_at = t0
        while time.monotonic() - t0 < seconds:  # bounded: --seconds
            tick_at += 0.1 / SLOTS
            for c in conns[slot % SLOTS :: SLOTS]:
                c.seq += 1
                c.send({"t": "input", "seq": c.seq, "dx": 1.0, "dy": 0.0})
                sent += 1
                if c.seq % 10 == 0:
                    c.send({"t": "ping", "id": c.seq})
                    sent += 1
            slot += 1
            await asyncio.sleep(max(0.0, tick_at - time.monotonic()))
        for _ in range(600):  # at most 60 s for the server to catch up
            if counted[0] - base >= sent:
                break
            await asyncio.sleep(0.1)
        cpu1, t1 = server_cpu(proc.pid), time.monotonic()
        got = counted[0] - base
        for c in conns:
            if c.transport is not None:
                c.transport.close()
    finally:
        stop(proc, wait=10)
        await reader
    return {
        "edge": edge,
        "clients": clients,
        "sent": sent,
        "received": got,
        "cpu_s": round(cpu1 - cpu0, 3),
        "wall_s": round(t1 - t0, 2),
        "us_per_message": round(1e6 * (cpu1 - cpu0) / got, 2) if got else None,
    }


def picows_missing() -> str | None:
    try:
        import picows  # noqa: F401
    except ImportError as e:
        return f"{type(e).__name__}: {e}"
    return None


async def run(args) -> dict:
    edges = [e for e in args.edges if not e.startswith("picows") or picows_missing() is None]
    turns: list[dict] = []
    for r in range(args.rounds):
        for edge in edges:
            t = await one_turn(edge, args.clients, args.seconds)
            t["round"] = r
            turns.append(t)
            print(
                f"round {r + 1}/{args.rounds} {edge:11s} {t['us_per_message']} us/message "
                f"({t['received']}/{t['sent']} messages, {t['cpu_s']} s CPU over {t['wall_s']} s)",
                flush=True,
            )
    return {"edges": edges, "turns": turns}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--serve", choices=EDGES, help=argparse.SUPPRESS)
    ap.add_argument("--clients", type=int, default=600)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--edges",
        type=lambda s: [e for e in s.split(",") if e],
        default=list(EDGES),
        help="comma-separated, of " + ", ".join(EDGES),
    )
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    if any(e not in EDGES for e in args.edges):
        ap.error(f"--edges: expected some of {', '.join(EDGES)}")
    missing = picows_missing() if any(e.startswith("picows") for e in args.edges) else None
    if missing:
        print(f"picows skipped: {missing}", file=sys.stderr)
    got = asyncio.run(run(args))
    per = {
        e: [t["us_per_message"] for t in got["turns"] if t["edge"] == e and t["us_per_message"]] for e in got["edges"]
    }
    med = {e: statistics.median(v) if v else None for e, v in per.items()}
    ref = med.get("queue")
    print(
        f"\n{args.clients} clients, {args.seconds:g} s of wander-bot messages per turn, {args.rounds} rounds; "
        f"load {os.getloadavg()[0]:.1f}"
    )
    print(f"{'edge':12s} {'CPU us/message (median)':>24s} {'vs queue':>9s}  turns")
    for e in got["edges"]:
        ratio = f"{med[e] / ref:.2f}x" if ref and med[e] else "-"
        print(f"{e:12s} {med[e] if med[e] is not None else '-':>24} {ratio:>9s}  {per[e]}")
    save(
        RESULTS,
        {
            "clients": args.clients,
            "seconds": args.seconds,
            "rounds": args.rounds,
            "median_us_per_message": med,
            "ratio_to_queue": {e: round(m / ref, 3) if ref and m else None for e, m in med.items()},
            "picows_missing": missing,
            "turns": got["turns"],
            "machine": describe(),
        },
        indent=1,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
