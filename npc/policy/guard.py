"""The policy's check on one NPC file: does the policy decide its NPCs as the
built-in behaviour would, often enough to decide for it?

`agreement(defn, where, run_policy)` rolls out that one file headless for a
short game day (the built-in deciding, a Recorder noting every think; a few
stand-in players walking about so that the file's talks, gifts, follows and
flights happen), then asks `run_policy(obs, mask, tmask) -> (action, target)`
for the recorded rows at once and compares its answers with the built-in's.
The file passes when the policy agrees on at least THRESHOLD of the actions;
the cast then lets the policy decide it (npc/policy/decider.py), else the
built-in behaviour goes on deciding, and the reason says which and why.

`run_policy` is a local model (`local_runner()`, for `npcworld npc check`)
or a request to the inference pool (the server, from a thread). Cost: about
a second of CPU for one file on the defaults (a 60 s game day of 8 NPCs at
10 ticks/s, ~960 decisions), plus one policy call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from npc.files.schema import Definition

THRESHOLD = 0.95  # action top-1 agreement a file needs for the policy to decide it
RunPolicy = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Check:
    file: str
    agreement: float  # action top-1 agreement with the built-in, 0..1
    action_and_target: float  # the same action and the same entity or place
    decisions: int  # rows compared
    ok: bool  # agreement >= THRESHOLD: the policy may decide this file
    reason: str  # in words, for the log and GET /npcs


def agreement(
    defn: Definition,
    where,
    run_policy: RunPolicy,
    *,
    npcs: int = 8,
    players: int = 6,
    seconds: float = 60.0,
    day_length: float = 60.0,
    tick_rate: int = 10,
    seed: int = 0,
    threshold: float = THRESHOLD,
) -> Check:
    """Check the policy on one definition (module doc). `where`: the map (a TileMap or the path of
    one: a world with a `day_length` s game day is made), or a () -> World factory (its own day)."""
    from world.tilemap import TileMap, load_map

    from npc.policy.train import Rollout, rollout, score

    if isinstance(where, (str, Path)):
        where = load_map(str(where))
    world = where if isinstance(where, TileMap) else where()
    setting = Rollout(players=players, seconds=seconds, day_length=day_length, tick_rate=tick_rate, seed=seed)
    data = rollout([(defn, max(1, npcs))], world, setting)
    n = len(data["action"])
    if n == 0:
        return Check(
            defn.file,
            0.0,
            0.0,
            0,
            False,
            "no decisions to compare in the check's rollout: the built-in behaviour decides",
        )
    action, target = run_policy(data["obs"], data["mask"], data["tmask"])
    action = np.asarray(action, np.int64).reshape(-1)
    target = np.asarray(target, np.int64).reshape(-1)
    if action.shape != (n,) or target.shape != (n,):
        raise ValueError(f"the policy answered {action.shape} actions and {target.shape} targets for {n} rows")
    s = score(data, np.arange(n), action, target)
    ok = s["action_top1"] >= threshold
    reason = (
        f"the policy agrees with the built-in behaviour on {s['action_top1']:.1%} of {n} decisions "
        f"({'at or above' if ok else 'below'} {threshold:.0%}): "
        + ("the policy decides" if ok else "the built-in behaviour decides")
    )
    return Check(defn.file, s["action_top1"], s["action_and_target"], n, bool(ok), reason)


def local_runner(weights: str | Path | None = None, module: str = "npc.policy.model:build_policy") -> RunPolicy:
    """run_policy on this process's CPU: the shipped weights by default (npc/policy/model.py)."""
    from npc.policy.model import DEFAULT_WEIGHTS, PolicyRunner

    runner = PolicyRunner(module=module, weights=str(weights or DEFAULT_WEIGHTS))

    def run(obs: np.ndarray, mask: np.ndarray, tmask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = runner.run([{"obs": obs, "mask": mask, "tmask": tmask}])[0]
        return np.asarray(out["action"]), np.asarray(out["target"])

    return run
