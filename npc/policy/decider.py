"""NPC decisions from the learned policy, through the inference pool, under a
one-tick budget. No torch here: the pool's workers run npc/policy/model.py.

Every think still runs the built-in behaviour first and applies its decision
at once (the fallback is always in place). The policy is asked as well:

    tick t      the cast notes each due NPC (observe.Observations.add);
                end_tick() builds their rows in one go and submits ONE request
                holding the (N, OBS_DIM) matrix, deadline = now + one tick
    tick t+1    begin_tick() polls the inbox (never waits): an ON_TIME answer
                overrides the built-in decision of each NPC where they differ;
                a LATE, DROPPED or FAILED one changes nothing (the built-in
                decision stands)

So a dead or slow worker costs the NPCs nothing but the policy's say; the
tick never waits. Bounds: at most `max_pending` requests (ticks) in flight;
past that a tick's NPCs are not sent (counted as "skipped").
"""

from __future__ import annotations

import collections
import logging
import time
from typing import Callable

import numpy as np

from world.sim import NPC

from npc.inference import Inbox, Outcome, Pool, PoolConfig
from npc.policy.observe import Observations, decode

log = logging.getLogger("npcworld.npc")

OUTCOMES = ("on_time", "late", "dropped", "failed", "skipped")
LATENCY_KEPT = 4096    # newest decision latencies kept (for benchmarks), seconds


class PolicyDecider:
    """Plugs into `Cast.policy`: begin_tick(cast), note(mind, perception, choice), end_tick()."""

    def __init__(self, pool: Pool, world_size: tuple[float, float], places: dict, budget_s: float,
                 clock: Callable[[], float] = time.monotonic, max_pending: int = 8,
                 npc_positions: Callable[[], np.ndarray] | None = None):
        self.pool = pool
        self.obs = Observations(world_size, dict(places), npc_positions)
        self.budget_s = budget_s
        self.clock = clock
        self.max_pending = max_pending
        self.inbox = Inbox()
        self.pending: dict[int, list] = {}                  # id(future) -> its rows
        self.decisions = {o: 0 for o in OUTCOMES}           # NPC decisions by outcome (N per request)
        self.overrides = 0                                  # on-time answers that changed the built-in one
        self.rejected = 0                                   # answers that could not be applied
        self.latencies: collections.deque = collections.deque(maxlen=LATENCY_KEPT)
        self.batch_rows: collections.deque = collections.deque(maxlen=LATENCY_KEPT)

    # -- the cast's side --------------------------------------------------------------

    def begin_tick(self, cast) -> None:
        """Apply the answers that came back on time since the last tick."""
        for fut in self.inbox.poll():
            rows = self.pending.pop(id(fut), None)
            if rows is None:
                continue
            outcome = fut.outcome.value
            self.decisions[outcome] += len(rows)
            if fut.latency is not None:
                self.latencies.append(fut.latency)
            if fut.outcome is not Outcome.ON_TIME:
                continue
            try:
                actions = np.asarray(fut.value["action"]).tolist()
                targets = np.asarray(fut.value["target"]).tolist()
            except (TypeError, KeyError, IndexError):
                self.rejected += len(rows)
                continue
            if len(actions) != len(rows) or len(targets) != len(rows):
                self.rejected += len(rows)
                continue
            for row, a, t in zip(rows, actions, targets):
                m = cast.minds.get(row.eid)
                if m is None:
                    continue
                d = decode(row, a, t, m.defn.params)
                if d is None:
                    continue
                if d.action not in m.defn.allowed:      # the definition may have been reloaded since
                    self.rejected += 1
                    continue
                cast._apply(m, d)
                self.overrides += 1

    def note(self, m, p, choice) -> None:
        self.obs.add(p, m.state, m.defn, choice)

    def end_tick(self) -> None:
        if not len(self.obs):
            return
        rows = self.obs.rows
        if len(self.pending) >= self.max_pending:
            self.decisions["skipped"] += len(rows)
            self.obs.clear()
            return
        try:
            obs, mask, tmask = self.obs.build()
        finally:
            self.obs.clear()
        fut = self.pool.submit({"obs": obs, "mask": mask, "tmask": tmask}, self.clock() + self.budget_s,
                               inbox=self.inbox)
        self.batch_rows.append(len(rows))
        self.pending[id(fut)] = rows      # a pool that is closed has failed it already: counted next tick

    # -- metrics ----------------------------------------------------------------------------

    def prometheus(self, prefix: str = "npcworld_npc") -> list[str]:
        lines = [f"# HELP {prefix}_policy_decisions_total NPC decisions asked of the policy, by outcome "
                 "(on_time: applied when it differed from the built-in one; others: the built-in one stood).",
                 f"# TYPE {prefix}_policy_decisions_total counter"]
        lines += [f'{prefix}_policy_decisions_total{{outcome="{o}"}} {n}' for o, n in self.decisions.items()]
        lines += [f"# HELP {prefix}_policy_overrides_total On-time policy decisions that replaced the built-in one.",
                  f"# TYPE {prefix}_policy_overrides_total counter", f"{prefix}_policy_overrides_total {self.overrides}"]
        return lines + self.pool.stats.prometheus()


def start_decider(world, *, weights: str | None, module: str = "npc.policy.model:build_policy",
                  workers: int | None = None, devices: list[str] | None = None, budget_s: float = 0.05,
                  **pool_options) -> PolicyDecider:
    """A started pool running the policy (npc/policy/model.py:PolicyRunner), and its decider for `Cast.policy`.
    Returns at once: until a worker is ready, requests are dropped at their deadline (the built-in
    behaviour decides)."""
    cfg = PoolConfig(runner="npc.policy.model:PolicyRunner", runner_options={"module": module, "weights": weights or None},
                     workers=workers, devices=devices, **pool_options)
    pool = Pool(cfg).start()
    places = {name: world.place_position(name) for name in world.places}
    return PolicyDecider(pool, tuple(world.map.world_size), places, budget_s,
                         npc_positions=lambda: world.of_kind(NPC)[1])
