"""A KV cache layer with spare columns, for the running batch of the dialogue
runner.

transformers' DynamicLayer appends a decode step with `torch.cat`, which
copies the whole cache of the layer every step: on this CPU that was 20% of a
decode step of 8 replies (torch profiler, 12 of 60 ms). A SlabLayer keeps its
keys and values in buffers with spare columns, so a step writes only the new
column; `keys`/`values` are views of the used part. The buffers grow (with
new spare) only when a step finds them full, and are rebuilt when the batch
changes (a reply joins or leaves), which happens between steps anyway.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable

import torch
from transformers.cache_utils import Cache, DynamicLayer

# Per-layer (keys, values), each (1, kv heads, n, head dim): a prompt's first n tokens.
Layers = list[tuple[torch.Tensor, torch.Tensor]]
# store(prompt ids, its per-layer keys and values): PrefixCache.store, as the engines call it.
Store = Callable[[list[int], Layers], None]
# A reply joining an engine's batch: (prompt ids, tokens of it cached, their keys and values or None).
Joiner = tuple[list[int], int, Layers | None]

SPARE = 64  # columns allocated beyond the used ones; a reply of up to this many tokens never regrows


class SlabLayer(DynamicLayer):
    def __init__(self, spare: int = SPARE) -> None:
        super().__init__()
        self.spare = spare
        self.used = 0
        self.kbuf: torch.Tensor | None = None
        self.vbuf: torch.Tensor | None = None

    def load(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Hold these keys and values (B, heads, L, dim), copied into buffers with spare columns."""
        self.join([(keys, values)])

    def join(self, parts: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Hold the rows of all parts, one under another, each right-aligned to the
        longest (left padding is zeros: masked out, and finite so that it cannot
        turn a masked attention weight of 0 into NaN)."""
        keys0 = parts[0][0]
        rows = sum(k.shape[0] for k, _ in parts)
        n = max(k.shape[2] for k, _ in parts)
        h, d = keys0.shape[1], keys0.shape[3]
        same = len(parts) == 1
        alloc = keys0.new_empty if same else keys0.new_zeros
        kbuf = alloc((rows, h, n + self.spare, d))
        vbuf = alloc((rows, h, n + self.spare, d))
        at = 0
        for k, v in parts:
            b, L = k.shape[0], k.shape[2]
            kbuf[at : at + b, :, n - L : n] = k
            vbuf[at : at + b, :, n - L : n] = v
            at += b
        self.kbuf, self.vbuf = kbuf, vbuf
        self.used = n
        self.device = keys0.device
        self.is_initialized = True
        self._views()

    def _views(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The used columns of the buffers, as `keys` and `values` (views), returned too."""
        assert self.kbuf is not None and self.vbuf is not None, "SlabLayer: no buffers before load"
        keys, values = self.kbuf[:, :, : self.used], self.vbuf[:, :, : self.used]
        self.keys, self.values = keys, values
        return keys, values

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.kbuf is None or self.vbuf is None:
            self.load(key_states, value_states)
            return self._views()
        q = key_states.shape[-2]
        if self.used + q > self.kbuf.shape[2]:
            self.load(*self._views())  # full: copy once into buffers with new spare columns
        kbuf, vbuf = self.kbuf, self.vbuf
        assert kbuf is not None and vbuf is not None
        kbuf[:, :, self.used : self.used + q] = key_states
        vbuf[:, :, self.used : self.used + q] = value_states
        self.used += q
        return self._views()

    def get_seq_length(self) -> int:
        return self.used


def held(layer: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """A filled cache layer's (keys, values), each (B, heads, L, dim). `Any`: transformers'
    layer types (a union, whose keys are optional until the first update)."""
    keys, values = getattr(layer, "keys", None), getattr(layer, "values", None)
    if not isinstance(keys, torch.Tensor) or not isinstance(values, torch.Tensor):
        raise ValueError(f"{type(layer).__name__}: holds no keys and values (never updated, or not attention)")
    return keys, values


def _slab(old: Any, spare: int) -> SlabLayer:
    layer = SlabLayer(spare)
    layer.load(*held(old))
    return layer


def slab_cache(cache: Cache, spare: int = SPARE) -> Cache:
    """The rows of `cache` (any transformers cache of full-attention layers) in SlabLayers."""
    return Cache(layers=[_slab(old, spare) for old in cache.layers])


class PrefixCache:
    """The keys and values of recent prompts, so that a prompt that starts like
    one seen before (the same NPC's persona; the same conversation a turn
    later) prefills only what is new.

    Keyed by the prompt's token ids; a lookup finds the stored prompt with the
    longest common prefix. Least recently used prompts leave first once the
    stored tokens exceed `budget` (memory per token: layers x 2 x kv heads x
    head dim x dtype size; 23 KB for SmolLM2-135M in bf16, so 8,192 tokens
    are about 190 MB).
    """

    def __init__(self, budget: int = 8192, min_tokens: int = 16):
        self.budget = budget
        self.min_tokens = min_tokens
        self.entries: OrderedDict[tuple[int, ...], Layers] = OrderedDict()
        self.tokens = 0
        self.lookups = self.hits = self.reused = 0

    def lookup(self, prompt: list[int]) -> tuple[int, Layers | None]:
        """(n, per-layer (keys, values) of the first n tokens, each (1, heads, n, dim)),
        or (0, None). At least the prompt's last token is always left to compute
        (its logits give the first reply token). Counts nothing (see `used`)."""
        best, best_key = 0, None
        for key in self.entries:
            n = common(key, prompt)
            if n > best:
                best, best_key = n, key
        best = min(best, len(prompt) - 1)
        if best_key is None or best < self.min_tokens:
            return 0, None
        self.entries.move_to_end(best_key)
        return best, [(k[:, :, :best], v[:, :, :best]) for k, v in self.entries[best_key]]

    def used(self, n: int) -> None:
        """Count a prompt that was computed from a stored prefix of n tokens (0: none)."""
        self.lookups += 1
        self.hits += n > 0
        self.reused += n

    def store(self, prompt: list[int], layers: Layers) -> None:
        """Keep this prompt's keys and values (copied; each (1, heads, len(prompt), dim))."""
        if self.budget <= 0 or len(prompt) > self.budget:
            return
        key = tuple(prompt)
        if key in self.entries:
            self.entries.move_to_end(key)
            return
        self.entries[key] = [(k.clone(), v.clone()) for k, v in layers]
        self.tokens += len(key)
        while self.tokens > self.budget:
            old, _ = self.entries.popitem(last=False)
            self.tokens -= len(old)


class HeadCache:
    """Per NPC: the keys and values of the start every prompt of that NPC shares (its
    system text up to the first word about the player: head.py finds it), so that a
    player's first line to an NPC that someone has talked to prefills only the rest.

    Kept apart from the PrefixCache: that one holds whole prompts in one LRU, and a burst
    of conversations (with other NPCs, or long ones) pushes an NPC's start out of it; a
    head is stored once per NPC and costs only its own tokens. Keyed by the service's NPC
    key; a stored head is used only when it is exactly the new prompt's head (same tokens):
    when the NPC file (or the world's place names) changed, the key's head is dropped and
    the new one kept in its place. A new model is a new worker, so a new cache.
    Bound: `heads` NPCs, least recently used out first; a head is a few hundred tokens
    (23 KB a token for SmolLM2-135M in bf16: 260 tokens are 6 MB, 32 heads ~190 MB).
    """

    def __init__(self, heads: int = 32, min_tokens: int = 16):
        self.heads = heads
        self.min_tokens = min_tokens
        self.entries: OrderedDict[str, tuple[tuple[int, ...], Layers]] = OrderedDict()
        self.hits = self.misses = self.replaced = 0

    def lookup(self, key: str, head: list[int]) -> Layers | None:
        """The stored keys and values of `head` (the new prompt's first tokens) for this NPC, or None."""
        entry = self.entries.get(key)
        if entry is None or entry[0] != tuple(head) or len(head) < self.min_tokens:
            self.misses += 1
            return None
        self.entries.move_to_end(key)
        self.hits += 1
        return entry[1]

    def store(self, key: str, head: list[int], layers: Layers) -> None:
        """Keep `head`'s keys and values for this NPC (the first len(head) columns of
        `layers`, copied), in place of an older head of it."""
        if self.heads <= 0 or len(head) < self.min_tokens:
            return
        old = self.entries.get(key)
        if old is not None and old[0] == tuple(head):
            self.entries.move_to_end(key)
            return
        self.replaced += old is not None
        n = len(head)
        self.entries[key] = (tuple(head), [(k[:, :, :n].clone(), v[:, :, :n].clone()) for k, v in layers])
        self.entries.move_to_end(key)
        while len(self.entries) > self.heads:
            self.entries.popitem(last=False)


def common(a: "tuple[int, ...] | list[int]", b: list[int]) -> int:
    """How many leading tokens a and b share."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
