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

import torch
from transformers.cache_utils import Cache, DynamicLayer

SPARE = 64  # columns allocated beyond the used ones; a reply of up to this many tokens never regrows


class SlabLayer(DynamicLayer):
    def __init__(self, spare: int = SPARE):
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
        self.kbuf = alloc((rows, h, n + self.spare, d))
        self.vbuf = alloc((rows, h, n + self.spare, d))
        at = 0
        for k, v in parts:
            b, L = k.shape[0], k.shape[2]
            self.kbuf[at:at + b, :, n - L:n] = k
            self.vbuf[at:at + b, :, n - L:n] = v
            at += b
        self.used = n
        self.device = keys0.device
        self.is_initialized = True
        self._views()

    def _views(self) -> None:
        self.keys = self.kbuf[:, :, :self.used]
        self.values = self.vbuf[:, :, :self.used]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if self.kbuf is None:
            self.load(key_states, value_states)
            return self.keys, self.values
        q = key_states.shape[-2]
        if self.used + q > self.kbuf.shape[2]:
            self.load(self.keys, self.values)  # full: copy once into buffers with new spare columns
        self.kbuf[:, :, self.used:self.used + q] = key_states
        self.vbuf[:, :, self.used:self.used + q] = value_states
        self.used += q
        self._views()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.used


def slab_cache(cache: Cache, spare: int = SPARE) -> Cache:
    """The rows of `cache` (any transformers cache of full-attention layers) in SlabLayers."""
    layers = []
    for old in cache.layers:
        layer = SlabLayer(spare)
        layer.load(old.keys, old.values)
        layers.append(layer)
    return Cache(layers=layers)


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
        from collections import OrderedDict

        self.budget = budget
        self.min_tokens = min_tokens
        self.entries: "OrderedDict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]]" = OrderedDict()
        self.tokens = 0
        self.lookups = self.hits = self.reused = 0

    def lookup(self, prompt: list[int]) -> tuple[int, list[tuple[torch.Tensor, torch.Tensor]] | None]:
        """(n, per-layer (keys, values) of the first n tokens, each (1, heads, n, dim)),
        or (0, None). At least the prompt's last token is always left to compute
        (its logits give the first reply token). Counts nothing (see `used`)."""
        best, best_key = 0, None
        for key in self.entries:
            n = _common(key, prompt)
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

    def store(self, prompt: list[int], layers: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
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


def _common(a: tuple[int, ...], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
