"""Benchmark the inference pool on its own (no world, no policy yet).

1. transport: round trip of one request through an echo worker (nothing to
   compute), so the time is the pool's own overhead: submit, engine thread,
   msgpack over the socket, worker loop and back. Sequential single requests,
   and a tick's worth (256) submitted at once (amortised per request), for a
   few payload sizes. Also what the calling thread pays per submit.
2. batching: 1,000 requests to a small MLP (64 -> 256 -> 256 -> 32) as one
   batched forward pass vs one call per request (max_batch=1), through the
   pool, end to end and compute only (time inside the runner); ratios.
3. load: a 20 Hz tick loop submits rate/20 requests per tick to the MLP
   worker with a deadline of `budget` ms, polls its inbox each tick, and
   records every outcome: latency p50/p99 of answered requests, shares on
   time / late / dropped / failed, mean batch size, and the tick thread's own
   cost (submit + poll) p99.
4. recovery: SIGKILL the busy worker: how long until its request fails, and
   until a new worker is ready (echo; MLP, which imports torch).

Usage: python bench/pool.py [--quick] [--duration 3] [--out bench/results/pool.json]
Prints a table and writes JSON. This process never imports torch (as the
game server must not); only the workers do.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
from machine import describe, save  # bench/machine.py (this script's folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from npc.inference import Inbox, Outcome, Pool, PoolConfig  # noqa: E402

TICK_RATE = 20
MLP = {"in_dim": 64, "hidden": 256, "out_dim": 32, "seed": 0, "layers": 2}
MLP_RUNNER = "npc.inference.testing:tiny_mlp"
WAIT = 60.0


def ms(x: float) -> float:
    return x * 1e3


def pct(values, q) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def echo_pool(**cfg) -> Pool:
    pool = Pool(PoolConfig(workers=1, threads=1, max_wait_s=0.0, **cfg)).start()
    assert pool.wait_ready(WAIT), pool.workers()
    return pool


def mlp_pool(**cfg) -> Pool:
    pool = Pool(PoolConfig(runner=MLP_RUNNER, runner_options=MLP, workers=1, threads=1, **cfg)).start()
    assert pool.wait_ready(WAIT), pool.workers()
    return pool


# -- 1. transport ----------------------------------------------------------------------


def transport(n_single: int, n_bursts: int) -> list[dict]:
    payloads = {
        "small dict": {"npc": 1234, "action": 3, "target": [10.5, 20.25]},
        "64 x f32": np.zeros(64, np.float32),
        "16 KiB f32": np.zeros(4096, np.float32),
    }
    rows = []
    pool = echo_pool(max_batch=256)
    try:
        for name, payload in payloads.items():
            for _ in range(50):  # warm up
                pool.submit(payload, time.monotonic() + WAIT).wait(WAIT)
            rtt, submit = [], []
            for _ in range(n_single):
                t0 = time.perf_counter()
                fut = pool.submit(payload, time.monotonic() + WAIT)
                t1 = time.perf_counter()
                fut.wait(WAIT)
                rtt.append(time.perf_counter() - t0)
                submit.append(t1 - t0)
                assert fut.outcome is Outcome.ON_TIME
            per_req, submit_many = [], []
            for _ in range(n_bursts):
                t0 = time.perf_counter()
                futs = pool.submit_many([payload] * 256, time.monotonic() + WAIT)
                t1 = time.perf_counter()
                for f in futs:
                    f.wait(WAIT)
                per_req.append((time.perf_counter() - t0) / 256)
                submit_many.append((t1 - t0) / 256)
            rows.append(
                {
                    "payload": name,
                    "payload_bytes": int(getattr(payload, "nbytes", 0)) or len(str(payload)),
                    "single_rtt_us_p50": pct(rtt, 50) * 1e6,
                    "single_rtt_us_p99": pct(rtt, 99) * 1e6,
                    "submit_us_p50": pct(submit, 50) * 1e6,
                    "burst256_us_per_request_p50": pct(per_req, 50) * 1e6,
                    "burst256_submit_us_per_request_p50": pct(submit_many, 50) * 1e6,
                }
            )
    finally:
        pool.close()
    return rows


# -- 2. batched forward vs one call per request --------------------------------------------


def batching(n: int, repeats: int) -> dict:
    x = np.random.default_rng(0).standard_normal((n, MLP["in_dim"])).astype(np.float32)
    rows = list(x)
    out = {"requests": n}
    for label, max_batch in (("batched", 1024), ("per_request", 1)):
        pool = mlp_pool(max_batch=max_batch, max_wait_s=0.002)
        try:
            pool.submit_many(rows[:64], time.monotonic() + WAIT)[-1].wait(WAIT)  # warm up
            walls, computes = [], []
            for _ in range(repeats):
                c0 = pool.stats.compute_s
                t0 = time.perf_counter()
                futs = pool.submit_many(rows, time.monotonic() + WAIT)
                for f in futs:
                    f.wait(WAIT)
                walls.append(time.perf_counter() - t0)
                computes.append(pool.stats.compute_s - c0)
                assert all(f.ok for f in futs)
            out[f"{label}_wall_ms"] = ms(float(np.median(walls)))
            out[f"{label}_compute_ms"] = ms(float(np.median(computes)))
            out[f"{label}_requests_per_s"] = n / float(np.median(walls))
        finally:
            pool.close()
    out["throughput_ratio_end_to_end"] = out["per_request_wall_ms"] / out["batched_wall_ms"]
    out["throughput_ratio_compute"] = out["per_request_compute_ms"] / out["batched_compute_ms"]
    return out


# -- 3. load ---------------------------------------------------------------------------


def load(rate: int, budget_s: float, duration_s: float, max_batch: int, matrix: bool = False) -> dict:
    """matrix: each tick sends one request holding all its rows (rate/20, 64) instead of one per row."""
    pool = mlp_pool(max_batch=max_batch)
    per_tick = max(1, rate // TICK_RATE)
    rng = np.random.default_rng(1)
    obs = rng.standard_normal((per_tick, MLP["in_dim"])).astype(np.float32)
    rows = [obs] if matrix else list(obs)
    inbox = Inbox()
    finished, tick_cost = [], []
    period = 1.0 / TICK_RATE
    warm_ticks = int(0.5 * TICK_RATE)
    ticks = warm_ticks + int(duration_s * TICK_RATE)
    s0 = None
    try:
        next_slot = time.monotonic()
        for t in range(ticks):
            if t == warm_ticks:
                s0 = dict(pool.stats.snapshot())
                inbox.poll()
            t0 = time.perf_counter()
            done = inbox.poll()
            pool.submit_many(rows, time.monotonic() + budget_s, inbox=inbox)
            t1 = time.perf_counter()
            if t >= warm_ticks:
                finished.extend(done)
                tick_cost.append(t1 - t0)
            next_slot += period
            time.sleep(max(0.0, next_slot - time.monotonic()))
        end = time.monotonic() + budget_s + 5.0
        pool.wait_for(lambda: pool.stats.queued == 0 and pool.stats.in_flight == 0, max(0.0, end - time.monotonic()))
        finished.extend(inbox.poll())
        s1 = pool.stats.snapshot()
    finally:
        pool.close()
    total = len(finished)
    counts = {o: sum(1 for f in finished if f.outcome is o) for o in Outcome}
    lat = [f.latency for f in finished if f.ok]
    batches = s1["batches"] - s0["batches"]
    return {
        "rate_per_s": rate,
        "budget_ms": ms(budget_s),
        "max_batch": max_batch,
        "matrix": matrix,
        "requests": total,
        "latency_ms_p50": ms(pct(lat, 50)),
        "latency_ms_p99": ms(pct(lat, 99)),
        **{f"share_{o.value}": counts[o] / max(1, total) for o in Outcome},
        "mean_batch": (s1["batched_requests"] - s0["batched_requests"]) / max(1, batches),
        "tick_cost_ms_p50": ms(pct(tick_cost, 50)),
        "tick_cost_ms_p99": ms(pct(tick_cost, 99)),
    }


# -- 4. recovery -------------------------------------------------------------------------


def recovery(runner: str, options: dict, busy: bool) -> dict:
    """SIGKILL the worker (busy with a request that never ends, or idle):
    time until that request fails, and until a new worker is ready."""
    pool = Pool(PoolConfig(runner=runner, runner_options=options, workers=1, threads=1)).start()
    try:
        assert pool.wait_ready(WAIT)
        pid = pool.workers()[0].pid
        fut = None
        if busy:
            fut = pool.submit({"op": "hang"}, time.monotonic() + WAIT)
            pool.wait_for(lambda: pool.stats.in_flight == 1, WAIT)
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        if fut is not None:
            fut.wait(WAIT)
        pool.wait_for(lambda: pool.workers()[0].pid not in (None, pid) and pool.stats.workers_ready == 1, WAIT)
        ready_at = time.monotonic()
        return {
            "runner": runner.rsplit(":", 1)[-1],
            "busy": busy,
            "outcome": fut.outcome.value if fut else None,
            "request_failed_after_ms": ms(fut.finished_at - t0) if fut else None,
            "worker_ready_again_after_ms": ms(ready_at - t0),
        }
    finally:
        pool.close()


def main() -> None:
    ap = argparse.ArgumentParser(description="Benchmark the inference pool.")
    ap.add_argument("--quick", action="store_true", help="fewer samples and shorter load runs")
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per load run (after 0.5 s warm-up)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "pool.json"))
    args = ap.parse_args()
    quick = args.quick
    duration = 1.0 if quick else args.duration

    print("1. transport: echo worker, round trip per request (us)")
    tr = transport(300 if quick else 2000, 10 if quick else 50)
    head = (
        f"{'payload':>12} {'bytes':>6} | {'single p50':>10} {'p99':>7} | {'burst/req':>9} | {'submit':>6} {'burst':>6}"
    )
    print(head + "\n" + "-" * len(head))
    for r in tr:
        print(
            f"{r['payload']:>12} {r['payload_bytes']:>6} | {r['single_rtt_us_p50']:>10.0f} "
            f"{r['single_rtt_us_p99']:>7.0f} | {r['burst256_us_per_request_p50']:>9.1f} | "
            f"{r['submit_us_p50']:>6.1f} {r['burst256_submit_us_per_request_p50']:>6.2f}"
        )
    print(
        "single: one request at a time; burst/req: 256 submitted at once, wall time / 256;\n"
        "submit: what the calling thread pays per request (single, and within submit_many)\n"
    )

    print("2. batching: 1,000 requests to an MLP 64-256-256-32, one worker, 1 thread")
    bt = batching(1000, 3 if quick else 7)
    print(f"   one batched pass:   {bt['batched_wall_ms']:8.1f} ms wall, {bt['batched_compute_ms']:7.1f} ms compute")
    print(
        f"   one call / request: {bt['per_request_wall_ms']:8.1f} ms wall, "
        f"{bt['per_request_compute_ms']:7.1f} ms compute"
    )
    print(
        f"   throughput ratio batched/per-request: {bt['throughput_ratio_end_to_end']:.0f}x end to end, "
        f"{bt['throughput_ratio_compute']:.0f}x compute only\n"
    )

    print(f"3. load: 20 Hz ticks, MLP worker (1 thread), {duration:g} s per run")
    cases = [
        (2_000, 0.050, 1024, False),
        (10_000, 0.050, 1024, False),
        (40_000, 0.050, 1024, False),
        (10_000, 0.010, 1024, False),
        (40_000, 0.010, 1024, False),
        (4_000, 0.050, 1, False),
        (10_000, 0.050, 1024, True),
        (40_000, 0.010, 1024, True),
    ]
    if quick:
        cases = [cases[0], cases[1], cases[5], cases[6]]
    lr = [load(rate, budget, duration, mb, matrix) for rate, budget, mb, matrix in cases]
    head = (
        f"{'rows/s':>6} {'budget':>6} {'maxb':>5} {'req':>6} | {'p50 ms':>6} {'p99 ms':>6} | {'on time':>7} "
        f"{'late':>6} {'dropped':>7} {'failed':>6} | {'batch':>5} | {'tick p50':>8} {'p99':>5}"
    )
    print(head + "\n" + "-" * len(head))
    for r in lr:
        print(
            f"{r['rate_per_s']:>6} {r['budget_ms']:>4.0f}ms {r['max_batch']:>5} "
            f"{'matrix' if r['matrix'] else 'row':>6} | {r['latency_ms_p50']:>6.2f} "
            f"{r['latency_ms_p99']:>6.2f} | {r['share_on_time']:>7.2%} {r['share_late']:>6.2%} "
            f"{r['share_dropped']:>7.2%} {r['share_failed']:>6.2%} | {r['mean_batch']:>5.0f} | "
            f"{r['tick_cost_ms_p50']:>8.2f} {r['tick_cost_ms_p99']:>5.2f}"
        )
    print(
        "req: one request per row, or one per tick holding the tick's rows as a matrix;\n"
        "latency: submit to result, answered requests; batch: mean requests per batch;\n"
        "tick: the tick thread's own cost per tick (poll inbox + submit_many), ms\n"
    )

    print("4. recovery: SIGKILL a worker (ScriptedRunner: busy with a request; MLP: idle, restart imports torch)")
    rc = [recovery("npc.inference.testing:ScriptedRunner", {}, busy=True), recovery(MLP_RUNNER, MLP, busy=False)]
    for r in rc:
        failed = f"its request {r['outcome']} after {r['request_failed_after_ms']:.1f} ms, " if r["busy"] else "idle, "
        print(f"   {r['runner']:>14}: {failed}worker ready again after {r['worker_ready_again_after_ms']:.0f} ms")

    out = Path(args.out)
    save(
        out,
        {
            "bench": "pool",
            "machine": describe(),
            "quick": quick,
            "torch_in_bench_process": "torch" in sys.modules,
            "transport": tr,
            "batching": bt,
            "load": lr,
            "recovery": rc,
        },
        indent=2,
    )


if __name__ == "__main__":
    main()
