"""Benchmark remote workers: the local pipe vs through an MQTT 5 broker, in one run.

A real Mosquitto on a free loopback port and real `npcworld worker`
processes; the pools are the server's (npc.inference.Pool) with the real
decision policy (assets/policy) and the dialogue runner. Parts:

1. decisions: one request per 20 Hz tick holding the observation rows of N
   NPCs (100 / 1,000 / 2,000; all of them re-thinking each tick, an upper
   bound: the default think_ms makes it N/10), deadline one tick (50 ms);
   local pipe and broker in alternating blocks of ticks: round-trip latency
   p50 / p99 and the share on time;
2. dialogue (the tiny model by default, --dialogue-model default for
   SmolLM2): time to first token and tokens/s at 1 and 8 conversations,
   local worker vs a remote worker;
3. throughput: decision requests of 1,000 rows kept 4 in flight for a few
   seconds, through one and then two remote worker processes;
4. fault run: a 20 Hz tick loop (submit the tick's request, take the
   answers, nothing else) against a remote worker while the broker is
   killed for 5 s every 20 s, vs the same loop with no faults: tick p99 and
   its ratio (target <= 1.1x), requests failed, exceptions (target 0).
With --device cuda:0 (a GPU machine) the remote worker runs there.

Usage: python bench/remote.py [--ticks 60] [--sizes 100,1000,2000] [--dialogue-model tiny]
       [--tokens 24] [--fault-s 60] [--device cpu] [--out bench/results/remote.json]
Prints a table and writes JSON. Measured, not asserted; on a shared machine
figures vary from run to run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from machine import describe, save  # bench/machine.py (this script's folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from npc.inference import Inbox, Outcome, Pool, PoolConfig  # noqa: E402
from npc.inference.broker import RemoteConfig  # noqa: E402
from npc.policy.observe import OBS_DIM, A, T  # noqa: E402  (the layout; torch stays out of here)

TICK_S = 0.05
POLICY = {"module": "npc.policy.model:build_policy", "weights": str(ROOT / "assets" / "policy" / "policy.safetensors")}


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(xs, p)) if xs else float("nan")


# -- the broker and the workers ----------------------------------------------------------------


class Broker:
    def __init__(self, folder: Path):
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        conf = folder / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n"
        )
        self.cmd = [exe, "-c", str(conf)]
        self.proc = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> "Broker":
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(400):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return self
            except OSError:
                time.sleep(0.025)
        raise RuntimeError("mosquitto did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None


def start_worker(url: str, name: str, serve: str, args, *extra: str) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "server.cli",
        "worker",
        "--broker",
        url,
        "--name",
        name,
        "--serve",
        serve,
        "--device",
        args.device,
        "--log-level",
        "warning",
        *extra,
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if " ready: serving " in line:
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # keep draining
            return proc
    raise RuntimeError(f"worker {name} did not start (exit {proc.wait()})")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def remote_pool(url: str, kind: str, workers: int = 1, **cfg) -> Pool:
    pool = Pool(PoolConfig(workers=0, remote=RemoteConfig(url, kind), **cfg)).start()
    if not pool.wait_for(lambda: pool.stats.workers_ready >= workers, 120):
        raise RuntimeError(f"remote {kind} workers not present: {pool.workers()}")
    return pool


def rows(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "obs": rng.random((n, OBS_DIM), dtype=np.float32),
        "mask": np.ones((n, A), bool),
        "tmask": np.ones((n, T), bool),
    }


# -- 1. decisions --------------------------------------------------------------------------------


def decision_ticks(pool: Pool, n: int, ticks: int, out: dict) -> None:
    """`ticks` 20 Hz ticks, one request of n rows each, deadline one tick; latencies into out."""
    payload = rows(n)
    futs = []
    t0 = time.monotonic()
    for i in range(ticks):
        due = t0 + i * TICK_S
        while time.monotonic() < due:
            time.sleep(min(0.005, max(0.0, due - time.monotonic())))
        futs.append(pool.submit(payload, time.monotonic() + TICK_S))
    for f in futs:
        f.wait(5)
        out.setdefault("lat", []).append(f.latency if f.ok else float("nan"))
        out.setdefault("outcomes", []).append(f.outcome.value if f.outcome else "pending")


def decisions(local: Pool, remote: Pool, sizes: list[int], ticks: int) -> list[dict]:
    table = []
    for n in sizes:
        acc = {"local pipe": {}, "broker": {}}
        for pool in (local, remote):  # warm-up: both at this size
            decision_ticks(pool, n, 5, {})
        block = max(5, ticks // 4)
        for _ in range(max(1, ticks // block)):  # alternating blocks: the busy machine weighs on both alike
            decision_ticks(local, n, block, acc["local pipe"])
            decision_ticks(remote, n, block, acc["broker"])
        for path, r in acc.items():
            lat = [x for x in r["lat"] if x == x]
            table.append(
                {
                    "npcs": n,
                    "path": path,
                    "requests": len(r["outcomes"]),
                    "p50_ms": pct(lat, 50) * 1e3,
                    "p99_ms": pct(lat, 99) * 1e3,
                    "on_time_share": r["outcomes"].count("on_time") / max(1, len(r["outcomes"])),
                }
            )
    return table


# -- 2. dialogue --------------------------------------------------------------------------------


def prompt(i: int) -> list[dict]:
    return [
        {"role": "system", "content": "You are Old Tam, a grumpy fishmonger in a harbour town."},
        {"role": "user", "content": f"Traveller {i}: what is the catch of the day, and what does it cost?"},
    ]


def dialogue_level(pool: Pool, n: int, tokens: int, first: int) -> dict:
    opened = time.monotonic()
    streams = [
        pool.open_stream(
            {"kind": "reply", "messages": prompt(first + i), "max_new_tokens": tokens, "seed": i, "ignore_eos": True}
        )
        for i in range(n)
    ]
    last: dict[int, float] = {}

    def poll() -> bool:
        now = time.monotonic()
        for s in streams:
            if s.take():
                last[s.sid] = now
        return all(s.done() for s in streams)

    while not pool.wait_for(poll, 0.002):
        pass
    poll()
    bad = [s for s in streams if s.end != "ok"]
    if bad:
        raise RuntimeError(f"{len(bad)} streams failed: {bad[0].error}")
    ttft = [s.first_at - s.opened_at for s in streams]
    per = [tokens / max(1e-9, last[s.sid] - s.first_at) for s in streams]
    wall = max(last.values()) - opened
    return {
        "conversations": n,
        "ttft_p50_ms": pct(ttft, 50) * 1e3,
        "ttft_p99_ms": pct(ttft, 99) * 1e3,
        "tok_s_per_conversation": statistics.mean(per),
        "tok_s_aggregate": n * tokens / wall,
    }


def dialogue(local: Pool, remote: Pool, tokens: int) -> list[dict]:
    table = []
    for pool in (local, remote):
        dialogue_level(pool, 1, 4, 0)  # warm-up
    k = 100
    for n in (1, 8):
        for path, pool in (("local pipe", local), ("broker", remote)):
            row = dialogue_level(pool, n, tokens, k)
            k += n
            table.append({"path": path, **row})
    return table


# -- 3. throughput ------------------------------------------------------------------------------


def throughput(pool: Pool, seconds: float, n: int = 1000, depth: int = 4) -> dict:
    payload = rows(n)
    done = 0
    end = time.monotonic() + seconds
    live = [pool.submit(payload, time.monotonic() + 2.0) for _ in range(depth)]
    t0 = time.monotonic()
    while time.monotonic() < end:
        live[0].wait(5)
        done += live[0].outcome is Outcome.ON_TIME or live[0].outcome is Outcome.LATE
        live = live[1:] + [pool.submit(payload, time.monotonic() + 2.0)]
    for f in live:
        f.wait(5)
    wall = time.monotonic() - t0
    return {"requests_s": done / wall, "rows_s": done * n / wall}


# -- 4. the fault run -----------------------------------------------------------------------------


def tick_loop(pool: Pool, seconds: float, n: int, fault=None) -> dict:
    """A 20 Hz loop that does what the server's tick does with the pool: submit, take answers."""
    payload = rows(n)
    inbox = Inbox()
    durations, outcomes = [], {}
    exceptions = 0
    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < seconds:
        due = t0 + i * TICK_S
        while time.monotonic() < due:
            time.sleep(min(0.005, max(0.0, due - time.monotonic())))
        if fault is not None:
            fault(time.monotonic() - t0)
        start = time.perf_counter()
        try:
            pool.submit(payload, time.monotonic() + TICK_S, inbox=inbox)
            for f in inbox.poll():
                outcomes[f.outcome.value] = outcomes.get(f.outcome.value, 0) + 1
        except Exception:
            exceptions += 1
        durations.append(time.perf_counter() - start)
        i += 1
    time.sleep(0.5)
    for f in inbox.poll():
        outcomes[f.outcome.value] = outcomes.get(f.outcome.value, 0) + 1
    return {
        "ticks": len(durations),
        "tick_p50_ms": pct(durations, 50) * 1e3,
        "tick_p99_ms": pct(durations, 99) * 1e3,
        "outcomes": outcomes,
        "exceptions": exceptions,
    }


def fault_run(broker: Broker, pool: Pool, seconds: float, n: int = 1000) -> dict:
    base = tick_loop(pool, seconds / 2, n)
    state = {"down": False, "kills": 0}

    def fault(t: float) -> None:  # down for 5 s every 20 s (from 5 s in)
        phase = (t - 5.0) % 20.0 if t >= 5.0 else -1
        want_down = 0 <= phase < 5.0
        if want_down and not state["down"]:
            broker.kill()
            state["down"] = True
            state["kills"] += 1
        elif not want_down and state["down"]:
            broker.start()
            state["down"] = False

    faulty = tick_loop(pool, seconds, n, fault)
    if state["down"]:
        broker.start()
    return {
        "no_faults": base,
        "faults": faulty,
        "broker_kills": state["kills"],
        "tick_p99_ratio": faulty["tick_p99_ms"] / max(1e-9, base["tick_p99_ms"]),
    }


# -- main -----------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description="Benchmark remote workers (MQTT) against local ones.")
    ap.add_argument("--ticks", type=int, default=60, help="ticks per size and path (decisions)")
    ap.add_argument("--sizes", default="100,1000,2000")
    ap.add_argument("--dialogue-model", default="tiny")
    ap.add_argument("--tokens", type=int, default=24)
    ap.add_argument("--throughput-s", type=float, default=5.0)
    ap.add_argument("--fault-s", type=float, default=60.0, help="length of the fault run (the no-fault run is half)")
    ap.add_argument("--device", default="cpu", help="the remote workers' device (cuda:0 on a GPU machine)")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: decisions,dialogue,throughput,faults")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "remote.json"))
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="npcworld-remote-bench-"))
    broker = Broker(tmp).start()
    procs: list[subprocess.Popen] = []
    pools: list[Pool] = []
    load_at_start = os.getloadavg()
    result: dict = {"args": vars(args)}
    try:
        policy_opts = ["--policy-module", POLICY["module"], "--policy-weights", POLICY["weights"]]
        procs.append(start_worker(broker.url, "bench-a", "decision", args, *policy_opts))
        local = Pool(
            PoolConfig(runner="npc.policy.model:PolicyRunner", runner_options=POLICY, workers=1, devices=["cpu"])
        ).start()
        pools.append(local)
        local.wait_ready(120)
        remote = remote_pool(broker.url, "decision")
        pools.append(remote)
        if "decisions" not in skip:
            result["decisions"] = decisions(local, remote, [int(x) for x in args.sizes.split(",")], args.ticks)
            print("\ndecision round trip, one request per 20 Hz tick, deadline 50 ms")
            print(f"{'NPCs':>6} {'path':<11} {'p50 ms':>8} {'p99 ms':>8} {'on time':>8}")
            for r in result["decisions"]:
                print(
                    f"{r['npcs']:>6} {r['path']:<11} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['on_time_share']:>8.1%}"
                )
        if "throughput" not in skip:
            one = throughput(remote, args.throughput_s)
            procs.append(start_worker(broker.url, "bench-b", "decision", args, *policy_opts))
            remote.wait_for(lambda: remote.stats.workers_ready >= 2, 120)
            two = throughput(remote, args.throughput_s)
            result["throughput"] = {"one_worker": one, "two_workers": two}
            print("\nthroughput, requests of 1,000 rows, 4 in flight")
            print(f"{'workers':>8} {'req/s':>8} {'rows/s':>10}")
            for k, r in (("1", one), ("2", two)):
                print(f"{k:>8} {r['requests_s']:>8.1f} {r['rows_s']:>10.0f}")
        if "faults" not in skip:
            result["faults"] = fault_run(broker, remote, args.fault_s)
            f = result["faults"]
            print(f"\nfault run: broker killed {f['broker_kills']}x for 5 s every 20 s over {args.fault_s:g} s")
            print(f"{'run':<10} {'ticks':>6} {'p50 ms':>8} {'p99 ms':>8} {'exceptions':>10}  outcomes")
            for k in ("no_faults", "faults"):
                r = f[k]
                print(
                    f"{k:<10} {r['ticks']:>6} {r['tick_p50_ms']:>8.3f} {r['tick_p99_ms']:>8.3f} "
                    f"{r['exceptions']:>10}  {r['outcomes']}"
                )
            print(f"tick p99 ratio (faults / none): {f['tick_p99_ratio']:.2f}x (target <= 1.1x)")
        if "dialogue" not in skip:
            procs.append(
                start_worker(
                    broker.url,
                    "bench-talk",
                    "dialogue",
                    args,
                    "--dialogue-model",
                    args.dialogue_model,
                    "--dialogue-threads",
                    "1",
                )
            )
            dlocal = Pool(
                PoolConfig(
                    runner="npc.dialogue.runner:DialogueRunner",
                    runner_options={"model": args.dialogue_model},
                    workers=1,
                    devices=["cpu"],
                    threads=1,
                    hang_timeout_s=60.0,
                    heartbeat_s=0.5,
                    start_timeout_s=300.0,
                )
            ).start()
            pools.append(dlocal)
            dlocal.wait_ready(300)
            dremote = remote_pool(broker.url, "dialogue", hang_timeout_s=60.0)
            pools.append(dremote)
            result["dialogue"] = dialogue(dlocal, dremote, args.tokens)
            print(f"\ndialogue ({args.dialogue_model} model, {args.tokens} tokens per reply)")
            print(f"{'convs':>5} {'path':<11} {'TTFT p50':>9} {'TTFT p99':>9} {'tok/s each':>10} {'tok/s all':>10}")
            for r in result["dialogue"]:
                print(
                    f"{r['conversations']:>5} {r['path']:<11} {r['ttft_p50_ms']:>9.1f} {r['ttft_p99_ms']:>9.1f} "
                    f"{r['tok_s_per_conversation']:>10.1f} {r['tok_s_aggregate']:>10.1f}"
                )
    finally:
        for pool in pools:
            pool.close()
        for proc in procs:
            stop(proc)
        broker.kill()
    result["machine"] = describe(load_at_start, device=args.device)
    out = Path(args.out)
    save(out, result, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
