"""NPC decisions from the learned policy, through the inference pool, under a
one-tick budget. No torch here: the pool's workers run npc/policy/model.py.

The cast asks the policy for the due NPCs of the files it follows; the
built-in behaviour is not computed for them:

    tick t      ask(sight) per file; end_tick() submits ONE request,
                deadline = now + one tick: observe.request (the Sights' columns
                end to end, each file's features once), and the worker builds
                the rows (observe.build), runs the model and decodes its answer
                against them (npc/policy/model.py `decoded`); with
                rows_in_worker=False the tick builds the rows (observe.rows)
                and decodes, as before s18c
    tick t+1    begin_tick() polls the inbox (never waits): an ON_TIME answer
                is decoded and handed to the cast, which applies what changed;
                a LATE, DROPPED or FAILED one, or one still missing once its
                deadline has passed, hands its NPCs back as `missed`: the
                built-in behaviour decides them from this tick on, a bounded
                slice a tick (npc/minds/think.py FALLBACK_SHARE), and a late
                answer that still arrives is ignored

So a dead or slow worker costs the NPCs one tick of delay, never the tick
its budget. A worker's decoded answer is checked for shape, dtype and range
(`_decoded`: an action of the vocabulary, a place of the map); the apply
still refuses an action the file does not allow, the world a dead target.
Measured (s18c, 10,000 NPCs, 1,000 observers, load ~6.5 on the 2-core
machine): the rows were ~11.5% of the policy tick's py-spy samples (_build)
and the request's gather stays (~4%); `bench/decisions.py --compare` against
main, 8 rounds of 40 ticks: cast.tick() thread CPU p50 with the policy 24.7
against 30.8 ms (0.80x), p99 35.1 against 42.0, built-in 0.98x, every
round's fingerprint the same; in one process taking turns (rows in the tick
/ in the worker, 12 rounds of 40 ticks): 29.0 -> 23.2 ms p50 (0.80x).
With the smaller request (below), --compare again at load ~13: 26.0 against
33.2 ms p50 (0.78x), built-in 0.97x, fingerprints the same. What
it costs elsewhere (captured requests of that scene, 1,000 rows a tick,
load ~13): the worker builds the rows in 4.8-6.1 ms thread CPU p50 beside
its forward pass, so the answer comes later: round trip p50 49.8 -> 69.6
ms, p90 69.0 -> 85.6 (in-process turns, load ~12; on a quiet machine the
old round trip was 12.8 ms p50, README); with the smaller request, in-process
turns at load ~7: tick 21.0 -> 17.5 ms p50 (0.83x), round trip p50 23.4 ->
30.2 ms, p90 33.3 -> 43.9. That is the cost to weigh against the one-tick
deadline: under load more answers may come late (then the built-in decides
them; tests/npc/minds' one-NPC on-time test, budget 50 ms, failed 2 of 13
runs at load 8-14 with this, 0 of 5 on main; in s19b 5 of 10 at load ~20-25,
the answers late and the built-in deciding, as it should: that test now
gives its answers a 30 s deadline, the late test keeps 50 ms). The request packs to 777 KB
against the rows' 868 KB (what a broker worker receives): as first sent,
with the Sight's ~11 pairs per NPC whole and every NPC's position, it was
1,203 KB; observe.request now leaves out p_row (the runs `start` says),
sends p_id / p_pos of each row's nearest K pairs only (all that _players
reads) and the NPCs' CELL squares as int32, the same rows bit for bit.
A real-time run (`--sizes 10000 --seconds 20 --blocks 4`) at load 10-12 was
not comparable (built-in 144 ms p50: the machine, not the tick). Bounds: at most `max_pending` requests (ticks) in flight; past
that a tick's rows go straight to the built-in (counted as "skipped").

Which files it follows (`follows`): not a file that says `decider =
"builtin"`, and only once the guard (npc/policy/guard.py) has measured, off
the tick, that the policy agrees with the file's built-in behaviour often
enough; until then, and below the threshold, the built-in decides.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

import numpy as np

from world.sim import NPC

from npc.files.schema import Definition
from npc.inference import Inbox, Outcome, Pool, PoolConfig
from npc.minds.sight import Sight
from npc.minds import think
from npc.minds.think import Answers
from npc.policy import observe

if TYPE_CHECKING:
    from npc.policy.guard import Check  # (at run time it is imported where it is used, as before)

log = logging.getLogger("npcworld.npc")

OUTCOMES = ("on_time", "late", "dropped", "failed", "skipped")
LATENCY_KEPT = 4096  # newest decision latencies kept (for benchmarks), seconds
GUARD_TIMEOUT_S = 60.0  # a guard's pool requests wait this long (off the tick) before the file stays built-in


class PolicyDecider:
    """The cast's decider (npc/policy/protocol.py) for the learned policy on a pool."""

    def __init__(
        self,
        pool: Pool,
        world,
        budget_s: float,
        clock: Callable[[], float] = time.monotonic,
        max_pending: int = 8,
        guard: bool = True,
        rows_in_worker: bool = True,
    ):
        self.pool = pool
        self.world = world
        self.budget_s = budget_s
        self.clock = clock
        self.max_pending = max_pending
        # True: the tick sends observe.request(...) and the worker builds the rows and decodes its answer
        # (npc/policy/model.py `decoded`); False: the tick builds the rows and decodes (as before s18c)
        self.rows_in_worker = rows_in_worker
        self.inbox = Inbox()
        self.asked: list[Sight] = []
        self._skipped: list[np.ndarray] = []  # rows not sent (too many in flight): built-in next tick
        self.pending: dict[int, tuple] = {}  # id(future) -> (future, sights, rows or _Sent, deadline)
        self.decisions = {o: 0 for o in OUTCOMES}  # NPC decisions by outcome (rows per request)
        self.rejected = 0  # answers that could not be applied (masks)
        self.latencies: collections.deque = collections.deque(maxlen=LATENCY_KEPT)
        self.batch_rows: collections.deque = collections.deque(maxlen=LATENCY_KEPT)
        self.audit = False  # also compute the built-in on answers (bench only)
        self.agree = [0, 0]  # audited rows: (same action, all)
        # the guard: per definition id, (definition checked, Check or None while running)
        self.checks: dict[str, tuple[Definition, Check | None]] = {}
        self.guard = guard
        self._guards = ThreadPoolExecutor(1, thread_name_prefix="policy-guard") if guard else None
        self._lock = threading.Lock()

    # -- which files -------------------------------------------------------------------------

    def loaded(self, defn: Definition) -> None:
        """A file was (re)loaded: measure the policy on it, off the tick."""
        if getattr(defn, "decider", "auto") == "builtin" or not self.guard:
            return
        if {"on_decide", "on_event"} & set(getattr(defn, "hook_names", ())):
            return  # never asked of the policy (its hooks decide): no rollout, whose hooks would log again
        with self._lock:
            self.checks[defn.id] = (defn, None)
        assert self._guards is not None  # made when guard is on (checked above)
        self._guards.submit(self._check, defn)

    def _check(self, defn: Definition) -> None:
        from npc.policy import guard

        try:
            check = guard.agreement(defn, self.world.map, self._run_policy)
        except Exception as e:  # the guard failing keeps the built-in: say why
            log.exception("npc %s: the policy guard failed", defn.id)
            check = guard.Check(
                defn.file, 0.0, 0.0, 0, False, f"the guard could not run ({e}): the built-in behaviour decides"
            )
        with self._lock:
            if self.checks.get(defn.id, (None,))[0] is defn:
                self.checks[defn.id] = (defn, check)
        (log.info if check.ok else log.warning)("npc %s (%s): %s", defn.id, defn.file, check.reason)

    def _run_policy(self, obs, mask, tmask):
        fut = self.pool.submit({"obs": obs, "mask": mask, "tmask": tmask}, self.clock() + GUARD_TIMEOUT_S)
        if not fut.wait(GUARD_TIMEOUT_S + 5) or not fut.ok:
            raise RuntimeError(f"no answer from the policy workers ({fut.outcome})")
        return np.asarray(fut.value["action"]), np.asarray(fut.value["target"])

    def wait_checked(self, timeout: float) -> bool:
        """Block until the guard has checked every file loaded so far (never from the tick); False on timeout."""
        if self._guards is None:
            return True
        try:
            self._guards.submit(lambda: None).result(timeout)  # one guard thread: runs after the checks
            return True
        except Exception:
            return False

    def serving(self) -> bool:
        """A worker is ready. While none is (all dead, restarting), nothing is asked: the built-in decides
        at once instead of after a failed request, so an outage costs the built-in's tick, not both paths'."""
        return self.pool.stats.workers_ready > 0

    def follows(self, defn: Definition) -> bool:
        if getattr(defn, "decider", "auto") == "builtin" or not self.serving():
            return False
        if not self.guard:
            return True
        hit = self.checks.get(defn.id)
        return hit is not None and hit[0] is defn and hit[1] is not None and hit[1].ok

    def status(self, defn: Definition) -> dict:
        """For GET /npcs and the log: whether the policy decides this file, and why."""
        if getattr(defn, "decider", "auto") == "builtin":
            return {"policy": False, "why": 'the file says decider = "builtin"'}
        if not self.guard:
            if not self.serving():
                return {
                    "policy": False,
                    "why": "no policy worker is ready (starting or restarting): the built-in "
                    "behaviour decides meanwhile",
                }
            return {"policy": True, "why": "the policy decides (no guard)"}
        hit = self.checks.get(defn.id)
        if hit is None or hit[0] is not defn or hit[1] is None:
            return {
                "policy": False,
                "why": "checking the policy on this file; the built-in behaviour decides meanwhile",
            }
        c = hit[1]
        if c.ok and not self.serving():
            return {
                "policy": False,
                "why": "no policy worker is ready (restarting): the built-in behaviour decides meanwhile",
                "agreement": round(float(c.agreement), 4),
            }
        return {"policy": bool(c.ok), "why": c.reason, "agreement": round(float(c.agreement), 4)}

    # -- the cast's side ---------------------------------------------------------------------

    def begin_tick(self, now_s: float) -> Answers:
        out = Answers()
        missed, self._skipped = self._skipped, []
        done = set()
        for fut in self.inbox.poll():
            entry = self.pending.pop(id(fut), None)
            if entry is None:
                continue  # already handed back as missed
            done.add(id(fut))
            _, sights, rows, _ = entry
            assert fut.outcome is not None  # it is done
            self.decisions[fut.outcome.value] += len(rows.eid)
            if fut.latency is not None:
                self.latencies.append(fut.latency)
            if fut.outcome is not Outcome.ON_TIME:
                missed.append(rows.eid)
                continue
            try:
                replies, bad = self._decode(sights, rows, fut.value)
            except (TypeError, KeyError, IndexError, ValueError):
                self.rejected += len(rows.eid)
                missed.append(rows.eid)
                continue
            out.replies += replies
            if len(bad):
                missed.append(bad)
        now = self.clock()
        for key, (fut, sights, rows, deadline) in list(self.pending.items()):
            if now > deadline:  # past its deadline and not back: the built-in decides now
                del self.pending[key]
                self.decisions["late"] += len(rows.eid)
                missed.append(rows.eid)
        if missed:
            out.missed = np.concatenate(missed)
        return out

    def _decode(self, sights: list[Sight], rows, value) -> tuple[list, np.ndarray]:
        """(replies per sight, NPCs whose answer can't be applied: the built-in decides them)."""
        if isinstance(rows, _Sent):
            d, finishing = self._decoded(len(rows.eid), value)
        else:
            action = np.asarray(value["action"], np.int64)
            target = np.asarray(value["target"], np.int64)
            if action.shape != (len(rows.eid),) or target.shape != (len(rows.eid),):
                raise ValueError("answer of the wrong shape")
            d = observe.decode(rows.slots, action, target, rows.mask, rows.tmask, rows.finishing)
            finishing = rows.finishing
        go = d.ok & ~finishing  # finishing a talk or gift: nothing to apply
        self.rejected += int((~d.ok).sum())
        out, lo = [], 0
        for s in sights:
            hi = lo + len(s)
            sel = go[lo:hi]
            if sel.any():
                part = s if sel.all() else think.take(s, sel, pairs=self.audit)  # (the audit decides: pairs)
                a = d.action[lo:hi][sel]
                if self.audit:
                    self._audit(part, a)
                out.append((part, a, d.target[lo:hi][sel], d.place[lo:hi][sel].astype(np.int32)))
            lo = hi
        return out, rows.eid[~d.ok]

    def _decoded(self, n: int, value) -> tuple[observe.Decoded, np.ndarray]:
        """A worker's decoded answer (npc/policy/model.py `decoded`), checked for shape and range: an
        action of the vocabulary where ok, a place of the map or -1 (the world refuses a target that is
        not alive, the apply an action the file does not allow)."""
        d = observe.Decoded(
            np.asarray(value["action"]),
            np.asarray(value["target"]),
            np.asarray(value["place"]),
            np.asarray(value["ok"]),
        )
        finishing = np.asarray(value["finishing"])
        want = ((d.action, np.int8), (d.target, np.int64), (d.place, np.int32), (d.ok, bool), (finishing, bool))
        if any(a.shape != (n,) or a.dtype != t for a, t in want):
            raise ValueError("answer of the wrong shape")
        ok = d.ok
        if ((d.action[ok] < 0) | (d.action[ok] >= observe.A)).any() or (
            (d.place < -1) | (d.place >= len(self.world.places))
        ).any():
            raise ValueError("answer out of range")
        return d, finishing

    def _audit(self, s: Sight, action: np.ndarray) -> None:
        from npc.minds import builtin

        v = builtin.decide(s, self.world.places)
        label, _ = observe.label(s, v)
        self.agree[0] += int((label == action).sum())
        self.agree[1] += len(s)

    def ask(self, sight: Sight) -> None:
        self.asked.append(sight)

    def note(self, sight: Sight, verdict) -> None:
        pass

    def end_tick(self) -> None:
        sights, self.asked = self.asked, []
        if not sights:
            return
        n = sum(len(s) for s in sights)
        if len(self.pending) >= self.max_pending:
            self.decisions["skipped"] += n
            self._skipped += [s.eid for s in sights]
            return
        w = self.world
        try:
            args = (sights, tuple(w.map.world_size), w.place_positions(), w.of_kind(NPC)[1], w.places)
            if self.rows_in_worker:  # the worker builds the rows (npc/policy/model.py)
                req = observe.request(*args)
                rows: observe.Rows | _Sent = _Sent(np.asarray(req.get("eid", np.zeros(0)), np.int64))
                payload: dict[str, Any] = {"rows": req}
            else:
                rows = observe.rows(*args)
                payload = {"obs": rows.obs, "mask": rows.mask, "tmask": rows.tmask}
        except Exception:
            self._skipped += [s.eid for s in sights]  # the built-in decides them at the next tick
            raise
        fut = self.pool.submit(payload, self.clock() + self.budget_s, inbox=self.inbox)
        self.batch_rows.append(n)
        self.pending[id(fut)] = (fut, sights, rows, fut.deadline)

    def close(self) -> None:
        if self._guards is not None:
            self._guards.shutdown(wait=False, cancel_futures=True)
        self.pool.close()

    # -- metrics -----------------------------------------------------------------------------

    def collect(self, prefix: str = "npcworld_npc") -> list[Metric]:
        """/metrics families (a prometheus-client collector): the decisions, the files' checks,
        and the pool's counters and its remote workers'."""
        decisions = CounterMetricFamily(
            f"{prefix}_policy_decisions_total",
            "NPC decisions asked of the policy, by outcome (on_time: applied; the others: "
            "the built-in behaviour decided at the next tick).",
            labels=["outcome"],
        )
        for o, n in self.decisions.items():
            decisions.add_metric([o], n)
        files = GaugeMetricFamily(
            f"{prefix}_policy_files", "NPC files the policy decides (1) or not (0), by file id.", labels=["npc"]
        )
        with self._lock:  # (the guard thread writes checks)
            checks = sorted(self.checks.items())
        for k, (_, c) in checks:
            files.add_metric([k], int(bool(c is not None and c.ok)))
        running = sum(1 for _, (_, c) in checks if c is None)
        return [
            decisions,
            files,
            GaugeMetricFamily(
                f"{prefix}_policy_checks_running",
                "NPC files whose policy check is still running "
                "(the built-in decides them meanwhile; a load test waits for 0).",
                value=running,
            ),
            *self.pool.collect(),
        ]


class _Sent(NamedTuple):
    """A request sent as {"rows": observe.request(...)}: its rows' NPCs (the worker has the rest)."""

    eid: np.ndarray


def start_decider(
    world,
    *,
    weights: str | None,
    module: str = "npc.policy.model:build_policy",
    workers: int | None = None,
    devices: list[str] | None = None,
    budget_s: float = 0.05,
    guard: bool = True,
    standby: bool = True,
    rows_in_worker: bool = True,
    **pool_options,
) -> PolicyDecider:
    """A started pool running the policy (npc/policy/model.py:PolicyRunner), and its decider for `Cast.decider`.
    Returns at once: until a worker is ready the guard waits and the built-in behaviour decides.
    standby: each worker has a warm standby (PoolConfig.standby): a killed worker is replaced at once, and
    the replacement's torch import and model load happen later, at the lowest priority (the policy is
    small: one more process of ~250 MB on CPU)."""
    cfg = PoolConfig(
        runner="npc.policy.model:PolicyRunner",
        runner_options={"module": module, "weights": weights or None},
        workers=workers,
        devices=devices,
        standby=standby,
        **pool_options,
    )
    pool = Pool(cfg).start()
    return PolicyDecider(pool, world, budget_s, guard=guard, rows_in_worker=rows_in_worker)
