"""Benchmark dialogue: continuous batching in a real pool worker vs plain
single-stream `model.generate`, on the same prompts, in the same run.

For 1, 4, 8 and 16 concurrent conversations (all opened at once, each a
different ~250-token prompt built like the game's: persona, scene, memory,
conversation), through the inference pool with the dialogue runner:
- time to first token (TTFT), p50 and p99: open_stream -> first piece
  reaching the pool's process (what the game sees);
- tokens/s per conversation (its tokens / its first-to-last piece time) and
  aggregate (all tokens / wall time from opening to the last end);
- the worker's resident memory (VmRSS, VmHWM) after the level.
Next to it, in this process with the same model, dtype and thread count:
plain `model.generate` one prompt at a time: TTFT (generate 1 token) and
tokens/s (generate N tokens, greedy, eos ignored).
Every reply is exactly `--tokens` tokens (eos ignored) so rates compare.

Usage: python bench/dialogue.py [--tokens 32] [--levels 1,4,8,16] [--dtype auto]
       [--model default] [--threads N] [--out bench/results/dialogue.json]
Prints a table and writes JSON. Measured, not asserted. Targets from the
issue (CPU): TTFT p50 < 300 ms for one conversation; at 8 conversations an
aggregate >= 4x the single-stream rate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from npc.dialogue import prompt as prompts  # noqa: E402
from npc.inference import Pool, PoolConfig  # noqa: E402
from npc.schema import Persona  # noqa: E402

PERSONA = Persona(
    who="A travelling merchant who settled at the market of the village of Brindle. Sells a bit of everything, "
        "from apples to maps, and trades gossip from the road for a good price.",
    knows=("prices of everything at the market", "gossip from the road", "which farmer has the best apples",
           "the old mill road", "the guard's patrol"),
    style="chatty, flattering, always selling")
LINES = ["Hello! What do you sell today?", "Have you heard any news from the road?", "Where can I find the smith?",
         "Is the tavern open tonight?", "Do you have a map of the village?", "What do the apples cost?",
         "Who is the guard at the gate?", "Tell me about the old mill.", "Can you give me a discount?",
         "What did you do before the market?", "Where does the bard play?", "Is it safe on the mill road?",
         "Do you know my name?", "What is your best item?", "When do you close?", "Any work for a traveller?"]


def prompt_for(i: int) -> list[dict]:
    scene = prompts.Scene(2, f"{9 + i % 8:02d}:{(i * 7) % 60:02d}", "market", "selling", ["Bo", "Cy", "the guard"])
    turns = [("player", "Good morning, merchant."), ("npc", "Good morning to you, friend! Have a look around."),
             ("player", "I might buy something later.")]
    facts = ["You met Ana on day 1.", "Ana said: I like apples", "Ana said: I'm from the coast"]
    return prompts.messages("Old Tam", PERSONA, scene, "Ana", facts, turns, LINES[i % len(LINES)], 200)


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q / 100 * (len(xs) - 1))))]


def rss(pid: int) -> dict:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS", "VmHWM")):
                k, v = line.split(":")
                out[k] = int(v.split()[0]) // 1024  # MiB
    except OSError:
        pass
    return out


def baseline(args, n_prompts: int) -> dict:
    """Plain single-stream model.generate, in this process."""
    import torch

    from npc.dialogue.model import load

    torch.set_num_threads(args.threads)
    model, tok = load(args.model, args.dtype, "cpu")
    ttft, rates, lens = [], [], []
    for i in range(n_prompts):
        text = tok.apply_chat_template(prompt_for(i), tokenize=False, add_generation_prompt=True)
        ids = tok(text, return_tensors="pt", add_special_tokens=False)
        lens.append(ids["input_ids"].shape[1])
        with torch.inference_mode():
            if i == 0:
                model.generate(**ids, max_new_tokens=2, do_sample=False)  # warm-up
            t0 = time.perf_counter()
            model.generate(**ids, max_new_tokens=1, do_sample=False)
            ttft.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            out = model.generate(**ids, max_new_tokens=args.tokens, min_new_tokens=args.tokens, do_sample=False)
            el = time.perf_counter() - t0
        rates.append((out.shape[1] - ids["input_ids"].shape[1]) / el)
    del model
    return {"prompts": n_prompts, "prompt_tokens_mean": statistics.mean(lens), "ttft_p50_ms": pct(ttft, 50) * 1e3,
            "ttft_p99_ms": pct(ttft, 99) * 1e3, "tok_s": statistics.mean(rates)}


def level(pool: Pool, n: int, args) -> dict:
    opened = time.monotonic()
    streams = [pool.open_stream({"kind": "reply", "messages": prompt_for(i), "max_new_tokens": args.tokens,
                                 "temperature": 0.7, "seed": i, "ignore_eos": True}) for i in range(n)]
    last: dict[int, float] = {}
    counts: dict[int, int] = {}

    def poll() -> bool:
        now = time.monotonic()
        for s in streams:
            got = len(s.take())
            if got:
                counts[s.sid] = counts.get(s.sid, 0) + got
                last[s.sid] = now
        return all(s.done() for s in streams)

    while not pool.wait_for(poll, 0.002):
        pass
    poll()
    wall = max(last.values()) - opened
    bad = [s for s in streams if s.end != "ok"]
    if bad:
        raise RuntimeError(f"{len(bad)} streams failed: {bad[0].error}")
    ttft = [s.first_at - s.opened_at for s in streams]
    per = [args.tokens / max(1e-9, last[s.sid] - s.first_at) for s in streams]
    pid = pool.workers()[0].pid
    return {"conversations": n, "ttft_p50_ms": pct(ttft, 50) * 1e3, "ttft_p99_ms": pct(ttft, 99) * 1e3,
            "tok_s_per_conversation": statistics.mean(per), "tok_s_aggregate": n * args.tokens / wall,
            "wall_s": wall, "worker_mem_mib": rss(pid)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--levels", default="1,4,8,16")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--model", default="default")
    ap.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                    help="torch threads, for the worker and the baseline alike (default: cores - 1)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "dialogue.json"))
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    load = os.getloadavg()
    print(f"dialogue bench: model {args.model}, dtype {args.dtype}, {args.threads} thread(s), {args.tokens} tokens "
          f"per reply, {os.cpu_count()} cores, load average {load[0]:.2f}", flush=True)
    t0 = time.monotonic()
    pool = Pool(PoolConfig(runner="npc.dialogue.runner:DialogueRunner",
                           runner_options={"model": args.model, "dtype": args.dtype, "max_new_tokens": args.tokens},
                           workers=1, devices=["cpu"], threads=args.threads, max_streams=max(levels),
                           hang_timeout_s=120.0, start_timeout_s=600.0)).start()
    if not pool.wait_ready(600):
        print("worker did not start:", pool.workers(), file=sys.stderr)
        return 1
    start_s = time.monotonic() - t0
    results = []
    try:
        level(pool, 1, args)  # warm-up
        for n in levels:
            r = level(pool, n, args)
            results.append(r)
            print(f"  {n:>2} conversations: TTFT p50 {r['ttft_p50_ms']:7.0f} ms  p99 {r['ttft_p99_ms']:7.0f} ms  "
                  f"{r['tok_s_per_conversation']:6.1f} tok/s each  {r['tok_s_aggregate']:6.1f} tok/s aggregate  "
                  f"worker {r['worker_mem_mib']}", flush=True)
    finally:
        pool.close()
    base = baseline(args, min(8, max(levels)))
    print(f"  plain model.generate, single stream: TTFT p50 {base['ttft_p50_ms']:.0f} ms  "
          f"p99 {base['ttft_p99_ms']:.0f} ms  {base['tok_s']:.1f} tok/s  "
          f"(prompts of {base['prompt_tokens_mean']:.0f} tokens)", flush=True)
    print()
    print("| conversations | TTFT p50 ms | TTFT p99 ms | tok/s per conv | tok/s aggregate | x single-stream generate "
          "| worker RSS MiB |")
    print("|---|---|---|---|---|---|---|")
    print(f"| generate (1) | {base['ttft_p50_ms']:.0f} | {base['ttft_p99_ms']:.0f} | {base['tok_s']:.1f} | "
          f"{base['tok_s']:.1f} | 1.00 | - |")
    for r in results:
        print(f"| {r['conversations']} | {r['ttft_p50_ms']:.0f} | {r['ttft_p99_ms']:.0f} | "
              f"{r['tok_s_per_conversation']:.1f} | {r['tok_s_aggregate']:.1f} | "
              f"{r['tok_s_aggregate'] / base['tok_s']:.2f} | {r['worker_mem_mib'].get('VmRSS', '?')} |")
    out = {"machine": {"platform": platform.platform(), "cores": os.cpu_count(), "load_average_at_start": load,
                       "load_average_at_end": os.getloadavg()},
           "model": args.model, "dtype": args.dtype, "threads": args.threads, "tokens_per_reply": args.tokens,
           "worker_start_s": start_s, "single_stream_generate": base, "continuous_batching": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
