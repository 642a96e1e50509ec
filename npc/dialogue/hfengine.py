"""The transformers engine of the dialogue runner: the running batch held in
transformers cache objects and computed with the model's own forward. Any
causal LM transformers loads runs here; Llama-family models default to the
lean path (lean.py), and `engine="transformers"` picks this one.

The running batch. All rows share one KV cache of shape (B, heads, L,
head_dim) per layer, left-padded: row b holds its prompt and tokens so far
right-aligned, `mask[b]` marks its real columns and `pos[b]` counts them (its
next position id). The cache layers keep spare columns (kvcache.SlabLayer),
so a decode step writes one column instead of copying the cache. Joiners are
prefilled as one padded batch, then merged into the running batch (both
sides right-aligned to the longer); rows that leave are removed, and columns
that only padding holds are trimmed, so a long reply never makes later ones
pay for its length.

The engine interface (LeanEngine has the same):
    running                      rows in the batch
    prefill(joiners, store)      joiners: [(prompt ids, n cached, per-layer kv of
                                 those n or None)]; appended as rows; -> logits
                                 of each one's last prompt token (k, vocab)
    decode(tokens)               one token for every row (B,) -> logits (B, vocab)
    keep(rows)                   keep only these rows (increasing indices)
    score(prompt, n, kv, options, store) -> (logits after the prompt (vocab,),
                                 logits over each option's tokens (m, W, vocab))
`store(prompt, layers)` keeps a prompt's keys and values (kvcache.PrefixCache).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import Cache

from . import kvcache
from .kvcache import Joiner, Layers, Store


class TransformersEngine:
    def __init__(self, model: Any, pad_id: int, device: torch.device):
        self.model = model  # a transformers causal LM (Any: transformers' edge)
        self.config = model.config
        self.pad_id = pad_id
        self.device = device
        self.cache: Cache | None = None  # the running rows, in SlabLayers
        self.mask = torch.zeros((0, 0), dtype=torch.long, device=device)  # (B, L): real columns
        self.pos = torch.zeros(0, dtype=torch.long, device=device)  # (B,): each row's next position id
        self.running = 0

    def _layers(self) -> list[kvcache.SlabLayer]:
        """The running batch's cache layers (SlabLayers, as _merge made them)."""
        if self.cache is None:
            raise RuntimeError("transformers engine: no running rows")
        return [layer for layer in self.cache.layers if isinstance(layer, kvcache.SlabLayer)]

    def prefill(self, joiners: list[Joiner], store: Store) -> torch.Tensor:
        """Row layout: [padding][cached prefix][padding][new prompt tokens], the mask
        marking real columns; position ids count real columns."""
        C = max(n for _, n, _ in joiners)
        S = max(len(p) - n for p, n, _ in joiners)
        ids = torch.full((len(joiners), S), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(joiners), C + S), dtype=torch.long)
        for i, (p, n, _) in enumerate(joiners):
            new = p[n:]
            ids[i, S - len(new) :] = torch.tensor(new)
            mask[i, C - n : C] = 1
            mask[i, C + S - len(new) :] = 1
        pos_ids = ((mask.cumsum(-1) - 1).clamp(min=0))[:, C:]
        cache: Cache
        if C:
            # The prefixes, right-aligned in one cache with room for the new tokens.
            some = next(kv for _, _, kv in joiners if kv)
            slabs = [kvcache.SlabLayer(spare=S) for _ in some]
            for li, layer in enumerate(slabs):
                k0, v0 = some[li]
                none = (k0[:, :, :0], v0[:, :, :0])
                layer.join([kv[li] if kv else none for _, _, kv in joiners])
            cache = Cache(layers=[*slabs])
        else:
            cache = DynamicCache(config=self.config)
        mask = mask.to(self.device)
        logits = self.model(
            input_ids=ids.to(self.device),
            attention_mask=mask,
            position_ids=pos_ids.to(self.device),
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits[:, -1]
        real = mask.bool()
        held = [kvcache.held(layer) for layer in cache.layers]
        for i, (p, _, _) in enumerate(joiners):
            store(p, [(k[i : i + 1, :, real[i]], v[i : i + 1, :, real[i]]) for k, v in held])
        self._merge(cache, mask, mask.sum(-1))
        return logits

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        B = self.running
        self.mask = torch.cat([self.mask, torch.ones((B, 1), dtype=torch.long, device=self.device)], dim=1)
        logits = self.model(
            input_ids=tokens[:, None],
            attention_mask=self.mask,
            position_ids=self.pos[:, None],
            cache=self.cache,
            use_cache=True,
        ).logits[:, -1]
        self.pos = self.pos + 1
        return logits

    def _merge(self, cache: Cache, mask: torch.Tensor, pos: torch.Tensor) -> None:
        """Add freshly prefilled rows to the running batch (both sides right-aligned to the longer)."""
        self.running += mask.shape[0]
        if self.cache is None:
            self.cache, self.mask, self.pos = kvcache.slab_cache(cache), mask, pos
            return
        L, P = self.mask.shape[1], mask.shape[1]
        T = max(L, P)

        def pad(x: torch.Tensor, n: int) -> torch.Tensor:
            return x if n == 0 else torch.cat([torch.zeros((x.shape[0], n), dtype=x.dtype, device=x.device), x], 1)

        for mine, theirs in zip(self._layers(), cache.layers):
            mine.join([kvcache.held(mine), kvcache.held(theirs)])
        self.mask = torch.cat([pad(self.mask, T - L), pad(mask, T - P)], 0)
        self.pos = torch.cat([self.pos, pos])

    def keep(self, keep: list[int]) -> None:
        """Keep only these rows of the running batch; trim columns only padding holds."""
        self.running = len(keep)
        if not keep:
            self.cache = None
            self.mask, self.pos = self.mask[:0, :0], self.pos[:0]
            return
        idx = torch.tensor(keep, dtype=torch.long, device=self.device)
        mask = self.mask.index_select(0, idx)
        start = int(mask.any(0).nonzero()[0])
        for layer in self._layers():
            k, v = kvcache.held(layer)
            layer.load(k.index_select(0, idx)[:, :, start:], v.index_select(0, idx)[:, :, start:])
        self.mask = mask[:, start:]
        self.pos = self.pos.index_select(0, idx)

    def score(
        self, prompt: list[int], n: int, kv: Layers | None, opts: list[list[int]], store: Store
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The prompt computed once (from its cached prefix, if any); the options then
        run as one batch on top of copies of its cache."""
        cache = DynamicCache(ddp_cache_data=kv) if kv else DynamicCache(config=self.config)
        P = len(prompt)
        head = self.model(
            input_ids=torch.tensor([prompt[n:]], device=self.device),
            position_ids=torch.arange(n, P, device=self.device)[None],
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits[0, -1]
        held = [kvcache.held(layer) for layer in cache.layers]
        store(prompt, held)
        m, W = len(opts), max(len(o) for o in opts)
        ids = torch.full((m, W), self.pad_id, dtype=torch.long)
        mask = torch.zeros((m, P + W), dtype=torch.long)
        mask[:, :P] = 1
        for i, o in enumerate(opts):
            ids[i, : len(o)] = torch.tensor(o)
            mask[i, P : P + len(o)] = 1
        cache = DynamicCache(ddp_cache_data=[(k.expand(m, -1, -1, -1), v.expand(m, -1, -1, -1)) for k, v in held])
        logits = self.model(
            input_ids=ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=torch.arange(P, P + W, device=self.device).expand(m, W),
            cache=cache,
            use_cache=True,
        ).logits
        return head, logits
