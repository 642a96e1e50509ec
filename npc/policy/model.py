"""The decision policy: from an NPC's observation to its next action and that
action's target, masked to what the NPC may do.

Its shape is the built-in behaviour's (npc/minds/builtin.py): each action
has up to three routes to a score, its own candidate (a player who fits, an
ongoing intent, the baseline), the schedule block whose `do` it is, and the
tended need whose relief it is, and the best scoring action wins. So the
action logits are, per action, the best of its routes present now, each a
learned scale x the route's term from the observation + a learned per-route,
per-action bias (the built-in's tie order), plus a small MLP's correction
from the whole observation; then argmax under the mask. The routes' terms
are read from the observation's fields (`route_terms`): the policy follows a
file's weights because it reads them there, not because it saw the file.
Measured (train-policy, seed 0, 40 randomised files never trained on): the
plain MLP 95.8%, this shape 99.7% (npc/policy/observe.py module doc).

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

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from npc.policy import observe
from npc.policy.observe import A, NEEDS, OBS_DIM, OFFSET, OWN_ROUTE, T, WEIGHT_NAMES
from npc.policy.weights import DEFAULT_WEIGHTS  # noqa: F401  (the shipped weights; re-exported)

HIDDEN = 128
ROUTES = ("need", "schedule", "own")  # the built-in's order of candidates: on a tie the earlier one wins
SCALE = 20.0  # the routes' initial scale (logits per weight unit); it learns ~200
NO_ROUTE = -1e4  # the logit of an action with no route now (finite: no NaN in training)
_OWN = torch.tensor(OWN_ROUTE)  # (A,) bool
_SCHEDULE_WEIGHT = WEIGHT_NAMES.index("schedule")


def route_terms(obs):
    """(B, OBS_DIM) -> terms (B, 3, A) in weight units and present (B, 3, A) bool, per route of ROUTES
    and action, from the observation's fields as npc/policy/observe.py writes them:
    own: `candidate` of an action with a candidate of its own, at its `action_weight`;
    schedule: the block's `do` (`block`, `block_do`, allowed), at weights.schedule;
    need: the relief of the tended need that pulls hardest (the earlier one on a tie), at its pull."""
    f = lambda name: obs[:, OFFSET[name]]  # noqa: E731
    allowed = f("allowed") > 0.5  # (B, A)
    own_on = (f("candidate") > 0.5) & _OWN.to(obs.device)
    own = f("action_weight") * 2.0
    sched_on = (f("block") > 0.5) & (f("block_do") > 0.5) & allowed
    sched = (f("weights")[:, _SCHEDULE_WEIGHT : _SCHEDULE_WEIGHT + 1] * 2.0).expand_as(own)
    relief = f("need_relief").reshape(-1, NEEDS, A) > 0.5  # (B, NEEDS, A)
    tended = (f("need_tending") > 0.5) & (relief & allowed[:, None, :]).any(-1)  # (B, NEEDS)
    pull = torch.where(tended, f("need_pull") * 4.0, torch.full_like(f("need_pull"), -1.0))
    best, k = pull.max(-1)  # the first maximum: earlier need
    need_on = relief[torch.arange(len(obs), device=obs.device), k] & tended.any(-1, keepdim=True)
    need = best[:, None].clamp(min=0.0).expand_as(own)
    return torch.stack([need, sched, own], 1), torch.stack([need_on, sched_on, own_on], 1)


class Policy(nn.Module):
    def __init__(
        self, obs_dim: int = OBS_DIM, hidden: int = HIDDEN, n_actions: int = A, n_targets: int = T, routes: bool = True
    ):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(obs_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU())
        self.action = nn.Linear(hidden, n_actions)
        self.target = nn.Linear(hidden + n_actions, n_targets)  # the target depends on the action chosen
        self.routes = routes  # False: a plain MLP (weights of before the routes)
        if routes:
            self.log_scale = nn.Parameter(torch.tensor(math.log(SCALE)))
            self.route_bias = nn.Parameter(torch.zeros(len(ROUTES), n_actions))
            nn.init.zeros_(self.action.weight)  # the MLP starts as no correction at all
            nn.init.zeros_(self.action.bias)

    def forward(self, obs, mask, tmask, action=None):
        """Logits (B, A), (B, T). `action` (B,) int64: the target head sees that action (teacher
        forcing, in training) instead of the one chosen here."""
        h = self.body(obs)  # (B, H)
        a = self.action(h)  # (B, A)
        if self.routes:
            terms, on = route_terms(obs)  # (B, 3, A)
            u = torch.where(on, self.log_scale.exp() * terms + self.route_bias, torch.full_like(terms, NO_ROUTE))
            a = a + u.max(1).values  # the best route of each action
        a = a.masked_fill(~mask, float("-inf"))  # disallowed: -inf
        chosen = a.argmax(-1) if action is None else action
        t = self.target(torch.cat([h, nn.functional.one_hot(chosen, a.shape[-1]).to(h.dtype)], -1))  # (B, T)
        return a, t.masked_fill(~tmask, float("-inf"))


def build_policy(weights: str | None = None, device: str = "cpu", hidden: int = HIDDEN) -> Policy:
    """The default factory: a Policy with the given safetensors weights (random ones if None); the
    hidden width is the weights' own (`npcworld train-policy --hidden`), `hidden` only without weights."""
    if not weights:
        return Policy(hidden=hidden).to(device).eval()
    from safetensors.torch import load_file

    state = load_file(str(weights))
    model = Policy(hidden=int(state["body.0.weight"].shape[0]), routes="log_scale" in state)
    model.load_state_dict(state)
    return model.to(device).eval()


def save(model: nn.Module, path: str | Path) -> None:
    from safetensors.torch import save_file

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(path))


class PolicyRunner:
    """Runs the policy for the pool: each request is one tick's matrix
    {"obs": (N, OBS_DIM), "mask": (N, A), "tmask": (N, T)} (the guard, training), or
    {"rows": observe.request(...)} (the tick: the rows are built here, observe.build); the worker may
    batch several requests, which become one forward pass.
    Answers {"action": (N,) int8, "target": (N,) int8}; -1 where the row
    allows no action at all (the NPC keeps its built-in decision); to a "rows" request the
    answer decoded against its rows (`decoded`)."""

    def __init__(
        self,
        module: str = "npc.policy.model:build_policy",
        weights: str | None = None,
        device: str = "cpu",
        threads: int | None = None,
    ):
        from npc.inference.runners import resolve

        if threads:
            torch.set_num_threads(threads)
        factory = resolve(module)
        self.device = torch.device(device)
        self.model = factory(weights=weights, device=device).to(self.device).eval()

    def warmup(self) -> None:
        self.run(
            [{"obs": np.zeros((4, OBS_DIM), np.float32), "mask": np.ones((4, A), bool), "tmask": np.ones((4, T), bool)}]
        )

    def run(self, batch: list[dict]) -> list[dict]:
        # a request {"rows": observe.request(...)} is built into rows here, and answered decoded (below)
        built = [observe.build(p["rows"]) if "rows" in p else None for p in batch]
        parts = [
            (b.obs, b.mask, b.tmask) if b is not None else (p["obs"], p["mask"], p["tmask"])
            for p, b in zip(batch, built)
        ]
        sizes = [len(o) for o, _, _ in parts]
        obs = torch.from_numpy(np.concatenate([np.asarray(o, np.float32) for o, _, _ in parts]))  # (B, D)
        mask = torch.from_numpy(np.concatenate([np.asarray(m, bool) for _, m, _ in parts]))  # (B, A)
        tmask = torch.from_numpy(np.concatenate([np.asarray(t, bool) for _, _, t in parts]))  # (B, T)
        with torch.inference_mode():
            a, t = self.model(obs.to(self.device), mask.to(self.device), tmask.to(self.device))
            a = a.float().masked_fill(~mask.to(a.device), float("-inf"))  # re-checked: whatever the module does
            t = t.float().masked_fill(~tmask.to(t.device), float("-inf"))
        act = a.argmax(-1).cpu().numpy().astype(np.int8)
        tgt = t.argmax(-1).cpu().numpy().astype(np.int8)
        act[~mask.any(-1).numpy()] = -1
        tgt[~tmask.any(-1).numpy()] = -1
        out, i = [], 0
        for n, b in zip(sizes, built):
            a_, t_ = act[i : i + n], tgt[i : i + n]
            out.append({"action": a_, "target": t_} if b is None else decoded(b, a_, t_))
            i += n
        return out


def decoded(r: observe.Rows, action: np.ndarray, target: np.ndarray) -> dict:
    """The answer to a {"rows": ...} request: the policy's (action, slot) per row decoded against the rows
    built in the worker (observe.decode: both masks checked again, the slot's entity id or place index),
    and which rows finish a talk or gift (nothing to apply). The tick then needs no rows of its own."""
    d = observe.decode(
        r.slots, np.asarray(action, np.int64), np.asarray(target, np.int64), r.mask, r.tmask, r.finishing
    )
    return {"action": d.action, "target": d.target, "place": d.place, "ok": d.ok, "finishing": r.finishing}
