"""The cast: the NPCs of the NPC files, living in one world (the registry).

It holds the definitions and the minds (one per NPC entity), swaps
definitions in on (re)load, spawns and despawns, and keeps the built-in
state as arrays (npc/minds/state.py). The work of a tick is elsewhere:
`tick()` runs, before `world.step`,
1. hearing (npc/minds/hearing.py): lines said since the last tick, heard by
   the NPCs within their `hear` radius;
2. thinking (npc/minds/think.py): the NPCs due to re-think, a whole file's
   at once, decided by the learned policy (`Cast.decider`), by the built-in
   behaviour, or by their hooks.

Definitions are swapped by `apply()` (start, hot reload, admin reload)
between ticks. Entities keep their id across a reload unless their name or
colour changed: then the entity is despawned and respawned at the same
place with a new id (clients see a leave and an enter), keeping its memory.

Nothing here blocks: file I/O happens before `apply()` (npc/files/reload.py
runs it in a thread); designer code runs only inside `hooks.Guard`.
"""

from __future__ import annotations

import logging
import random
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from world import nearby
from world.sim import NPC, PLAYER, World

from npc import hooks
from npc.files.journal import Journal
from npc.files.loader import Loaded, duplicate, free_at, load_files, map_places, npc_files
from npc.files.schema import Definition, Problem
from npc.hooks import Context, Guard, Report
from npc.minds import hearing, think
from npc.minds.builtin import Decision, Words
from npc.minds.perception import Perception, Seen, State
from npc.minds.sight import look, perception
from npc.minds.state import BY_DIALOGUE, LINES, Ledger, Rows
from npc.minds.throttle import Throttle

if TYPE_CHECKING:
    from npc.policy.protocol import Decider

log = logging.getLogger("npcworld.npc")

MAX_REPORTS = 200  # reports kept for GET /errors (the newest)
MIND_REPORTS = 5  # reports kept per NPC for GET /npcs (of its file's running version only)
MIND_LINES = LINES  # lines said kept per NPC for GET /npcs/<id> (npc/minds/state.py)
LOG_EVERY = 100  # a repeated error is logged the first time, then once every this many
PLAYER_CELL = 160.0  # world units: the players' grid cell, the default notice radius (a query visits 3x3
# cells; 2.3x cheaper than 256-unit cells for 200 NPCs and 1,000 players)
CARRIED = ("tending", "patrol", "gifts")  # state-table columns a respawn (a new name or colour) keeps
URGENT_PER_TICK = 64  # NPCs thinking out of turn (after a reload, a spawn) per tick at most; the rest wait


@dataclass
class Mind:
    eid: int
    defn: Definition
    n: int  # instance number (1..count; higher for admin spawns)
    extra: bool = False  # spawned by an admin, not by the file's count
    memory: dict = field(default_factory=dict)  # the hooks' memory; survives reloads and respawns
    state: State = field(default_factory=State)
    rng: random.Random = field(default_factory=random.Random)
    reason: str = ""  # a hook's or a conversation's last decision, in words
    reports: deque = field(default_factory=lambda: deque(maxlen=MIND_REPORTS))
    # Its lines live in the state table's ring (Rows.said_*, written for a tick's speakers at once);
    # `kept` holds them once it left the table (a despawn: a respawn carries them over).
    table: Rows | None = None
    kept: list = field(default_factory=list)

    def _row(self) -> int | None:
        t = self.table
        r = t.row_of.get(self.eid) if t is not None else None
        return r if r is not None and t is not None and t.eid[r] == self.eid else None

    @property
    def lines(self) -> list[tuple[float, str]]:
        """(world s, text) of its last MIND_LINES lines, oldest first."""
        r = self._row()
        return self.kept if r is None or self.table is None else self.table.lines_of(r)

    @property
    def last_said(self) -> str | None:
        lines = self.lines
        return lines[-1][1] if lines else None

    @property
    def last_said_s(self) -> float | None:
        lines = self.lines
        return lines[-1][0] if lines else None

    def said(self, text: str, at_s: float) -> None:
        """It said a line (a reply, a hook's): its last line and its recent lines. (A tick's greetings
        and gifts' words are written for all speakers at once: think.say_pending.)"""
        r = self._row()
        if r is not None and self.table is not None:
            self.table.say(np.asarray([r]), [text], at_s)
        else:
            self.kept = (self.kept + [(at_s, text)])[-MIND_LINES:]

    def leave(self) -> None:
        """It leaves the state table (despawned): its lines are kept here."""
        self.kept, self.table = self.lines, None


class Cast:
    def __init__(
        self, world: World, npc_dir: str | None, *, tick_rate: int = 20, think_s: float = 0.5, budget_ms: float = 5.0
    ):
        self.world = world
        self.dir = Path(npc_dir) if npc_dir else None
        self.places, self.spawn_points = map_places(world.map)
        self.free = free_at(world.map)
        self.think_every = max(1, round(think_s * tick_rate))
        self.budget_s = budget_ms / 1000.0
        self.defs: dict[str, Definition] = {}
        self.owner: dict[str, str] = {}  # definition id -> its file
        self.file_ids: dict[str, str] = {}  # file -> id of its running definition
        self.hooks_of: dict[str, str | None] = {}  # file -> the hooks module its last load named
        self.problems: dict[str, list[Problem]] = {}  # file -> why its last load failed
        self.guards: dict[str, Guard] = {}
        self.minds: dict[int, Mind] = {}
        self.reports: deque[Report] = deque(maxlen=MAX_REPORTS)
        self.urgent: set[int] = set()  # think at the next tick
        # NPCs whose policy answer missed, oldest first: the built-in decides them a slice a tick (think.py)
        self.fallback = np.zeros(0, np.int64)
        # NPC id -> world second until which a conversation holds it (npc/dialogue/service.py): it does
        # not re-think (no schedule, need, policy or hook moves it) and keeps its talk intent until then.
        self.holding: dict[int, float] = {}
        # (NPC id, player id) -> (line, world s) of a talk just heard by on_hear (npc/minds/hearing.spoken):
        # the same line as chat is not heard by that NPC again
        self.spoken: dict[tuple[int, int], tuple[str, float]] = {}
        self.rows = Rows()  # the built-in state, one row per mind
        self.ledger = Ledger(self.think_every)  # per (NPC, player) times
        self.def_list: list[Definition | None] = []  # Rows.defi -> definition (None: removed)
        self.def_index: dict[str, int] = {}
        self._numbers: dict[str, int] = {}  # the next instance number of an admin spawn, per file
        self._despawned_seen = -1
        self._gone: list[int] = []  # entities to forget in the ledger
        self._repeats: dict[tuple, int] = {}  # a report's signature (with its file's version) -> count
        self.slow_log = Throttle()  # slow hooks' log lines: one per file and hook a minute
        self.versions: dict[str, int] = {}  # definition id -> how many times it was installed
        self.journal = Journal()  # the reload log (GET /log)
        self._players_at = -1
        self._players: tuple = ()
        # An optional decider (npc/policy/protocol.py: the learned policy, or a recorder when training):
        # it decides the files it follows; None: the built-in behaviour (and hooks) decide everything.
        self.decider: Decider | None = None
        # True when a dialogue service answers players (npc/dialogue/service.py, via `talk`): the
        # built-in fallback answer to a chat line is then left to it (hooks still hear every line).
        self.model_replies = False
        # Items given since the game last took them: (NPC id, receiver id, item). The game hands them
        # to the players' accounts after each tick (server/game.py); whoever else receives one drops it.
        self.gifts: list[tuple[int, int, str]] = []
        self.words = Words()  # the greetings' and gifts' lines, made once (npc/minds/builtin.py)
        self.saying: list[tuple] = []  # this tick's lines, said at once at the end of the think (think.say_pending)

    # -- loading -------------------------------------------------------------------

    def load_all(self) -> list[Loaded]:
        """Load every NPC file of the folder now (blocking: at startup)."""
        if self.dir is None:
            return []
        results = load_files(npc_files(self.dir), self.places, self.spawn_points, self.free)
        self.apply(results, removed=[f for f in self.file_ids if not Path(f).exists()])
        return results

    def apply(self, results: list[Loaded], removed: Sequence[str] = ()) -> dict:
        """Swap in what was loaded: good files replace their running version, broken ones keep it."""
        loaded, failed = [], []
        for f in removed:
            self.problems.pop(f, None)
            self.hooks_of.pop(f, None)
            old = self.file_ids.pop(f, None)
            if old is not None:
                log.info("npc %s: %s was removed; despawning", old, f)
                self._remove(old)
                self.journal.add("reload", f, None, f"{old}: the file was removed; its NPCs left the world")
        for r in results:
            self.hooks_of[r.file] = r.hooks_file
            problems = list(r.problems)
            defn = r.definition
            fns = None
            if defn is not None:
                first = self.owner.get(defn.id)
                if first is not None and first != r.file:
                    problems.append(duplicate(r, first))
                else:
                    fns, hook_problems = hooks.install(defn, self.budget_s * hooks.CAP_FACTOR)
                    problems.extend(hook_problems)
            if problems:
                self.problems[r.file] = problems
                kept = self.file_ids.get(r.file)
                for p in problems:
                    self.report(
                        Report(
                            "load",
                            p.message + f" (expected {p.expected})",
                            p.file,
                            kept or "",
                            line=p.line,
                            at_s=self.world.time_s,
                        ),
                        text=str(p) + (f" - keeping the running version of {kept!r}" if kept else ""),
                    )
                    self.journal.add(
                        "error",
                        p.file,
                        p.line,
                        f"{p.message} (expected {p.expected})"
                        + (f"; the running version of {kept!r} goes on" if kept else "; not loaded"),
                    )
                failed.append({"file": r.file, "problems": [p.as_dict() for p in problems], "kept": kept})
                continue
            self.problems.pop(r.file, None)
            assert defn is not None  # a file without a definition has problems
            old_id = self.file_ids.get(r.file)
            if old_id is not None and old_id != defn.id:
                self._remove(old_id)
            self._install(defn, fns)
            loaded.append(defn.id)
        return {"loaded": loaded, "failed": failed}

    def install(self, defn: Definition) -> None:
        """Put a definition in without a file on disk (training rollouts, tests): as a successful load."""
        fns, problems = hooks.install(defn, self.budget_s * hooks.CAP_FACTOR)
        if problems:
            raise ValueError("; ".join(str(p) for p in problems))
        self._install(defn, fns)

    def _install(self, defn: Definition, fns: dict | None) -> None:
        old = self.defs.get(defn.id)
        self.defs[defn.id] = defn
        if defn.id not in self.def_index:
            self.def_index[defn.id] = len(self.def_list)
            self.def_list.append(defn)
        self.def_list[self.def_index[defn.id]] = defn
        self.owner[defn.id] = defn.file
        self.file_ids[defn.file] = defn.id
        self.guards[defn.id] = Guard(defn, fns or {}, self.budget_s, self.report)
        self.versions[defn.id] = self.versions.get(defn.id, 0) + 1  # its reports' counts start again
        mine = [m for m in self.minds.values() if m.defn.id == defn.id]
        for m in mine:
            m.reports.clear()  # reports of the version just replaced: fixed, or to be seen again
            renamed = (
                m.defn.instance_name(m.n) != defn.instance_name(m.n)
                or m.defn.color != defn.color
                or ("talk" in m.defn.allowed) != ("talk" in defn.allowed)
            )  # a new entity record
            m.defn = defn
            if renamed:
                self._respawn(m)
            else:
                self._needs(m, fresh=False)
                self.world.set_speed(m.eid, defn.speed)
                self.urgent.add(m.eid)
        regular = sorted((m for m in self.minds.values() if m.defn.id == defn.id and not m.extra), key=lambda m: m.n)
        have = {m.n for m in regular}
        for m in regular:
            if m.n > defn.count:
                self.despawn(m.eid)
        for n in range(1, defn.count + 1):
            if n not in have:
                self._spawn(defn, n)
        n = sum(1 for m in self.minds.values() if m.defn.id == defn.id)
        log.info("npc %s %s from %s (%d in the world)", defn.id, "reloaded" if old else "loaded", defn.file, n)
        self.journal.add(
            "reload" if old else "load",
            defn.file,
            None,
            f"{defn.id} {'reloaded' if old else 'loaded'} ({n} in the world"
            + (f"; hooks {', '.join(sorted(fns))}" if fns else "")
            + ")",
        )
        loaded = getattr(self.decider, "loaded", None)
        if loaded is not None:
            loaded(defn)  # the policy's guard checks the file it would decide (off the tick)

    def _remove(self, def_id: str) -> None:
        for m in [m for m in self.minds.values() if m.defn.id == def_id]:
            self.despawn(m.eid)
        self.defs.pop(def_id, None)
        self.guards.pop(def_id, None)
        i = self.def_index.pop(def_id, None)
        if i is not None:
            self.def_list[i] = None
        f = self.owner.pop(def_id, None)
        if f is not None and self.file_ids.get(f) == def_id:
            del self.file_ids[f]

    # -- entities ------------------------------------------------------------------------

    def spawn(self, def_id: str, place: str | None = None) -> int:
        """An extra instance of an NPC file (admin); KeyError / ValueError saying why not."""
        defn = self.defs.get(def_id)
        if defn is None:
            raise KeyError(f"no NPC file with id {def_id!r}; loaded: {', '.join(sorted(self.defs)) or 'none'}")
        if place is not None and place not in self.spawn_points:
            raise ValueError(f"unknown place {place!r}; expected one of {', '.join(self.spawn_points)}")
        n = self._numbers.get(def_id) or 1 + max((m.n for m in self.minds.values() if m.defn.id == def_id), default=0)
        self._numbers[def_id] = n + 1
        return self._spawn(defn, n, extra=True, place=place).eid

    def _spawn(
        self,
        defn: Definition,
        n: int,
        extra: bool = False,
        place: str | None = None,
        xy: tuple[float, float] | None = None,
        like: Mind | None = None,
        carried: dict[str, int] | None = None,
    ) -> Mind:
        name = defn.instance_name(n)
        if xy is None and place is None and isinstance(defn.spawn, tuple):
            xy = defn.spawn
        talks = "talk" in defn.allowed  # in its entity record: clients send lines only to NPCs that talk
        if xy is not None:
            eid = self.world.spawn(NPC, name, defn.color, *xy, talks=talks)
        else:
            # (a position in defn.spawn was taken as xy above, unless `place` was given)
            eid = self.world.spawn(
                NPC, name, defn.color, talks=talks, place=place or (defn.spawn if isinstance(defn.spawn, str) else None)
            )
        m = Mind(eid, defn, n, extra, rng=random.Random(eid), table=self.rows)
        self.world.set_speed(eid, defn.speed)
        row = self.rows.add(eid, self.def_index[defn.id])
        if like is not None:
            m.memory, m.state = like.memory, like.state
            self.rows.put_lines(row, like.lines)  # its reports are of the old id: not carried over
        for col, value in (carried or {}).items():
            getattr(self.rows, col)[row] = value
        self.minds[eid] = m
        self._needs(m, fresh=like is None)
        self.urgent.add(eid)
        guard = self.guards.get(defn.id)
        if guard is not None and guard.has("on_spawn"):
            ctx = self.context(m, self.perceive(m))
            if guard.call("on_spawn", ctx) and ctx.intent is not None:
                self.act(m, ctx.intent, think.BY_HOOK)
        return m

    def _respawn(self, m: Mind) -> None:
        """Despawn and spawn again where it stood (a new id): clients learn a new name or colour."""
        xy = self.world.position(m.eid)
        stats = self.world.stats(m.eid)
        old = self.rows.row_of.get(m.eid)  # read before the despawn drops its row
        carried = {} if old is None else {col: int(getattr(self.rows, col)[old]) for col in CARRIED}
        self.despawn(m.eid)
        new = self._spawn(m.defn, m.n, m.extra, xy=xy, like=m, carried=carried)
        self.world.set_stats(new.eid, stats)
        log.info("npc %s: name or colour changed; entity %d is now %d", m.defn.id, m.eid, new.eid)

    def despawn(self, eid: int) -> None:
        """Remove an NPC (of a file, or a generic wanderer); KeyError if there is none with that id."""
        if eid not in self.minds and (not self.world.alive(eid) or self.world.kind_of(eid) != NPC):
            raise KeyError(f"no NPC with id {eid}")
        m = self.minds.pop(eid, None)
        if m is not None:
            m.leave()
        self.rows.remove(eid)
        self._gone.append(eid)
        self.urgent.discard(eid)
        self.world.despawn(eid)

    def _needs(self, m: Mind, fresh: bool) -> None:
        """Give the entity its file's needs: start values (when new) and rates for what it does."""
        have = self.world.stats(m.eid)
        start = {n.name: n.start for n in m.defn.needs if fresh or n.name not in have}
        if start:
            self.world.set_stats(m.eid, start)
        intent = self.world.intent(m.eid)
        self._rates(m, intent.action, intent.activity)

    def _rates(self, m: Mind, action: str, activity: str | None) -> None:
        """Each need's rate: its base rate, plus its `during` rate for the activity (or action) once
        the NPC is doing it: at its place (arrived), or anywhere for an intent without a place."""
        it = self.world.intent(m.eid)
        doing = it.arrived or it.place is None
        rates = {}
        for need in m.defn.needs:
            extra = need.during.get(activity or action, need.during.get(action, 0.0)) if doing else 0.0
            rates[need.name] = need.rate + extra
        dropped = {k: 0.0 for k in self.world.stats(m.eid) if k not in rates}
        if rates or dropped:
            self.world.set_stat_rates(m.eid, {**dropped, **rates})

    # -- the tick ---------------------------------------------------------------------------

    def tick(self) -> None:
        """Hearing and thinking for this tick; call before world.step()."""
        lines = self.world.take_lines()
        if not self.minds:
            return
        gone = []
        if self.world.despawned != self._despawned_seen:  # something left the world: an NPC behind our back?
            self._despawned_seen = self.world.despawned
            gone = [eid for eid in self.minds if not self.world.alive(eid)]
        for eid in gone:  # removed behind the cast's back: forget it
            self.minds.pop(eid).leave()
            self.rows.remove(eid)
            self.urgent.discard(eid)
        self._gone += gone
        if lines:
            try:
                hearing.hear(self, lines)
            except Exception as e:  # a bug here must not stop the tick (or the world)
                self.internal(e, None)
        try:
            self._forget_gone()
            think.think(self)
        except Exception as e:
            self.internal(e, None)
        if self.saying:  # a think cut short by a bug: what it decided is still said
            try:
                think.say_pending(self)
            except Exception as e:
                self.internal(e, None)

    def _forget_gone(self) -> None:
        ids = self.players()[0]
        if len(self._gone) or (self.world.tick % 200 == 0 and len(self.ledger.noticed)):
            # players who left (every 200 ticks: cheap enough, and bounds the ledger)
            known = np.unique(np.concatenate([self.ledger.greeted.keys, self.ledger.noticed.keys]) & 0xFFFFFFFF)
            left = known[~np.isin(known, ids)] if self.world.tick % 200 == 0 else np.zeros(0, np.int64)
            self.ledger.forget(np.concatenate([np.asarray(self._gone, np.int64), left]))
            self._gone = []

    def internal(self, e: Exception, m: Mind | None) -> None:
        self.report(
            Report(
                "internal",
                f"{type(e).__name__}: {e}",
                m.defn.file if m else "",
                m.defn.id if m else "",
                m.eid if m else None,
                traceback="".join(traceback.format_exception(type(e), e, e.__traceback__)),
                at_s=self.world.time_s,
            )
        )

    def players(self) -> tuple[np.ndarray, np.ndarray, nearby.Index]:
        """(ids, centres, grid index of the centres) of the players in the world, made once per tick."""
        if self._players_at != self.world.tick:
            ids, pos = self.world.of_kind(PLAYER)
            self._players = (ids, pos, nearby.Index(pos, PLAYER_CELL))
            self._players_at = self.world.tick
        return self._players

    def perceive(self, m: Mind) -> Perception:
        """What one NPC perceives now (for a hook or a conversation), without advancing its state."""
        row = self.rows.row_of[m.eid]
        s = look(
            self.world,
            m.defn,
            np.asarray([m.eid], np.int64),
            np.asarray([row]),
            self.rows,
            self.ledger,
            self.players(),
            advance=False,
        )
        return perception(s, 0, self.world)

    def gifts_given(self, eid: int) -> int:
        """Items this NPC has given so far. (Not `gifts`: that is the list of items given since the
        game last took them, an attribute, which hid a method of that name: every call failed.)"""
        return int(self.rows.gifts[self.rows.row_of[eid]])

    def _others(self, m: Mind, xy: tuple[float, float]) -> tuple[Seen, ...]:
        ids, pos = self.world.of_kind(NPC)
        dist = np.hypot(pos[:, 0] - xy[0], pos[:, 1] - xy[1])
        near = np.flatnonzero((dist <= m.defn.senses["notice"]) & (ids != m.eid))
        near = near[np.argsort(dist[near], kind="stable")]
        return tuple(
            Seen(
                int(ids[i]), self.world.name_of(int(ids[i])), "npc", float(dist[i]), float(pos[i, 0]), float(pos[i, 1])
            )
            for i in near.tolist()
        )

    def context(self, m: Mind, p: Perception | Callable[[], Perception], builtin=None) -> Context:
        """The `npc` a hook gets. p: what it perceives, or () -> it (called only if the hook reads what
        it perceives). builtin: () -> the built-in's Decision (computed on demand by default)."""
        if builtin is None:

            def builtin() -> Decision:
                return think.builtin_one(self, m)

        perceive: Callable[[], Perception] = (lambda: p) if isinstance(p, Perception) else p
        w = self.world
        return Context(
            m.defn,
            m.eid,
            w.name_of(m.eid),
            w.time_s,
            perceive,
            m.memory,
            m.rng,
            m.n,
            self.places,
            builtin,
            lambda xy: self._others(m, xy),
        )

    def hold(self, eid: int, until_s: float | None) -> None:
        """Keep an NPC as it is (talking) until world second `until_s`; None: let it go now."""
        if until_s is None:
            if self.holding.pop(eid, None) is not None:
                self.urgent.add(eid)  # back to its schedule at the next tick, not at its next turn
        else:
            self.holding[eid] = until_s

    def held(self) -> np.ndarray:
        """Ids of the NPCs a conversation holds now (expired holds dropped)."""
        now = self.world.time_s
        for eid in [e for e, t in self.holding.items() if t <= now or e not in self.minds]:
            del self.holding[eid]
            self.urgent.add(eid)
        return np.fromiter(self.holding, np.int64, len(self.holding))

    def act(self, m: Mind, d: Decision, by: int = BY_DIALOGUE, why: int = -1, need: int = -1) -> bool:
        """Give one NPC an intent (a hook's, a conversation's, a changed decision); False if refused."""
        return think.act(self, m, d, by, why, need)

    # -- reports and listings ----------------------------------------------------------------

    def report(self, r: Report, text: str | None = None) -> None:
        self.reports.append(r)
        m = self.minds.get(r.entity) if r.entity is not None else None
        if m is not None and m.defn.id == r.npc:
            m.reports.append(r)
        # Counted per version of the file: a new version's first error is logged with its traceback again.
        sig = (
            r.kind,
            r.file,
            r.npc,
            self.versions.get(r.npc, 0),
            r.hook,
            r.line,
            r.message if r.kind in ("load", "hook_disabled") else "",
        )
        n = self._repeats[sig] = self._repeats.get(sig, 0) + 1
        if len(self._repeats) > 10_000:  # bound: signatures of long-gone versions go first
            for k in list(self._repeats)[:5_000]:
                del self._repeats[k]
        if r.kind == "load" or r.kind == "hook_disabled":
            log.error("%s", text or r.message)
        elif r.kind == "hook_slow":  # at most a line per file and hook a minute (npc/minds/throttle.py)
            held = self.slow_log.admit((r.file, r.hook))
            if held is not None:
                name = Path(r.file).name
                more = f" ({held} more slow {r.hook} calls of {name} not logged since the last)" if held else ""
                log.warning("%s: %s%s", self._who(r), r.message, more)
        elif n == 1 or n % LOG_EVERY == 0:
            who = self._who(r)
            if n > 1:  # the traceback was logged with the first one of this version
                log.warning("%s: %s (x%d, same as before)", who, r.message, n)
            elif r.kind in ("hook_error", "internal"):
                log.error("%s: %s\n%s", who, r.message, r.traceback.rstrip())
            else:
                log.warning("%s: %s", who, r.message)
        if r.kind != "load" and n == 1 and r.kind != "internal":
            self.journal.add(
                "error",
                r.file,
                r.line,
                f"{r.npc}" + (f" ({r.entity})" if r.entity is not None else "") + f": {r.kind}: {r.message}",
            )

    @staticmethod
    def _who(r: Report) -> str:
        return f"npc {r.npc} ({r.entity})" if r.entity is not None else f"npc {r.npc}"

    def entry(self, m: Mind) -> dict:
        """One NPC as GET /npcs lists it (docs/designers.md describes every field)."""
        w = self.world
        it = w.intent(m.eid)
        x, y = w.position(m.eid)
        names = {n.name for n in m.defn.needs}
        return {
            "id": m.eid,
            "npc": m.defn.id,
            "name": w.name_of(m.eid),
            "file": m.defn.file,
            "number": m.n,
            "extra": m.extra,
            "action": it.action,
            "activity": it.activity,
            "place": it.place,
            "target": it.target,
            "arrived": it.arrived,
            **think.who_decided(self, m),
            "position": [round(x, 1), round(y, 1)],
            "at": w.place_near(x, y),
            "stats": {k: round(v, 2) for k, v in w.stats(m.eid).items() if k in names},
            "last_utterance": ({"text": m.last_said, "at_s": round(m.last_said_s or 0.0, 2)} if m.last_said else None),
            "hooks": self.guards[m.defn.id].status() if m.defn.id in self.guards else {"state": "none"},
            "errors": [r.as_dict() for r in m.reports],
        }

    def listing(self) -> dict:
        w = self.world
        gt = w.game_time
        return {
            "tick": w.tick,
            "time": {"day": gt.day, "clock": gt.clock},
            "npcs": [self.entry(m) for m in self.minds.values()],
            "wanderers": w.count(NPC) - len(self.minds),
        }

    def errors(self) -> dict:
        return {
            "files": {f: [p.as_dict() for p in ps] for f, ps in self.problems.items()},
            "recent": [r.as_dict() for r in self.reports],
        }
