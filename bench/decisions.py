"""Benchmark NPC decisions from the policy on the inference pool, against the
built-in (scripted) behaviour alone, in one run.

1. load: for each NPC count (default 100, 1,000, 5,000, 10,000: the shipped NPC
   files without hooks multiplied up, with 1 stand-in player per 20 NPCs walking about), a
   real-time 20 Hz loop runs the cast and the world (cast.tick + world.step;
   no sockets) for `--seconds`, first with the built-in behaviour only, then
   with the policy deciding through the pool (each NPC re-thinks every
   500 ms; a tick's due NPCs form ONE request, deadline one tick). Reported:
   tick p50/p99 for both, decision latency p50/p99, the shares of decisions
   on time / late / dropped / failed, rows per request and requests per
   batch, and the pool's overhead per request (latency minus compute).
2. batching: one forward pass over 1,000 observation rows against 1,000 calls
   of one row (max_batch=1), through the pool: wall time and compute only.
3. faults: 2,000 NPCs; a worker is SIGKILLed every 5 s for `--fault-seconds`
   (default 60), against a run of the same length without faults: tick p99
   ratio, requests failed, and any exception in the tick.

Usage: python bench/decisions.py [--sizes 100,1000,5000,10000] [--seconds 10]
       [--fault-seconds 60] [--out bench/results/decisions.json]
Prints a table and writes JSON. This process never imports torch; only the
pool's workers do. Timings are of this machine; compare only within a run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from npc.minds.cast import Cast  # noqa: E402
from npc.inference import Inbox, Pool, PoolConfig  # noqa: E402
from npc.policy.observe import OBS_DIM, A, T  # noqa: E402
from npc.policy.decider import start_decider  # noqa: E402
from world.sim import PLAYER, World, WorldConfig  # noqa: E402
from world.tilemap import load_map  # noqa: E402

TICK_RATE = 20
WEIGHTS = ROOT / "assets" / "policy" / "policy.safetensors"


def ms(x: float) -> float:
    return round(x * 1000.0, 3)


def pct(values, q) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def build_world(npcs: int, seed: int = 0):
    world = World(load_map(str(ROOT / "assets" / "maps" / "default.tmj")),
                  WorldConfig(seed=seed, max_entities=max(65536, npcs * 2)))
    cast = Cast(world, str(ROOT / "assets" / "npcs"), tick_rate=TICK_RATE, think_s=0.5)
    cast.load_all()
    # Multiplied up: the files without hooks (a hook decides instead of the policy, and its cost
    # belongs to bench/world-style hook measurements, not here); every file keeps its own NPCs.
    ids = sorted(k for k, d in cast.defs.items() if not d.hooks) or sorted(cast.defs)
    i = 0
    while len(cast.minds) < npcs:
        cast.spawn(ids[i % len(ids)])
        i += 1
    rng = np.random.default_rng(seed)
    places = world.places
    players = [world.spawn(PLAYER, f"p{k}", "#fff", place=places[int(rng.integers(len(places)))])
               for k in range(max(1, npcs // 20))]
    return world, cast, players, rng


def run_loop(world, cast, players, rng, seconds: float, on_tick=None) -> dict:
    """A real-time 20 Hz loop; an overrun tick starts the next one at once (no catch-up burst)."""
    dt = 1.0 / TICK_RATE
    durations, late, errors = [], [], []
    n_internal = sum(1 for r in cast.reports if r.kind == "internal")
    end = time.perf_counter() + seconds
    next_at = time.perf_counter()
    tick = 0
    while next_at < end:
        now = time.perf_counter()
        if now < next_at:
            time.sleep(next_at - now)
        t0 = time.perf_counter()
        late.append(max(0.0, t0 - next_at))  # how late the tick started (the CPU was busy elsewhere)
        try:
            if tick % TICK_RATE == 0:
                for pid in players:
                    if rng.random() < 0.25:
                        a = rng.uniform(0, 2 * math.pi)
                        world.set_direction(pid, math.cos(a), math.sin(a)) if rng.random() < 0.6 else \
                            world.set_direction(pid, 0.0, 0.0)
            cast.tick()
            world.step(dt)
        except Exception as e:          # counted, never expected
            errors.append(f"{type(e).__name__}: {e}")
        t1 = time.perf_counter()
        durations.append(t1 - t0)
        if on_tick:
            on_tick(t1)
        tick += 1
        next_at = max(next_at + dt, time.perf_counter() if t1 - next_at > dt else next_at + dt)
    internal = sum(1 for r in cast.reports if r.kind == "internal") - n_internal
    return {"ticks": len(durations), "tick_p50_ms": ms(pct(durations, 50)), "tick_p99_ms": ms(pct(durations, 99)),
            "start_late_p99_ms": ms(pct(late, 99)),
            "overruns": sum(d > dt for d in durations), "exceptions": errors[:5] + (
                [f"{internal} internal errors reported by the cast"] if internal else [])}


def wait_ready(decider, timeout: float = 120.0) -> None:
    if not decider.pool.wait_ready(timeout):
        raise RuntimeError(f"policy worker not ready after {timeout} s: {decider.pool.workers()}")


def load(npcs: int, seconds: float) -> dict:
    world, cast, players, rng = build_world(npcs)
    run_loop(world, cast, players, rng, 1.0)                      # warm-up
    scripted = run_loop(world, cast, players, rng, seconds)
    decider = start_decider(world, weights=str(WEIGHTS), budget_s=1.0 / TICK_RATE)
    try:
        wait_ready(decider)
        cast.policy = decider
        run_loop(world, cast, players, rng, 1.0)                  # warm-up
        decider.decisions = {k: 0 for k in decider.decisions}
        decider.latencies.clear()
        decider.batch_rows.clear()
        s0 = decider.pool.stats.snapshot()
        policy = run_loop(world, cast, players, rng, seconds)
        cast.tick()                                                # collect the last answers
        s1 = decider.pool.stats.snapshot()
    finally:
        cast.policy = None
        decider.pool.close()
    d = decider.decisions
    total = sum(v for k, v in d.items())
    lat = np.asarray(decider.latencies)
    batches = s1["batches"] - s0["batches"]
    requests = s1["batched_requests"] - s0["batched_requests"]
    compute = (s1["compute_s"] - s0["compute_s"]) / max(1, batches)
    return {
        "npcs": npcs, "players": len(players), "seconds": seconds,
        "scripted": scripted, "policy": policy,
        "tick_p99_ratio": round(policy["tick_p99_ms"] / scripted["tick_p99_ms"], 3),
        "decisions": total, "outcomes": d,
        "share": {k: round(v / total, 5) if total else None for k, v in d.items()},
        "latency_p50_ms": ms(pct(lat, 50)), "latency_p99_ms": ms(pct(lat, 99)),
        "rows_per_request_mean": round(float(np.mean(decider.batch_rows)), 1) if decider.batch_rows else 0,
        "rows_per_request_max": int(max(decider.batch_rows, default=0)),
        "requests_per_batch_mean": round(requests / max(1, batches), 2),
        "compute_per_batch_ms": ms(compute),
        "overhead_per_request_ms": ms(pct(lat, 50) - compute) if len(lat) else None,
    }


def batching(n: int = 1000, repeats: int = 5) -> dict:
    """One request of n rows vs n one-row requests served one per batch, through the pool."""
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((n, OBS_DIM)).astype(np.float32)
    mask = np.ones((n, A), bool)
    tmask = np.ones((n, T), bool)
    out = {}
    for name, max_batch, rows in (("batched", 256, n), ("per_npc", 1, 1)):
        pool = Pool(PoolConfig(runner="npc.policy.model:PolicyRunner", runner_options={"weights": str(WEIGHTS)},
                               workers=1, devices=["cpu"], max_batch=max_batch, max_wait_s=0.0)).start()
        try:
            pool.wait_ready(120)
            walls, computes = [], []
            for _ in range(repeats):
                c0 = pool.stats.compute_s
                t0 = time.perf_counter()
                inbox = Inbox()
                reqs = [{"obs": obs[i:i + rows], "mask": mask[i:i + rows], "tmask": tmask[i:i + rows]}
                        for i in range(0, n, rows)]
                futs = pool.submit_many(reqs, time.monotonic() + 60, inbox)
                for f in futs:
                    f.wait(60)
                walls.append(time.perf_counter() - t0)
                computes.append(pool.stats.compute_s - c0)
            out[name] = {"wall_ms": ms(min(walls)), "compute_ms": ms(min(computes))}
        finally:
            pool.close()
    out["rows"] = n
    out["ratio_wall"] = round(out["per_npc"]["wall_ms"] / out["batched"]["wall_ms"], 1)
    out["ratio_compute"] = round(out["per_npc"]["compute_ms"] / max(1e-9, out["batched"]["compute_ms"]), 1)
    return out


def faults(npcs: int, seconds: float, every: float = 5.0) -> dict:
    world, cast, players, rng = build_world(npcs, seed=1)
    decider = start_decider(world, weights=str(WEIGHTS), budget_s=1.0 / TICK_RATE)
    try:
        wait_ready(decider)
        cast.policy = decider
        run_loop(world, cast, players, rng, 1.0)
        calm = run_loop(world, cast, players, rng, seconds)
        d0 = dict(decider.decisions)
        s0 = decider.pool.stats.snapshot()
        kills = []
        state = {"next": time.perf_counter() + every}

        def killer(now: float) -> None:
            if now >= state["next"]:
                state["next"] = now + every
                for w in decider.pool.workers():
                    if w.pid and w.state in ("idle", "busy"):
                        os.kill(w.pid, signal.SIGKILL)
                        kills.append(w.pid)
                        break

        stormy = run_loop(world, cast, players, rng, seconds, on_tick=killer)
        cast.tick()
        s1 = decider.pool.stats.snapshot()
    finally:
        cast.policy = None
        decider.pool.close()
    d = {k: decider.decisions[k] - d0[k] for k in d0}
    return {
        "npcs": npcs, "seconds": seconds, "kill_every_s": every, "kills": len(kills),
        "without_faults": calm, "with_faults": stormy,
        "tick_p99_ratio": round(stormy["tick_p99_ms"] / calm["tick_p99_ms"], 3),
        "decisions": d, "requests_failed": s1["failed"] - s0["failed"],
        "requests_dropped": s1["dropped"] - s0["dropped"],
        "worker_deaths": s1["worker_deaths"] - s0["worker_deaths"],
        "exceptions": stormy["exceptions"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description="Benchmark NPC decisions from the policy on the inference pool.")
    ap.add_argument("--sizes", default="100,1000,5000,10000", help="NPC counts, comma-separated")
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds per load run and mode (after warm-up)")
    ap.add_argument("--fault-seconds", type=float, default=60.0, help="length of the fault run (and of its baseline)")
    ap.add_argument("--fault-npcs", type=int, default=2000)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "decisions.json"))
    args = ap.parse_args()
    if not WEIGHTS.is_file():
        sys.exit(f"no policy weights at {WEIGHTS}: run `npcworld train-policy` first")
    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
              "tick_rate": TICK_RATE, "think_ms": 500, "budget_ms": 1000 / TICK_RATE, "load": []}
    print(f"{'NPCs':>6} | {'tick p50/p99 scripted':>21} | {'tick p50/p99 policy':>19} | {'p99 ratio':>9} | "
          f"{'lat p50/p99 ms':>14} | {'on time':>8} | {'late':>6} | {'dropped':>7} | {'failed':>6} | "
          f"{'rows/req':>8} | {'ovh ms':>6}", flush=True)
    for n in [int(x) for x in args.sizes.split(",") if x]:
        r = load(n, args.seconds)
        result["load"].append(r)
        s, p, sh = r["scripted"], r["policy"], r["share"]
        print(f"{n:>6} | {s['tick_p50_ms']:>9.2f} / {s['tick_p99_ms']:>8.2f} | {p['tick_p50_ms']:>8.2f} / "
              f"{p['tick_p99_ms']:>8.2f} | {r['tick_p99_ratio']:>9.2f} | {r['latency_p50_ms']:>6.2f} / "
              f"{r['latency_p99_ms']:>5.2f} | {sh['on_time']:>8.2%} | {sh['late']:>6.2%} | {sh['dropped']:>7.2%} | "
              f"{sh['failed']:>6.2%} | {r['rows_per_request_mean']:>8.1f} | {r['overhead_per_request_ms']:>6.2f}",
              flush=True)
    b = result["batching"] = batching()
    print(f"\nbatching, {b['rows']} rows: one batched forward {b['batched']['wall_ms']:.1f} ms wall "
          f"({b['batched']['compute_ms']:.1f} ms compute) vs one call per NPC {b['per_npc']['wall_ms']:.1f} ms "
          f"({b['per_npc']['compute_ms']:.1f} ms): x{b['ratio_wall']} wall, x{b['ratio_compute']} compute", flush=True)
    if args.fault_seconds > 0:
        f = result["faults"] = faults(args.fault_npcs, args.fault_seconds)
        print(f"\nfaults, {f['npcs']} NPCs, {f['seconds']:.0f} s, a worker killed every {f['kill_every_s']:.0f} s "
              f"({f['kills']} kills): tick p99 {f['with_faults']['tick_p99_ms']:.2f} ms vs "
              f"{f['without_faults']['tick_p99_ms']:.2f} ms without (x{f['tick_p99_ratio']}); requests failed "
              f"{f['requests_failed']}, dropped {f['requests_dropped']}; decisions {f['decisions']}; "
              f"exceptions in the tick: {f['exceptions'] or 'none'}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
