"""The think step: which NPCs re-think this tick, who decides for them, and
how a decision reaches the world.

Each NPC re-thinks every `think_every` ticks (about 0.5 s), spread over the
ticks by entity id; an NPC whose file was just (re)loaded thinks at the next
tick, and NPCs whose policy answer missed (late, dropped, failed) are decided
by the built-in from the next tick on, a bounded slice a tick (FALLBACK_SHARE). All the due NPCs are
seen in one pass (`look_many`, npc/minds/sight.py: one gather of the world's columns, one grid query, one
read of the ledger; measured under load 15 at 10,000 NPCs: 11.3 ms a tick against 20.1 ms for one look
per file), which hands each file its `Sight` (slices), and for each file:

  the policy        when a decider follows the file (`decider.follows`) and
                    it has no on_decide / on_event hook: its rows are asked
                    (`decider.ask`) and the answer is applied when it comes
                    back, at the next tick. The built-in behaviour is NOT
                    computed for them.
  the built-in      otherwise (no decider, `decider = "builtin"` in the file,
                    a file the policy's guard found it does not follow), and
                    for the NPCs whose answer was late, dropped or failed:
                    npc/minds/builtin.py, all rows at once.
  hooks             files with on_decide / on_event: the built-in verdict is
                    computed (a hook may ask for it), then per NPC a
                    Perception, its events and its hooks; a hook's intent wins.

Applying (`apply_verdict`) only touches the world for the NPCs whose
decision differs from what they are doing (a think mostly confirms it), so
the tick's NPC cost follows the changes, not the NPC count. The lines the
verdicts say (greetings, gifts' words; made through the cast's `Words`
memo) are staged and said at once (`say_pending`: one World.say_many, one
write of the speakers' rings of lines in the state table), at the end of
the think and before any hook speaks, so the world hears them in the order
they were decided.

Measured (s17a, load 7-11 on the 2-core machine, 10,000 NPCs, 1,000 observers,
`bench/decisions.py --compare` against main: two processes taking turns, rounds
of 40 ticks, every round's positions and intents the same): s17a's cuts (np.take
for 2-D gathers, no np.isin in builtin.complete, the rows reading the look's
gathers as views) gave cast.tick() thread CPU p50 with the policy 0.93x and
1.06x of main in two runs of 12 and 16 rounds, built-in 0.94x and 1.03x: no
change beyond the noise at that load (rounds scatter by 5-8%), though
`complete` fell from 5.7% to 3.2% of the policy tick's py-spy samples and the
rows alone to 0.95x (interleaved, 10 captured ticks). The policy's tick costs more than
the built-in's (~28 against ~19 ms): the observation rows (~20% of it) and the
answers' completion and apply at the next tick (~25%) are more work than
builtin.decide. py-spy of the policy tick (main, 800 ticks): the look 30% (the
grid query 10%, the ledger's four reads 7%, their keys' sort 4%), the rows 15-20%
(the player fields 5%), the answers applied 18% (their lines 5%, need rates 4%),
the ledger's commit 6%.

s18c: the observation rows are built in the policy worker (npc/policy/decider.py, observe.request
and observe.build): the tick sends the Sights' columns and gets back the decoded answers.
--compare against main at 10,000 NPCs, load ~6.5: policy cast.tick() thread CPU p50 24.7 against
30.8 ms (0.80x), built-in 0.98x, fingerprints the same; with the request cut to what the rows read,
at load ~13: 26.0 against 33.2 ms (0.78x), built-in 0.97x, fingerprints the same. What is left of the policy tick (py-spy,
s18c before the change): the look 29% (grid query 10%, the ledger's read 7%), the answers' apply
18%, the ledger's commit 8.5%, hearing 7.5%, the lines said 5.6%. The rest of the issue's plan (the
look itself off the tick: a per-tick snapshot of the players' positions and the ledger's entries
for the worker) was not started: the look also advances the built-in state (how long each player
was within notice), so the tick would still query the grid for the due NPCs.

s19b: py-spy of the policy tick (main 24ee87f, 400 ticks at 10,000 NPCs / 1,000 observers, the policy on
one CPU worker answering between ticks, load ~13; cast.tick() thread CPU p50 17.8 ms against world.step 2.7,
build_views + pushes 6.2, framing 2.5: the NPCs ~61% of the tick): the look 30.6% (grid query 10.5%, the
ledger's read 7.2%, its keys' sort 2.3%, places_at 1.4%, World.columns 1.4%), the answers' apply 18.1%
(every apply_verdicts 22.3%: need rates 5.8%, the lines 5.4%, set_intents 3.1%, the columns 2.6%),
hearing 8.1% (the bard's on_hear), the request's gather 7.6%, the lines said 7.5% (World.say_many 5.0%),
the ledger's commit 7.4% (the noticed sets 4.6%), begin_tick 4.0%, complete 3.2%, the built-in for
missed/refused answers 4.2%. Cut: the grid query (three runs a query, world/nearby.py: 0.79-0.84x of
it), say_many by zip/map (0.83x of it), the ledger's one-phase read and replace through slices, the
patrol pause without nan_to_num, the base need rates filled. bench/decisions.py --compare against main
(10,000 NPCs, rounds of 40 ticks, fingerprints the same in every round): 8 rounds at load 12-15, policy
p50 18.7 vs 21.0 ms (0.89x), built-in 16.1 vs 18.0 (0.895x); 16 rounds at load 11-12, policy 22.7 vs
22.8 (0.996x), built-in 18.9 vs 20.5 (0.92x); 16 rounds at load 12-18, policy 20.5 vs 21.4 (0.959x),
built-in 16.2 vs 16.8 (0.962x): ~4-10% less, the policy's rounds scattering 0.71x-1.11x at that load.
py-spy after (same scene, load ~19): the grid query 9.1%, the lines said 4.5%, the ledger's commit 6.7%;
what is left on top: the request's gather 8.7% (its _joined pointer checks 3.9%: __array_interface__ is
~8 us a call, S + 2 calls a field), the lines 6.2%, the need rates 4.5%.

Not done (s17f, issue 10): answers that confirm the NPC's intent skipping builtin.complete and the
apply. Bit for bit they still write `rows.by/why/need`, the continued approach's ledger entry and,
for files with `during` needs, the need rates from the world's current columns (`arrived` may have
turned since the look), so the only work a skip saves is complete's (~3% of the policy tick) and
the _Applied concatenation for those rows; whether a row confirms needs the world's columns at the
apply (a hook or dialogue may have changed the intent since the look), which is the read it would
save. A cut worth its risk would keep the rates' inputs (doing, action, activity) per row and re-set
rates only where they moved.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from world.intents import ACTIONS

from npc.hooks import Event, Report, capping
from npc.minds import builtin
from npc.minds.builtin import Decision
from npc.minds.perception import Seen
from npc.minds.sight import Sight, look, look_many, perception
from npc.minds.state import BY_BUILTIN, BY_HOOK, BY_NAMES, BY_POLICY

URGENT_PER_TICK = 64  # NPCs thinking out of turn (after a reload, a spawn) per tick at most; the rest wait
# NPCs whose policy answer missed (late, dropped, failed, skipped) are decided by the built-in in slices of
# at most this share of a tick's regular thinks (at least FALLBACK_MIN), oldest first; the rest wait in
# `cast.fallback` for a later tick, or for their own turn (then the built-in decides them too). A failed
# 1,000-row request at 10,000 NPCs so costs 4 ticks a quarter more built-in work each, not one tick twice
# the work (measured: the fault run's tick p99 was 1.47x the no-fault run's when all fell back at once).
FALLBACK_SHARE = 0.25
FALLBACK_MIN = 64
ACTION_NAMES = np.asarray(ACTIONS, dtype=object)
TALK, GIVE, APPROACH = (ACTIONS.index(a) for a in ("talk", "give_item", "approach"))


@dataclass
class Answers:
    """What a decider has for the cast at the start of a tick."""

    replies: list[tuple[Sight, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    # (the sight asked, action (n,) int8, target (n,) int64, place (n,) int32): decoded on-time answers; a
    # sight cut to the answers that apply may come without its pairs (take(pairs=False)): only applied
    missed: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    # NPCs whose answer was late, dropped or failed: the built-in decides for them this tick


def think(cast) -> None:
    world, rows, decider = cast.world, cast.rows, cast.decider
    answers = None
    if decider is not None:
        try:
            answers = decider.begin_tick(world.time_s)
        except Exception as e:  # a decider bug costs its decisions, never the tick
            cast.internal(e, None)
    held = cast.held()  # in a conversation: nothing re-thinks them (npc/dialogue/service.py)
    if answers is not None:
        if len(answers.missed):
            cast.fallback = np.concatenate([cast.fallback, np.asarray(answers.missed, np.int64)])
        parts = []  # every file's answers, applied in one pass (apply_verdicts)
        for sight, action, target, place in answers.replies:
            try:
                keep = _still(cast, sight)
                if len(held):
                    keep &= ~np.isin(sight.eid, held)
                if keep.any():
                    s = take(sight, keep)
                    v = builtin.complete(s, world.places, action[keep], target[keep], place[keep], builtin.WHY_POLICY)
                    parts.append((s, v))
            except Exception as e:
                cast.internal(e, None)
        try:
            apply_verdicts(cast, parts, BY_POLICY)
        except Exception as e:  # a bug here costs this tick's policy decisions, never the tick
            cast.internal(e, None)
        cast.ledger.commit()  # the answers' greetings written before anyone looks again

    live = rows.live()
    if not len(live):
        say_pending(cast)
        return
    eids = rows.eid[live]
    k, phase = cast.think_every, world.tick % cast.think_every
    urgent = np.asarray(sorted(cast.urgent)[:URGENT_PER_TICK], np.int64)
    cast.urgent.difference_update(urgent.tolist())
    due = eids % k == phase
    if len(urgent):
        due |= np.isin(eids, urgent)
    forced = _fallback(cast, eids, due)
    due |= forced
    if len(held):
        due &= ~np.isin(eids, held)
    idx = np.flatnonzero(due)
    if len(idx):
        _think_due(cast, eids[idx], live[idx], forced[idx])
    say_pending(cast)
    cast.ledger.commit()
    if decider is not None:
        try:
            decider.end_tick()
        except Exception as e:
            cast.internal(e, None)


def _fallback(cast, eids: np.ndarray, due: np.ndarray) -> np.ndarray:
    """(len(eids),) bool: the queued NPCs (cast.fallback) the built-in decides this tick, a bounded slice,
    oldest first, plus the queued NPCs due at their own turn this tick (they think anyway). NPCs no
    longer in the world leave the queue; the rest stay queued, in order."""
    forced = np.zeros(len(eids), bool)
    q = cast.fallback
    if not len(q):
        return forced
    _, first = np.unique(q, return_index=True)
    q = q[np.sort(first)]  # each NPC once, at its oldest place in the queue
    if not len(eids):
        cast.fallback = q[:0]
        return forced
    order = np.argsort(eids, kind="stable")
    pos = order[np.searchsorted(eids[order], q).clip(0, len(eids) - 1)]  # each one's index in eids
    live = eids[pos] == q
    q, pos = q[live], pos[live]
    now = due[pos]
    forced[pos[now]] = True  # thinking at their turn anyway: the built-in decides them (no slice)
    q, pos = q[~now], pos[~now]
    n = max(FALLBACK_MIN, int(FALLBACK_SHARE * int(due.sum())))
    forced[pos[:n]] = True
    cast.fallback = q[n:]
    return forced


def _think_due(cast, eids: np.ndarray, rows: np.ndarray, forced: np.ndarray) -> None:
    """The due NPCs (their state rows, and whether the built-in must decide them), a file at a time:
    one look for all of them (npc/minds/sight.look_many: one gather, one grid query), then per file
    the decider's ask, or the built-in's verdict (and hooks) applied."""
    decider, table = cast.decider, cast.rows
    defi = table.defi[rows]
    plan = []  # (defn, what, eids, rows): the parts, in order
    order = np.argsort(defi, kind="stable")
    eids, rows, forced, defi = eids[order], rows[order], forced[order], defi[order]
    for group in np.split(np.arange(len(eids)), np.flatnonzero(np.diff(defi)) + 1):
        defn = cast.def_list[int(defi[group[0]])]
        if defn is None:
            continue
        guard = cast.guards[defn.id]
        hooked = guard.has("on_event") or guard.has("on_decide")
        try:
            asks = decider is not None and not hooked and decider.follows(defn)
        except Exception as e:
            cast.internal(e, None)
            asks = False
        if asks:
            ask, rest = group[~forced[group]], group[forced[group]]
            if len(ask):
                plan.append((defn, "ask", ask))
        else:
            rest = group
        if len(rest):
            plan.append((defn, "hooks" if hooked else "builtin", rest))
    if not plan:
        return
    # the policy's files first: their rows are then one run of the look's gathers, which the observation
    # rows read as views (npc/policy/observe._gather), not copies; the order of the parts that apply
    # (built-in, hooks) among themselves is kept (a part's look does not depend on the others)
    plan = [p for p in plan if p[1] == "ask"] + [p for p in plan if p[1] != "ask"]
    take_rows = np.concatenate([g for _, _, g in plan])
    bounds = np.cumsum([0] + [len(g) for _, _, g in plan])
    sights = look_many(
        cast.world,
        [(d, int(bounds[k]), int(bounds[k + 1])) for k, (d, _, _) in enumerate(plan)],
        eids[take_rows],
        rows[take_rows],
        table,
        cast.ledger,
        cast.players(),
    )
    plain: list = []  # consecutive built-in files' verdicts, applied in one pass (before any hooks run)

    def flush() -> None:
        try:
            apply_verdicts(cast, plain, BY_BUILTIN)
        except Exception as e:
            cast.internal(e, None)
        plain.clear()

    for (defn, what, _), sight in zip(plan, sights):
        try:
            if what == "ask":
                decider.ask(sight)
                continue
            verdict = builtin.decide(sight, cast.world.places)
            if decider is not None:
                decider.note(sight, verdict)
            if what == "hooks":
                flush()
                say_pending(cast)  # the lines decided so far are said before a hook's
                _hooks(cast, sight, verdict)
            else:
                plain.append((sight, verdict))
        except Exception as e:
            cast.internal(e, None)
    flush()


def _hooks(cast, sight: Sight, verdict) -> None:
    """Per NPC of a file with on_decide / on_event: its events and hooks; else the built-in verdict."""
    guard = cast.guards[sight.defn.id]
    plain = np.ones(len(sight), bool)
    with capping():  # one SIGALRM handler for every hook call of the file's NPCs (npc/hooks/guard.py)
        _hooks_each(cast, sight, verdict, guard, plain)
    if plain.any():
        apply_verdict(cast, take(sight, plain), _take_verdict(verdict, plain), BY_BUILTIN)


def _hooks_each(cast, sight: Sight, verdict, guard, plain: np.ndarray) -> None:
    """_hooks' loop over the NPCs: plain[i] = False where a hook decided for row i."""
    world = cast.world
    for i, eid in enumerate(sight.eid.tolist()):
        m = cast.minds.get(eid)
        if m is None:
            continue
        try:
            p = perception(sight, i, world)
            events = _events(m, p)
            ctx = cast.context(m, p, builtin=lambda i=i: _decision(cast, verdict, i, sight))
            decision = None
            for ev in events if guard.has("on_event") else ():
                ctx.intent = decision
                if guard.call("on_event", ctx, ev) and ctx.intent is not None:
                    decision = ctx.intent
            if decision is None and guard.has("on_decide"):
                ctx.intent = None
                if guard.call("on_decide", ctx) and ctx.intent is not None:
                    decision = ctx.intent
            if decision is not None:
                plain[i] = False
                act(cast, m, decision, BY_HOOK)
        except Exception as e:
            cast.internal(e, m)


def _events(m, p) -> list[Event]:
    st, events = m.state, []
    before = st.noticed
    b = p.block
    key = (b.start, b.end, b.do, b.at, b.activity) if b else None
    if key != st.block_key:
        if st.block_key is not None or b is not None:
            events.append(Event("schedule", place=b.at if b else None, activity=b.activity if b else None))
        st.block_key = key
    if p.intent.arrived and not st.arrived and p.intent.action not in ("idle", "talk", "give_item"):
        events.append(Event("arrived", place=p.intent.place or p.place))
    st.arrived = p.intent.arrived
    now_ids = {s.id for s in p.players}
    events += [Event("noticed", who=s) for s in p.players if s.id not in before]
    events += [Event("lost", who=Seen(pid, "", "player", -1.0, 0.0, 0.0)) for pid in before if pid not in now_ids]
    st.noticed = {s.id: p.now_s - s.near_s for s in p.players}
    low = frozenset(n.name for n in m.defn.needs if p.stats.get(n.name, n.start) < n.low)
    events += [Event("need_low", need=n, value=p.stats.get(n)) for n in sorted(low - st.low)]
    st.low = low
    return events


# -- applying ---------------------------------------------------------------------------------------


def apply_verdict(cast, sight: Sight, v, by: int) -> None:
    """Row i's decision reaches the world only where it differs from the NPC's current intent."""
    apply_verdicts(cast, [(sight, v)], by)


def apply_verdicts(cast, parts: list, by: int) -> None:
    """apply_verdict for the verdicts of several files at once, parts = [(sight, verdict), ...]: the
    rows applied (not kept) of every part are concatenated once (`_Applied`), and read (World.columns),
    compared, checked against their file's allowed actions, given to the world (one World.set_intents),
    recorded (rows, ledger, gifts) and said (World.say_many) as one set of arrays; only a file's own need
    rates and its lines' texts are made per part. The outcome is what one apply_verdict per part in turn
    gives (intents, reports, lines and their order, ledger writes; an NPC is in one part only, and no part
    reads what another writes), except the order in which the go_to legs draw their random spots."""
    a = _Applied.of(parts, cast.rows)
    if a is None:
        return
    world, rows, led = cast.world, cast.rows, cast.ledger
    now = world.time_s
    cur = world.columns(a.eid)
    want = np.where(np.equal(a.activity, None), ACTION_NAMES[a.action], a.activity)  # type: ignore[call-overload]  # stubs: no None operand
    changed = (
        (a.action != cur.action)
        | (a.place != cur.place)
        | (a.target != cur.target)
        | (want != cur.activity)
        | (a.say != builtin.SAY_NONE)
    )
    rows.by[a.row], rows.why[a.row], rows.need[a.row] = by, a.why, a.need
    approach = (a.action == APPROACH) & (a.target >= 0) & ~changed  # a continued approach: still counts
    if approach.any():
        led.approached.later(a.eid[approach], a.target[approach], now)
    same = ~changed
    for k, (lo, hi) in enumerate(a.bounds):
        defn = a.sights[k].defn
        if same[lo:hi].any() and any(nd.during for nd in defn.needs):
            _rates(world, defn, a.eid[lo:hi][same[lo:hi]], _cols(cur, lo, hi), same[lo:hi])
    ch = np.flatnonzero(changed)
    fits = a.allowed[a.part[ch], a.action[ch]]  # the last line of defence: each file's allowed list
    go, refused = ch[fits], ch[~fits]
    # one World.set_intents for every part: each go_to leg timed by its own NPC's speed, the legs' random
    # spots drawn from the world's generator in row order (parts in order)
    ok = world.set_intents(a.eid[go], a.action[go], a.place[go], a.target[go], a.distance[go], a.activity[go])
    if len(refused) or not ok.all():
        _report_refused(cast, a, refused, go[~ok], now)
    done = np.zeros(len(a), bool)
    done[go[ok]] = True
    _say(cast, a, go[ok], now)
    with_needs = [k for k, (lo, hi) in enumerate(a.bounds) if a.sights[k].defn.needs and done[lo:hi].any()]
    if with_needs:  # the new intents' need rates: one read of the world, then per file
        sel = [a.eid[lo:hi][done[lo:hi]] for lo, hi in (a.bounds[k] for k in with_needs)]
        cols = world.columns(np.concatenate(sel))
        lo = 0
        for k, e in zip(with_needs, sel):
            _rates(world, a.sights[k].defn, e, _cols(cols, lo, lo + len(e)), np.ones(len(e), bool))
            lo += len(e)
    has = done & (a.target >= 0)
    for kind, code in ((led.greeted, TALK), (led.given, GIVE), (led.approached, APPROACH)):
        sel = has & (a.action == code)
        if sel.any():
            kind.later(a.eid[sel], a.target[sel], now)  # written at the think's ledger.commit
    gave = np.flatnonzero(has & (a.action == GIVE))
    if len(gave):
        np.add.at(rows.gifts, a.row[gave], 1)
        cast.gifts.extend(
            (e, t, i)
            for e, t, i in zip(a.eid[gave].tolist(), a.target[gave].tolist(), a.item[gave].tolist())
            if i is not None
        )


@dataclass
class _Applied:
    """The rows that apply_verdicts applies (not kept) of every part, concatenated in part order: part k's
    are [bounds[k][0], bounds[k][1]), row idx[k] of its sight and verdict."""

    sights: list
    verdicts: list
    idx: list  # per part: (m_k,) the rows of its sight applied
    bounds: list  # per part: (lo, hi)
    part: np.ndarray  # (n,) the part of each row
    allowed: np.ndarray  # (parts, A) bool: each part's file allows the action
    eid: np.ndarray
    row: np.ndarray  # (n,) the state table's rows
    action: np.ndarray
    target: np.ndarray
    place: np.ndarray
    distance: np.ndarray
    activity: np.ndarray
    say: np.ndarray
    item: np.ndarray
    why: np.ndarray
    need: np.ndarray

    def __len__(self) -> int:
        return len(self.eid)

    @classmethod
    def of(cls, parts: list, table) -> _Applied | None:
        work = [(s, v, np.flatnonzero(~v.keep)) for s, v in parts]
        work = [w for w in work if len(w[2])]
        if not work:
            return None
        sizes = np.asarray([len(i) for _, _, i in work])
        ends = np.cumsum(sizes)
        cat = lambda f: np.concatenate([getattr(v, f)[i] for _, v, i in work])  # noqa: E731
        return cls(
            sights=[s for s, _, _ in work],
            verdicts=[v for _, v, _ in work],
            idx=[i for _, _, i in work],
            bounds=list(zip((ends - sizes).tolist(), ends.tolist())),
            part=np.repeat(np.arange(len(work)), sizes),
            allowed=np.asarray([[x in s.defn.allowed for x in ACTIONS] for s, _, _ in work], bool),
            eid=np.concatenate([s.eid[i] for s, _, i in work]),
            row=np.concatenate(
                [s.row[i] if s.row is not None else table.rows(s.eid[i].tolist()) for s, _, i in work]
            ).astype(np.int64),
            action=cat("action"),
            target=cat("target"),
            place=cat("place"),
            distance=cat("distance"),
            activity=cat("activity"),
            say=cat("say"),
            item=cat("item"),
            why=cat("why"),
            need=cat("need"),
        )

    def local(self, rows: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """Sorted rows of the concatenation, split by part: [(part, the rows, their rows in its sight)]."""
        cut = np.searchsorted(rows, [lo for lo, _ in self.bounds] + [len(self)])
        out = []
        for k, (lo, _) in enumerate(self.bounds):
            r = rows[cut[k] : cut[k + 1]]
            if len(r):
                out.append((k, r, self.idx[k][r - lo]))
        return out


def _report_refused(cast, a: _Applied, refused: np.ndarray, failed: np.ndarray, now: float) -> None:
    """The reports of the rows the file does not allow (refused) and of those the world refused (failed),
    both sorted: per part in order, its refused rows first (as one apply_verdict per part gives them)."""
    why: dict[int, list] = {}
    for rows, text in ((refused, "{!r} is not allowed; ignored"), (failed, _NOT_DONE)):
        for k, r, _ in a.local(rows):
            why.setdefault(k, []).append((r, text))
    for k in sorted(why):
        defn = a.sights[k].defn
        for r, text in why[k]:
            for x in r.tolist():
                action = ACTIONS[int(a.action[x])]
                cast.report(Report("intent", text.format(action), defn.file, defn.id, int(a.eid[x]), at_s=now))


_NOT_DONE = "{} could not be done: no such place or live target"


def _say(cast, a: _Applied, done: np.ndarray, now: float) -> None:
    """The lines (greetings, gifts) of the rows whose intent the world took (done, sorted): filled per
    part (its file's words, through the cast's memo), staged in order for `say_pending`."""
    talking = done[a.say[done] != builtin.SAY_NONE]
    if not len(talking):
        return
    for k, r, i in a.local(talking):
        lines = builtin.say_lines(a.verdicts[k], i, a.sights[k], cast.world.names_of, cast.words)
        cast.saying.append((a.eid[r], a.row[r], lines))


def say_pending(cast) -> None:
    """The lines staged by this tick's verdicts said in one World.say_many, and written to the speakers'
    rings in one Rows.say, in the order they were staged. Called at the end of the think step, and before
    anything else speaks in it (a hook's intent): the world hears the lines in the order they were decided."""
    staged, cast.saying = cast.saying, []
    if not staged:
        return
    texts = [t for _, _, lines in staged for t in lines]
    eids = np.concatenate([e for e, _, _ in staged])
    rows = np.concatenate([r for _, r, _ in staged])
    said = np.fromiter((bool(t) for t in texts), bool, len(texts))  # an empty line says nothing
    if not said.all():
        eids, rows, texts = eids[said], rows[said], [t for t in texts if t]
    if texts:
        cast.world.say_many(eids, texts)
        cast.rows.say(rows, texts, cast.world.time_s)


def _cols(c, lo: int, hi: int):
    """Rows lo:hi of a World.columns gather (views)."""
    return type(c)(*(getattr(c, f)[lo:hi] for f in _COLUMN_FIELDS))


_COLUMN_FIELDS = ("pos", "action", "place", "target", "arrived", "since", "arrived_at", "activity", "stats")


def reason_now(cast, m) -> str:
    """The reason of a built-in or policy decision, in words, from its WHY code (made when asked, not
    per decision): the need and its level now, the schedule block now, the target's name now."""
    row = cast.rows.row_of.get(m.eid)
    if row is None:
        return m.reason
    code = int(cast.rows.why[row])
    if not 0 <= code < len(builtin.REASONS):  # -1: decided through act(), which kept its words
        return m.reason
    text = builtin.REASONS[code]
    world, d = cast.world, m.defn
    need = int(cast.rows.need[row])
    it = world.intent(m.eid)
    who = world.name_of(it.target) if it.target is not None and world.alive(it.target) else "someone"
    block = d.block_at(world.game_time.minute)
    return text.format(
        need=d.needs[need].name if 0 <= need < len(d.needs) else "a need",
        value=world.stats(m.eid).get(d.needs[need].name, 0.0) if 0 <= need < len(d.needs) else 0.0,
        label=block.label if block is not None else "",
        who=who,
    )


def _rates(world, defn, eids: np.ndarray, cur, rows: np.ndarray) -> None:
    """Each need's rate for NPCs going on with what they do: the base rate, plus its `during` rate for
    the activity (or action) once doing it: arrived, or anywhere for an intent without a place."""
    doing = (cur.arrived | (cur.place < 0))[rows]
    rates = np.empty((len(eids), len(defn.needs)))
    rates[:] = [nd.rate for nd in defn.needs]  # (not np.broadcast_to(...).copy(): 1% of the policy tick)
    if doing.any() and any(nd.during for nd in defn.needs):
        # the `during` rates per distinct (activity, action) pair of the rows doing something: a handful
        d = np.flatnonzero(doing)
        code = cur.action[rows][d].astype(np.int64)
        activity = cur.activity[rows][d]
        pairs: dict[tuple, int] = {}
        which = np.fromiter(
            (pairs.setdefault((a, c), len(pairs)) for a, c in zip(activity.tolist(), code.tolist())), np.int64, len(d)
        )
        extra = np.asarray(
            [[nd.during.get(a, nd.during.get(ACTION_NAMES[c], 0.0)) for nd in defn.needs] for a, c in pairs], np.float64
        ).reshape(len(pairs), len(defn.needs))
        rates[d] += extra[which]
    world.set_stat_rates_many(eids, tuple(nd.name for nd in defn.needs), rates)


def act(cast, m, d: Decision, by: int, why: int = -1, need: int = -1, record: bool = True) -> bool:
    """One NPC's intent, checked against its file (the last line of defence) and given to the world.
    record=False: the caller writes who was greeted / given to / approached and the need rates (many at once)."""
    if d.keep:
        return True
    world = cast.world
    now = world.time_s
    if d.action not in m.defn.allowed:
        cast.report(Report("intent", f"{d.action!r} is not allowed; ignored", m.defn.file, m.defn.id, m.eid, at_s=now))
        return False
    try:
        world.set_intent(
            m.eid, d.action, place=d.place, target=d.target, distance=d.distance, activity=d.activity, say=d.say
        )
    except (ValueError, KeyError) as e:
        cast.report(Report("intent", f"{d.action} could not be done: {e}", m.defn.file, m.defn.id, m.eid, at_s=now))
        return False
    if d.say:
        m.said(d.say, now)
    row = cast.rows.row_of.get(m.eid)
    if d.target is not None and record:
        one, who = np.asarray([m.eid]), np.asarray([d.target])
        if d.action == "talk":
            cast.ledger.greeted.set(one, who, now)
        elif d.action == "give_item":
            cast.ledger.given.set(one, who, now)
            if row is not None:
                cast.rows.gifts[row] += 1
            if d.item:
                cast.gifts.append((m.eid, d.target, d.item))
        elif d.action == "approach":
            cast.ledger.approached.set(one, who, now)
    if row is not None:
        cast.rows.by[row], cast.rows.why[row], cast.rows.need[row] = by, why, need
    m.reason = d.reason
    if record:
        cast._rates(m, d.action, d.activity)
    return True


def _decision(cast, v, i: int, sight: Sight) -> Decision:
    return builtin.decision(v, i, sight, cast.world.places, cast.world.name_of)


def look_one(cast, m):
    """One NPC's Sight now, out of turn (a hook asking, the inspector): its state is not advanced."""
    return look(
        cast.world,
        m.defn,
        np.asarray([m.eid], np.int64),
        np.asarray([cast.rows.row_of[m.eid]]),
        cast.rows,
        cast.ledger,
        cast.players(),
        advance=False,
    )


def builtin_one(cast, m) -> Decision:
    """The built-in decision for one NPC now (a hook asking out of turn): its state is not advanced."""
    s = look_one(cast, m)
    return _decision(cast, builtin.decide(s, cast.world.places), 0, s)


def who_decided(cast, m) -> dict:
    """For GET /npcs: who made the NPC's last decision, in words, and whether the policy may decide its file."""
    row = cast.rows.row_of.get(m.eid)
    by = BY_NAMES[int(cast.rows.by[row])] if row is not None else "none"
    status = (
        cast.decider.status(m.defn)
        if cast.decider is not None and hasattr(cast.decider, "status")
        else {"policy": False, "why": "no policy: the built-in behaviour decides (--decider builtin)"}
    )
    guard = cast.guards.get(m.defn.id)
    if guard is not None and (guard.has("on_decide") or guard.has("on_event")):
        status = {"policy": False, "why": "the file has on_decide/on_event hooks: hooks and the built-in decide"}
    reason = reason_now(cast, m) if by in ("builtin", "policy") else m.reason
    return {"decided_by": by, "reason": reason, "decider": status}


# -- subsets of a sight -----------------------------------------------------------------------------


def _still(cast, sight: Sight) -> np.ndarray:
    """Rows whose NPC is still there, running the same definition (array checks on the state table)."""
    i = cast.def_index.get(sight.defn.id)
    if i is None or cast.def_list[i] is not sight.defn or sight.row is None:
        return np.zeros(len(sight), bool)
    rows = cast.rows
    return (rows.eid[sight.row] == sight.eid) & (rows.defi[sight.row] == i)


_PAIRS = ("p_row", "p_id", "p_dist", "p_pos", "p_near_s", "p_greeted", "p_given", "p_approached")
_SCALARS = ("defn", "now_s", "minute", "day", "block")


def take(s: Sight, keep: np.ndarray, pairs: bool = True) -> Sight:
    """The rows of a sight where keep (n,) is True, pairs re-indexed. pairs=False: without its pairs (no
    player within notice, for a sight only applied: builtin.complete and apply_verdicts read no pairs;
    the pairs are most of a take's cost, ~10 per NPC)."""
    if keep.all():
        return s
    idx = np.flatnonzero(keep)
    new_row = np.full(len(s), -1, np.int64)
    new_row[idx] = np.arange(len(idx))
    pk = keep[s.p_row] if len(s.p_row) and pairs else np.zeros(len(s.p_row), bool)
    kw = {f: getattr(s, f) for f in _SCALARS}
    for f in Sight.__dataclass_fields__:
        if f in kw or f == "start":
            continue
        a = getattr(s, f)
        if a is None:
            kw[f] = a
        elif a.ndim > 1:  # np.compress / np.take: 2-D fancy indexing costs several times more
            kw[f] = np.compress(pk, a, axis=0) if f in _PAIRS else np.take(a, idx, axis=0)
        else:
            kw[f] = a[pk] if f in _PAIRS else a[idx]
    kw["p_row"] = new_row[s.p_row[pk]]
    kw["start"] = np.searchsorted(kw["p_row"], np.arange(len(idx) + 1)).astype(np.int64)
    return Sight(**kw)


def _take_verdict(v, keep: np.ndarray):
    if keep.all():
        return v
    return type(v)(**{f: getattr(v, f)[keep] for f in type(v).__dataclass_fields__})
