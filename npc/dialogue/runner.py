"""The dialogue runner: a streaming runner (npc/inference/runners.py) that
serves many conversations on one model with continuous batching.

Requests (payloads; msgpack types):
    {"kind": "reply", "messages": [{"role", "content"}, ...],
     "max_new_tokens": int, "max_chars": int, "temperature": float, "seed": int,
     "ignore_eos": bool (benchmarks: exactly max_new_tokens), "candidates": int (1..MAX_CANDIDATES),
     "head": {"key", "messages", "chars"} (optional: the start every prompt of this NPC shares, head.py)}
        -> text deltas (str), the last one final; with candidates > 1, pieces
           {"n": candidate, "text": delta, "end": bool} (the last one final once
           every candidate has ended). Candidates are sampled with their own
           seeds and decoded in the running batch as rows of their own: the
           first is prefilled, the others then start from its prompt's cache
           (the prefix cache), so n candidates cost one prefill and n rows.
    {"kind": "head", "messages": [...], "head": {"key", "messages", "chars"}}
        -> one final piece {"head": tokens held, "prefilled": tokens computed}: a prefill-only
           request (head.Warmer): the head of these messages goes into the head cache, so the
           NPC's first reply prefills only its tail. Low priority: it runs only in a step with
           nothing else to do (no reply joining or decoding), one a step; held already: nothing.
    {"kind": "stats"} -> one final piece: the runner's counters (tests, benchmarks; `stats`).
    {"kind": "choose", "messages": [...], "options": [str, ...], "prior": [...] (optional messages)}
        -> one final piece {"choice": index, "scores": [mean log-prob per option]}; with
           "prior", the options are also scored after those messages (a content-free
           exchange) and "scores" are the differences: what this exchange adds to each
           option over its own prior likelihood (contextual calibration). A prompt and
           option longer than a row (max_prompt_tokens + max_new_tokens) is refused at add,
           with the sizes: a reply always fits (its prompt is trimmed to max_prompt_tokens).

The running batch: the replies in decode, one row each, held by an engine
(the tensors; the runner keeps the requests, the step policy and sampling):
- "lean" (lean.py), the default for Llama-family models: fused weights, one
  static KV slab, RoPE tables made once, CUDA graphs on a GPU;
- "transformers" (hfengine.py): the model's own forward over transformers
  cache objects, for any causal LM transformers loads.
`engine="auto"` picks lean where the model allows it. One step is either
- a prefill of the replies that joined since the last step (up to
  `prefill_tokens` new prompt tokens; the rest wait a step), padded to one
  batch, which yields their first tokens; they then join the running batch, or
- one decode forward for every running reply (B x 1 tokens), which yields one
  token each.
Prefills go first so that a new conversation's time to first token does not
wait for the others' replies, but the running replies never wait longer than
`max_stall_s` for their next token (then a decode step goes first; after a
decode, a waiting joiner always gets the next step), so a burst of joiners
slows the streams already playing instead of freezing them. A reply that
finishes (end-of-turn token, max_new_tokens, max_chars, the model's context)
or is cancelled leaves the batch at once (its row is freed).

Prefix cache (kvcache.PrefixCache): the keys and values of recent prompts
are kept (up to `prefix_cache_tokens`), and a joiner starts from the longest
stored prefix of its prompt, computing only the rest. Prompts of one NPC
start with the same persona, and a conversation's next prompt with the last
one, so this cuts the time to first token and the prefill work of a burst.

Head cache (kvcache.HeadCache): a request may name its NPC's head (head.py:
the start every prompt of that NPC shares, up to the first word about the
player); its keys and values are kept per NPC (up to `head_cache` NPCs), apart
from the prefix cache, so a new player's first line to an NPC prefills only
the tail, however many other prompts passed through the prefix cache since.

Why not transformers' own continuous batching (`generate_batch`)? On this
CPU it was slower than a static batch (bench/dialogue.py, and the note in the
issue); this loop batches decode steps the same way static batching does,
and still lets conversations join and leave between steps. Why the lean
engine: bench/dialogue.py runs both side by side (and llama.cpp); the
figures are in the README.

Prompt bound: a prompt longer than `max_prompt_tokens` loses its oldest
turns first (the system message and the newest player line are kept), then
the end of the system message; `trimmed_turns` counts what was dropped.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from npc.inference.runners import StreamRunner

from . import kvcache, tokens
from .head import held

log = logging.getLogger("npcworld.dialogue")

MAX_CANDIDATES = 4  # replies decoded for one request (the service keeps the best that passes its checker)


ENGINES = ("auto", "lean", "transformers")

# A prefill pads every row to the longest one's new tokens: a candidate joining from its first's
# cached prompt (1 new token) beside a fresh 400-token prompt cost 400 tokens of work. Rows whose
# new tokens differ more than PREFILL_SPREAD times go in separate prefills (a step each).
PREFILL_SPREAD = 2.0
PREFILL_LOOK = 32  # joiners looked at for one prefill (each a prefix-cache lookup)


def prefill_take(tails: list[int], budget: int, spread: float = PREFILL_SPREAD) -> list[int]:
    """Which joiners the next prefill takes (indices into the queue, in order), from each one's new
    tokens (`tails`): the first always; then each later one within `spread` times the first's new
    tokens either way, while the batch's new tokens fit `budget`. The others keep their places."""
    if not tails:
        return []
    first, out, total = tails[0], [0], tails[0]
    for i, t in enumerate(tails[1:], 1):
        if max(t, first) > spread * min(t, first):
            continue
        if total + t > budget:
            break
        out.append(i)
        total += t
    return out


def make_engine(engine: str, hf: Any, columns: int, pad_id: int, quant: str = "auto") -> tuple[str, Any]:
    """(name, engine) for the transformers model `hf`: "auto" is lean where the
    model allows it (lean.unsupported), else transformers."""
    from . import lean

    if engine not in ENGINES:
        raise ValueError(f"dialogue engine {engine!r}: expected one of {', '.join(ENGINES)}")
    why = lean.unsupported(hf.config)
    if engine == "lean" and why:
        raise ValueError(f"dialogue engine lean: {why}; use engine transformers")
    if engine == "transformers" or why:
        from .hfengine import TransformersEngine

        return "transformers", TransformersEngine(hf, pad_id, hf.device)
    return "lean", lean.LeanEngine(hf, columns, pad_id, quant=quant)


@dataclass
class _Reply:
    sid: int
    prompt: list[int]
    max_new: int
    max_chars: int
    temperature: float
    gen: Any  # torch.Generator
    ignore_eos: bool = False  # benchmarks: always max_new tokens
    n: int = 0  # which candidate of its request
    of: int = 1  # candidates in its request
    ids: list[int] = field(default_factory=list)  # generated so far
    sent: int = 0  # characters of the decoded text already sent
    logprob: float = 0.0  # candidates (of > 1): the model's log-prob (nats) of the tokens sampled so far
    head: tuple[str, int] | None = None  # (NPC key, tokens of the prompt that are its head: HeadCache)


class DialogueRunner(StreamRunner):
    def __init__(
        self,
        model: str = "default",
        dtype: str = "auto",
        device: str = "cpu",
        max_prompt_tokens: int = 1024,
        max_new_tokens: int = 64,
        prefill_tokens: int = 512,
        prefix_cache_tokens: int = 8192,
        head_cache: int = 32,
        max_stall_s: float = 0.4,
        top_k: int = 40,
        repetition_penalty: float = 1.3,
        step_delay_s: float = 0.0,
        seed: int = 0,
        engine: str = "auto",
        quant: str = "auto",
    ):
        import torch

        from . import lean
        from . import model as models

        if not 1 <= top_k <= lean.TOP:  # the int4 head computes only its TOP likeliest logits exactly
            raise ValueError(f"top_k must be 1..{lean.TOP}, got {top_k}")
        self.torch = torch
        self.device = torch.device(device)
        hf, self.tok = models.load(model, dtype, device, seed=seed)
        ctx = getattr(hf.config, "max_position_embeddings", 2048)
        if max_prompt_tokens + max_new_tokens > ctx:
            raise ValueError(
                f"max_prompt_tokens {max_prompt_tokens} + max_new_tokens {max_new_tokens} "
                f"exceed the model's context of {ctx} tokens"
            )
        self.ctx = ctx
        self.columns = max_prompt_tokens + max_new_tokens  # the longest row an engine holds, in tokens
        self.engine_name, self.engine = make_engine(engine, hf, self.columns, self.tok.pad_token_id or 0, quant)
        self.max_prompt_tokens = max_prompt_tokens
        self.max_new_tokens = max_new_tokens
        self.prefill_tokens = prefill_tokens
        self.prefill_spread = PREFILL_SPREAD  # benchmarks compare against one batch for all (inf)
        self.prefixes = kvcache.PrefixCache(prefix_cache_tokens)
        self.heads = kvcache.HeadCache(head_cache)
        self.max_stall_s = max_stall_s
        self.decoded_at = 0.0  # when the running batch last got a decode step
        self.after_decode = False  # the last step was a decode (so a waiting joiner goes next)
        self.top_k = top_k
        # Tokens the reply already holds score lower (CTRL-style: positive logits divided, negative
        # multiplied): a small model otherwise loops ("I'm not sure. I'm not sure."). The prompt is
        # exempt, so the persona's own words stay likely.
        self.repetition_penalty = repetition_penalty
        self.step_delay_s = step_delay_s  # tests: an artificially slow worker
        self.eos = {
            i
            for i in (
                self.tok.eos_token_id,
                self.tok.convert_tokens_to_ids("<|im_end|>"),
                self.tok.convert_tokens_to_ids("<|endoftext|>"),
            )
            if isinstance(i, int) and i >= 0
        }
        self.unk = self.tok.unk_token_id
        self.joining: list[_Reply] = []
        self.siblings: dict[int, list[_Reply]] = {}  # sid -> candidates waiting for the first one's prefill
        self.left: dict[int, int] = {}  # sid -> candidates of a request not yet ended
        self.choosing: list[
            tuple[int, list[int], list[int] | None, list[list[int]]]
        ] = []  # sid, prompt, prior, options
        self.rows: list[_Reply] = []  # the running batch, in the engine's row order
        self.last: Any = None  # (B,) long: each row's newest token, not yet in the cache
        self.warming: list[tuple[int, list[int], str | None]] = []  # "head" requests: sid, head ids, NPC key
        self.asked: list[int] = []  # "stats" requests
        self.trimmed_turns = 0
        self.steps = 0
        self.prefilled = 0  # prompt tokens computed by prefills of replies (not from a cache)
        self.warmed = 0  # head tokens computed by "head" requests

    # -- the streaming-runner protocol --------------------------------------------------

    def warmup(self) -> None:
        self.add(-1, {"kind": "reply", "messages": [{"role": "user", "content": "Hello"}], "max_new_tokens": 2})
        while self.rows or self.joining:
            self.step()
        self.steps = 0

    def add(self, sid: int, payload: dict) -> None:
        kind = payload.get("kind", "reply")
        if kind == "choose":
            if not payload.get("options"):
                raise ValueError("choose: no options")
            # Encoded here, so that a request that cannot fit fails alone (an error in a step fails every stream).
            opts = self._options(payload["options"])
            prompt = self.encode(payload["messages"])
            prior = self.encode(payload["prior"]) if payload.get("prior") else None
            for p in (prompt, prior):
                if p is not None and len(p) + max(map(len, opts)) > self.columns:
                    raise ValueError(
                        f"choose: a prompt of {len(p)} tokens and an option of {max(map(len, opts))} pass the "
                        f"{self.columns} tokens a row holds (max_prompt_tokens + max_new_tokens)"
                    )
            self.choosing.append((sid, prompt, prior, opts))
            return
        if kind == "head":
            prompt = self.encode(payload["messages"])
            head = self._head(payload, prompt) if payload.get("head") else None
            self.warming.append((sid, prompt[: head[1]] if head else [], head[0] if head else None))
            return
        if kind == "stats":
            self.asked.append(sid)
            return
        if kind != "reply":
            raise ValueError(f"unknown request kind {kind!r}; expected 'reply', 'choose', 'head' or 'stats'")
        torch = self.torch
        prompt = self.encode(payload["messages"])
        head = self._head(payload, prompt)
        max_new = max(1, min(int(payload.get("max_new_tokens", self.max_new_tokens)), self.max_new_tokens))
        of = max(1, min(int(payload.get("candidates", 1)), MAX_CANDIDATES))
        seed = int(payload.get("seed", sid))
        rows = [
            _Reply(
                sid,
                prompt,
                max_new,
                int(payload.get("max_chars", 10_000)),
                float(payload.get("temperature", 0.7)),
                torch.Generator().manual_seed((seed + 7919 * n) & 0x7FFFFFFF),
                bool(payload.get("ignore_eos")),
                n=n,
                of=of,
                head=head,
            )
            for n in range(of)
        ]
        self.joining.append(rows[0])
        if of > 1:
            self.siblings[sid], self.left[sid] = rows[1:], of

    def cancel(self, sid: int) -> None:
        self.joining = [r for r in self.joining if r.sid != sid]
        self.siblings.pop(sid, None)
        self.left.pop(sid, None)
        self.choosing = [c for c in self.choosing if c[0] != sid]
        self.warming = [w for w in self.warming if w[0] != sid]
        keep = [i for i, r in enumerate(self.rows) if r.sid != sid]
        if len(keep) != len(self.rows):
            with self.torch.inference_mode():  # the engine's tensors may be inference tensors (a grown slab)
                self._keep(keep)

    def step(self) -> list[tuple[int, Any, bool]]:
        if self.step_delay_s:
            time.sleep(self.step_delay_s)
        self.steps += 1
        out: list[tuple[int, Any, bool]] = []
        while self.asked:
            out.append((self.asked.pop(0), self.stats(), True))
        with self.torch.inference_mode():
            while self.choosing:
                sid, prompt, before, opts = self.choosing.pop(0)
                result = self._choose(prompt, opts)
                if before is not None:
                    prior = self._choose(before, opts)["scores"]
                    scores = [a - b for a, b in zip(result["scores"], prior)]
                    result = {
                        "choice": max(range(len(scores)), key=lambda i: scores[i]),
                        "scores": scores,
                        "raw": result["scores"],
                        "prior": prior,
                    }
                out.append((sid, result, True))
            # Joiners are prefilled first (time to first token), but the running replies
            # never wait more than max_stall_s for their next token.
            if (
                self.joining
                and self._free_rows() > 0
                and (not self.rows or self.after_decode or time.monotonic() - self.decoded_at < self.max_stall_s)
            ):
                self._prefill(out)
                self.after_decode = False
            elif self.rows:
                self._decode(out)
                self.decoded_at, self.after_decode = time.monotonic(), True
            elif self.warming:
                self._warm(out)
        return out

    def stats(self) -> dict:
        """Counters: tokens prefilled and reused, the caches' hits, the heads held (per NPC key: tokens)."""
        return {
            "steps": self.steps,
            "prefilled": self.prefilled,
            "reused": self.prefixes.reused,
            "warmed": self.warmed,
            "prefix_hits": self.prefixes.hits,
            "head_hits": self.heads.hits,
            "head_misses": self.heads.misses,
            "heads": {k: len(ids) for k, (ids, _) in self.heads.entries.items()},
        }

    # -- prompts ------------------------------------------------------------------------

    def _ids(self, messages: list[dict], generation: bool = True) -> list[int]:
        # Contents (player lines and names, facts, the NPC file) never become control tokens (tokens.py).
        return tokens.chat_ids(self.tok, messages, generation)

    def encode(self, messages: list[dict]) -> list[int]:
        """The chat-template token ids of `messages`, within max_prompt_tokens."""
        messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
        n_in = len(messages)
        limit = self.max_prompt_tokens
        ids = self._ids(messages)
        head = 1 if messages and messages[0]["role"] == "system" else 0
        while len(ids) > limit and len(messages) > head + 1:
            del messages[head]  # the oldest turn
            self.trimmed_turns += 1
            ids = self._ids(messages)
        if len(ids) > limit and head:
            # Even alone, system + the newest line is too long: shorten the system text.
            over = len(ids) - limit
            sys_ids = tokens.text_ids(self.tok, messages[0]["content"])
            messages[0]["content"] = self.tok.decode(sys_ids[: max(0, len(sys_ids) - over - 8)])
            ids = self._ids(messages)
        if len(ids) > limit:
            ids = ids[: limit // 2] + ids[-(limit - limit // 2) :]  # last resort; keeps the generation prompt
        if len(messages) != n_in:
            log.warning("prompt over %d tokens: dropped its %d oldest turn(s)", limit, n_in - len(messages))
        return ids

    def _head(self, payload: dict, prompt: list[int]) -> tuple[str, int] | None:
        """(NPC key, tokens of `prompt` that are its head) for a request naming one (head.py)."""
        spec = payload.get("head")
        if not spec or self.heads.heads <= 0:
            return None
        # Cut back to a word: the same tokens for every prompt of the NPC (head.at_word), a "head" request's too.
        n = min(held(lambda m: self._ids(m, generation=False), payload["messages"], spec, prompt), len(prompt) - 1)
        return (str(spec["key"]), n) if n >= self.heads.min_tokens else None

    # -- continuous batching ---------------------------------------------------------------

    def _prefill(self, out: list) -> None:
        """Prefill the next joiners (up to prefill_tokens new prompt tokens): each starts
        from the longest prefix the prefix cache holds, so only the rest is computed."""
        cached = [self._cached(r) for r in self.joining[:PREFILL_LOOK]]
        tails = [len(r.prompt) - n for r, (n, _) in zip(self.joining, cached)]
        picked = prefill_take(tails, self.prefill_tokens, self.prefill_spread)[: self._free_rows()]
        # (joiner, tokens of its prompt cached, the cached prefix)
        take: list[tuple[Any, int, Any]] = [(self.joining[i], *cached[i]) for i in picked]
        chosen = set(picked)
        self.joining = [r for i, r in enumerate(self.joining) if i not in chosen]
        heads: dict[tuple[int, ...], tuple[str, int]] = {}  # prompts whose NPC head is to be kept
        for r, n, _ in take:
            self.prefixes.used(n)
            self.prefilled += len(r.prompt) - n
            if r.head is not None and n < r.head[1]:
                heads[tuple(r.prompt)] = r.head

        def store(prompt: list[int], layers: kvcache.Layers) -> None:
            self.prefixes.store(prompt, layers)
            if (h := heads.get(tuple(prompt))) is not None:
                self.heads.store(h[0], prompt[: h[1]], layers)

        rows = [r for r, _, _ in take]
        logits = self.engine.prefill([(r.prompt, n, kv) for r, n, kv in take], store)
        first = self._sample(logits, rows)
        if not self.rows:
            self.decoded_at = time.monotonic()  # every running reply has just got a token
        self.rows += rows
        self.last = first if self.last is None else self.torch.cat([self.last, first])
        self._emit(rows, first.tolist(), out)
        for r in rows:  # its prompt is in the prefix cache now: the other candidates join from it
            self.joining[:0] = self.siblings.pop(r.sid, [])

    def _warm(self, out: list) -> None:
        """One "head" request: its head prefilled in a row of its own (from the prefix cache where it
        can), kept in the head cache, the row freed. Only when no reply joins or runs (step)."""
        sid, ids, key = self.warming.pop(0)
        held = self.heads.entries.get(key) if key is not None else None
        if key is None or (held is not None and held[0] == tuple(ids)):
            out.append((sid, {"head": len(ids) if key is not None else 0, "prefilled": 0}, True))
            return
        n, kv = self.prefixes.lookup(ids)

        def store(prompt: list[int], layers: kvcache.Layers) -> None:
            self.heads.store(key, prompt, layers)

        self.engine.prefill([(ids, n, kv)], store)
        self.engine.keep(list(range(len(self.rows))))  # its row leaves at once (rows is empty here)
        self.warmed += len(ids) - n
        out.append((sid, {"head": len(ids), "prefilled": len(ids) - n}, True))

    def _free_rows(self) -> int:
        """Rows the engine can still take (lean: its slab's bound, lean.MAX_ROWS; transformers: no bound)."""
        cap = getattr(self.engine, "max_rows", None)
        return len(self.joining) if cap is None else cap - len(self.rows)

    def _cached(self, r: _Reply) -> tuple[int, kvcache.Layers | None]:
        """The longest start of r's prompt whose keys and values are kept: from the prefix
        cache (a prompt seen before) or its NPC's head (HeadCache)."""
        n, kv = self.prefixes.lookup(r.prompt)
        if r.head is not None and r.head[1] > n:
            got = self.heads.lookup(r.head[0], r.prompt[: r.head[1]])
            if got is not None:
                return r.head[1], got
        return n, kv

    def _decode(self, out: list) -> None:
        logits = self.engine.decode(self.last)
        nxt = self._sample(logits, self.rows)
        self.last = nxt
        self._emit(list(self.rows), nxt.tolist(), out)

    def _sample(self, logits: Any, rows: list[_Reply]) -> Any:
        torch = self.torch
        logits = logits.float()
        # Candidates: the model's own log-prob of each sampled token (before the penalty and the
        # temperature), for the service's scorer (check.best, "logprob"; bench/persona.py compares).
        lp = torch.log_softmax(logits, -1) if any(r.of > 1 for r in rows) else None
        if self.unk is not None and self.unk >= 0:
            logits[:, self.unk] = -math.inf
        picks = []
        for i, r in enumerate(rows):
            row = logits[i]
            if r.ids and self.repetition_penalty != 1.0:
                seen = torch.tensor(sorted(set(r.ids)), dtype=torch.long, device=row.device)
                got = row[seen]
                row[seen] = torch.where(got > 0, got / self.repetition_penalty, got * self.repetition_penalty)
            if len(r.ids) == 0 or r.ignore_eos:
                for e in self.eos:  # never an empty reply
                    row[e] = -math.inf
            if r.temperature <= 0:
                picks.append(int(row.argmax()))
                continue
            k = min(self.top_k, row.shape[-1])
            top, idx = torch.topk(row / r.temperature, k)
            probs = torch.softmax(top, -1).cpu()
            picks.append(int(idx[int(torch.multinomial(probs, 1, generator=r.gen))]))
        if lp is not None:
            for i, (r, t) in enumerate(zip(rows, picks)):
                if r.of > 1 and t not in self.eos:
                    r.logprob += float(lp[i, t])
        return torch.tensor(picks, dtype=torch.long, device=self.device)

    def _emit(self, rows: list[_Reply], tokens: list[int], out: list) -> None:
        """Append each row's new token; send its new text; drop the rows that finished."""
        done = set()  # id() of the rows that ended
        for r, t in zip(rows, tokens):
            final = t in self.eos
            if not final:
                r.ids.append(t)
            text = self.tok.decode(r.ids, skip_special_tokens=True)
            if len(text) >= r.max_chars:
                text, final = text[: r.max_chars], True
            final = final or len(r.ids) >= r.max_new or len(r.prompt) + len(r.ids) >= self.ctx - 1
            if not final and text.endswith("\ufffd"):
                continue  # half a UTF-8 character: wait for the rest
            delta = text[r.sent :]
            r.sent = len(text)
            if r.of > 1 and (delta or final):
                last = final and self.left.get(r.sid, 1) <= 1 and r.sid not in self.siblings
                if final:
                    self.left[r.sid] = self.left.get(r.sid, 1) - 1
                    if last:
                        self.left.pop(r.sid, None)
                piece = {"n": r.n, "text": delta, "end": final}
                if final:
                    piece["logprob"] = r.logprob / max(1, len(r.ids))  # mean per token, nats
                out.append((r.sid, piece, last))
            elif delta or final:
                out.append((r.sid, delta, final))
            if final:
                done.add(id(r))
        if done:
            self._keep([i for i, r in enumerate(self.rows) if id(r) not in done])

    def _keep(self, keep: list[int]) -> None:
        """Keep only these rows of the running batch (increasing indices)."""
        self.engine.keep(keep)
        if not keep:
            self.rows, self.last = [], None
            return
        self.last = self.last.index_select(0, self.torch.tensor(keep, dtype=self.torch.long, device=self.last.device))
        self.rows = [self.rows[i] for i in keep]

    # -- the constrained action step -------------------------------------------------------

    def choose(self, messages: list[dict], options: list[str]) -> dict:
        """Score each option as the assistant's answer; the highest mean log-prob wins.
        Only the given options can be chosen: nothing is generated or parsed.
        The prompt is computed once (from its cached prefix, if any); the options
        then run as one batch on top of copies of its cache."""
        return self._choose(self.encode(messages), self._options(options))

    def _options(self, options: list[str]) -> list[list[int]]:
        return [tokens.text_ids(self.tok, o) or [self.tok.eos_token_id] for o in options]

    def _choose(self, prompt: list[int], opts: list[list[int]]) -> dict:
        torch = self.torch
        n, kv = self.prefixes.lookup(prompt)
        self.prefixes.used(n)
        with torch.inference_mode():
            head, logits = self.engine.score(prompt, n, kv, opts, self.prefixes.store)
        first = torch.log_softmax(head.float(), -1).cpu()
        m = len(opts)
        logp = torch.log_softmax(logits.float(), -1).cpu()
        scores = []
        for i, o in enumerate(opts):
            total = float(first[o[0]]) + sum(float(logp[i, j, o[j + 1]]) for j in range(len(o) - 1))
            scores.append(total / len(o))
        return {"choice": max(range(m), key=lambda i: scores[i]), "scores": scores}
