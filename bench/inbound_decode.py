"""Inbound decoding, A/B in one run: what validating a tick's worth of client frames costs when
each frame is decoded alone (world/protocol.py `decode`, as the gateway does per message) and
when the frames that arrived in one loop iteration are decoded as one batch (one
`msgpack.Unpacker` fed them all, then the same per-type validation).

Frames: what N browser-like clients send in one tick at 20 Hz (inputs at 10 Hz, a ping every
second: 0.55 frames per client per tick), msgpack as the browser and the bots encode them.
The two ways take turns in blocks; each block is timed with the thread's CPU clock
(time.thread_time). Figures: CPU µs per frame (median over blocks) and the ratio.

This measures only the decode: the per-message cost of the WebSocket layer (websockets' frame
parser, one `recv` per message) is the same either way and is not in these figures.

Usage: python bench/inbound_decode.py [--clients 600 1200] [--blocks 20] [--block 50]
Prints a table and writes bench/results/inbound_decode.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import msgpack
from machine import describe, save  # bench/machine.py (this script's folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from world import protocol  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "inbound_decode.json"


def frames_for(clients: int) -> list[bytes]:
    """One tick's frames from `clients` clients: an input from every second one, a ping from every 20th."""
    out = []
    for i in range(clients):
        if i % 2 == 0:
            out.append(msgpack.packb({"t": "input", "seq": 1000 + i, "dx": 0.70710678, "dy": -0.70710678}))
        if i % 20 == 0:
            out.append(msgpack.packb({"t": "ping", "id": i}))
    return out


def one_by_one(frames: list[bytes]) -> int:
    n = 0
    decode = protocol.decode
    for f in frames:
        decode(f)
        n += 1
    return n


def batched(frames: list[bytes]) -> int:
    """The same validation, with one Unpacker for the batch (a frame that is not one msgpack map
    would need the one-by-one path to say which frame was bad: not counted here)."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=True)
    unpacker.feed(b"".join(frames))
    decoders = protocol._DECODERS
    n = 0
    for msg in unpacker:
        decoders[msg["t"]](msg)
        n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, nargs="+", default=[600, 1200])
    ap.add_argument("--blocks", type=int, default=20)
    ap.add_argument("--block", type=int, default=50, help="ticks per block")
    args = ap.parse_args()
    rows = []
    print(f"{'clients':>8} {'frames/tick':>12} {'one by one µs/frame':>20} {'batched µs/frame':>17} {'ratio':>6}")
    for clients in args.clients:
        frames = frames_for(clients)
        times: dict[str, list[float]] = {"one": [], "batch": []}
        for _ in range(args.blocks):
            for name, fn in (("one", one_by_one), ("batch", batched)):
                t0 = time.thread_time()
                for _ in range(args.block):
                    fn(frames)
                times[name].append((time.thread_time() - t0) / (args.block * len(frames)) * 1e6)
        one, batch = statistics.median(times["one"]), statistics.median(times["batch"])
        rows.append(
            {"clients": clients, "frames_per_tick": len(frames), "one_us": one, "batch_us": batch, "ratio": batch / one}
        )
        print(f"{clients:>8} {len(frames):>12} {one:>20.2f} {batch:>17.2f} {batch / one:>6.2f}")
    save(RESULTS, {"machine": describe(), "rows": rows}, indent=2)


if __name__ == "__main__":
    main()
