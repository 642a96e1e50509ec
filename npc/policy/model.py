"""The decision policy: a small MLP from an NPC's observation to its next
action and that action's target, masked to what the NPC may do.

Imports torch: it runs in the inference pool's worker processes (and in
`npcworld train-policy`), never in the server's tick process. The server
speaks to it through `PolicyRunner` (npc/inference/runners.py protocol).

Interface of any replacement module (`--policy-module module:factory`, a
factory called with `weights=` and `device=` returning an nn.Module):

    forward(obs (B, OBS_DIM) float32, mask (B, A) bool, tmask (B, T) bool)
        -> (action logits (B, A), target logits (B, T)), masked entries -inf

The runner takes the argmax of each and re-checks both masks, so a module
that ignores the masks still cannot make an NPC do a disallowed action.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from npc.policy.observe import A, OBS_DIM, T
from npc.policy.weights import DEFAULT_WEIGHTS  # noqa: F401  (the shipped weights; re-exported)

HIDDEN = 128


class Policy(nn.Module):
    def __init__(self, obs_dim: int = OBS_DIM, hidden: int = HIDDEN, n_actions: int = A, n_targets: int = T):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(obs_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU())
        self.action = nn.Linear(hidden, n_actions)
        self.target = nn.Linear(hidden + n_actions, n_targets)   # the target depends on the action chosen

    def forward(self, obs, mask, tmask):
        h = self.body(obs)                                          # (B, H)
        a = self.action(h).masked_fill(~mask, float("-inf"))        # (B, A) disallowed: -inf
        chosen = nn.functional.one_hot(a.argmax(-1), a.shape[-1])   # (B, A) the action taken
        return a, self.targets(h, chosen.to(h.dtype), tmask)

    def targets(self, h, chosen, tmask):
        t = self.target(torch.cat([h, chosen], -1))                 # (B, T)
        return t.masked_fill(~tmask, float("-inf"))


def build_policy(weights: str | None = None, device: str = "cpu", hidden: int = HIDDEN) -> Policy:
    """The default factory: a Policy with the given safetensors weights (random ones if None); the
    hidden width is the weights' own (`npcworld train-policy --hidden`), `hidden` only without weights."""
    if not weights:
        return Policy(hidden=hidden).to(device).eval()
    from safetensors.torch import load_file
    state = load_file(str(weights))
    model = Policy(hidden=int(state["body.0.weight"].shape[0]))
    model.load_state_dict(state)
    return model.to(device).eval()


def save(model: nn.Module, path: str | Path) -> None:
    from safetensors.torch import save_file
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(path))


class PolicyRunner:
    """Runs the policy for the pool: each request is one tick's matrix
    {"obs": (N, OBS_DIM), "mask": (N, A), "tmask": (N, T)}; the worker may
    batch several requests, which become one forward pass.
    Answers {"action": (N,) int8, "target": (N,) int8}; -1 where the row
    allows no action at all (the NPC keeps its built-in decision)."""

    def __init__(self, module: str = "npc.policy.model:build_policy", weights: str | None = None, device: str = "cpu",
                 threads: int | None = None):
        from npc.inference.runners import resolve

        if threads:
            torch.set_num_threads(threads)
        factory = resolve(module)
        self.device = torch.device(device)
        self.model = factory(weights=weights, device=device).to(self.device).eval()

    def warmup(self) -> None:
        self.run([{"obs": np.zeros((4, OBS_DIM), np.float32), "mask": np.ones((4, A), bool),
                   "tmask": np.ones((4, T), bool)}])

    def run(self, batch: list[dict]) -> list[dict]:
        sizes = [len(p["obs"]) for p in batch]
        obs = torch.from_numpy(np.concatenate([np.asarray(p["obs"], np.float32) for p in batch]))   # (B, D)
        mask = torch.from_numpy(np.concatenate([np.asarray(p["mask"], bool) for p in batch]))       # (B, A)
        tmask = torch.from_numpy(np.concatenate([np.asarray(p["tmask"], bool) for p in batch]))     # (B, T)
        with torch.inference_mode():
            a, t = self.model(obs.to(self.device), mask.to(self.device), tmask.to(self.device))
            a = a.float().masked_fill(~mask.to(a.device), float("-inf"))   # re-checked: whatever the module does
            t = t.float().masked_fill(~tmask.to(t.device), float("-inf"))
        act = a.argmax(-1).cpu().numpy().astype(np.int8)
        tgt = t.argmax(-1).cpu().numpy().astype(np.int8)
        act[~mask.any(-1).numpy()] = -1
        tgt[~tmask.any(-1).numpy()] = -1
        out, i = [], 0
        for n in sizes:
            out.append({"action": act[i:i + n], "target": tgt[i:i + n]})
            i += n
        return out
