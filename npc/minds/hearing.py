"""Hearing: the lines said since the last tick reach the NPCs within their `hear` radius.

Only NPCs that can react listen: those whose file has an on_hear hook hear every line (a player's or
another NPC's), and those that may answer a player with a fallback line when no dialogue model answers
hear the players' lines. A hook that decides wins; else the built-in answers a player within its talk
distance with the file's next fallback line.

One pass, in arrays: the lines become columns once; one query pairs all of them with the hooked
listeners, one more the players' lines with the other listeners (each query every pair's distance
when there are few, a grid query when there are many: `ALL_PAIRS`); the pairs out of the listener's own
radius, a listener's own line, and the built-in's pairs it would not answer (past its talk distance)
are dropped as arrays. Python runs only for what is left: a hook call (its `npc` built then, and the
perception only when the hook reads it: the bard's on_hear returns at once for another NPC's line) or
a fallback line. Every call of a tick runs in one `hooks.capping()` block (one SIGALRM handler for all).
Each listener hears the players' lines first, then the NPCs', each in the order they were said.

A line a player says *to* an NPC (a `talk`: npc/dialogue/service.py) reaches
that NPC's on_hear through `spoken()` instead, once, with `npc.spoken_to`
True; the same line said as public chat (the browser sends both) is then not
heard by that NPC again (`SPOKEN_S`), so it answers once.
"""

from __future__ import annotations

import numpy as np

from world import nearby
from world.sim import PLAYER, Line

from npc.hooks import capping
from npc.minds.builtin import Decision, reply_line
from npc.minds.perception import Seen
from npc.minds.state import BY_BUILTIN, BY_HOOK

# (listener, line) pairs up to which every pair's distance is cheaper than a grid query: 11 us against
# 153 us for 1 listener and 379 lines, 38 against 122 for 16 x 379, 646 against 151 for 64 x 379
ALL_PAIRS = 16_384
SPOKEN_S = 2.0  # world seconds: a player's chat line equal to its talk this recently is not heard again


def _same(a: str, b: str) -> bool:
    """Two renderings of one line (the talk's and the chat's cleaning differ a little)."""
    a, b = " ".join(a.split()).lower(), " ".join(b.split()).lower()
    n = min(len(a), len(b), 40)
    return n > 0 and a[:n] == b[:n]


def spoken(cast, m, speaker: Seen, text: str) -> Decision | None:
    """A player spoke to NPC `m` (a talk): its on_hear hook, with npc.spoken_to True; the hook's decision,
    or None (no hook, it decided nothing, or it raised: the error is reported)."""
    guard = cast.guards.get(m.defn.id)
    if guard is None or not guard.has("on_hear"):
        return None
    if len(cast.spoken) > 4096:  # bound (players' talks are rate-limited; hear() drops old ones too)
        cast.spoken.clear()
    cast.spoken[(m.eid, speaker.id)] = (text, cast.world.time_s)
    ctx = cast.context(m, cast.perceive(m))
    ctx.spoken_to = True
    if guard.call("on_hear", ctx, speaker, text):
        return ctx.intent
    return None


def hear(cast, lines) -> None:
    """The lines said since the last tick, heard (the module's docstring). At 10,000 NPCs and 1,000
    players (379 lines a tick, ~56 heard by the bard), main's and this pass on alternate ticks of one
    run (load 12): p50 2.66 ms a tick as one loop per heard line, with the bard's perception made each
    tick (376 us) and a signal handler installed for each call, against 0.80 ms."""
    rows, world = cast.rows, cast.world
    defs = cast.def_list
    # per file: hooked (on_hear) / may answer players with a fallback line
    hooked_f = np.asarray([d is not None and cast.guards[d.id].has("on_hear") for d in defs], bool)
    reply_f = np.asarray(
        [d is not None and "talk" in d.allowed and d.params["talk"]["reply"] and not cast.model_replies for d in defs],
        bool,
    )
    live = rows.live()
    if not len(live) or not (hooked_f.any() or reply_f.any()):
        return
    defi = rows.defi[live]
    listen = hooked_f[defi] | reply_f[defi]
    live, defi = live[listen], defi[listen]
    if not len(live):
        return
    eids = rows.eid[live]
    hooked = hooked_f[defi]
    radius = np.asarray([d.senses["hear"] if d is not None else 0.0 for d in defs])[defi]
    talk = np.asarray([d.params["talk"]["distance"] if d is not None else 0.0 for d in defs])[defi]
    col = dict(zip(Line._fields, zip(*lines)))  # the lines as columns (one transposition)
    said = np.column_stack([np.asarray(col["x"], np.float64), np.asarray(col["y"], np.float64)])
    speaker_id = np.asarray(col["speaker"], np.int64)
    by_player = np.asarray(col["kind"]) == PLAYER
    every = np.arange(len(lines))
    ours = np.flatnonzero(hooked)  # hear every line
    others = np.flatnonzero(~hooked)  # hear the players' lines (the built-in answers players)
    parts = [_pairs(world, said, every, eids, ours, radius)]
    if by_player.any() and len(others):
        parts.append(_pairs(world, said, np.flatnonzero(by_player), eids, others, radius))
    li, j, dist = (np.concatenate(c) for c in zip(*parts))
    keep = (eids[j] != speaker_id[li]) & (hooked[j] | (dist <= talk[j]))
    li, j, dist = li[keep], j[keep], dist[keep]
    order = np.lexsort((dist, li, ~by_player[li]))  # players' lines first, each kind as said; nearest first
    li, j, dist = li[order], j[order], dist[order]
    seen: dict = {}  # a listener's perception, made at most once per tick however many lines it hears
    minds, spoken = cast.minds, cast.spoken
    if len(li):
        with capping():  # one SIGALRM handler for every hook call of the pass
            for a, eid, d in zip(li.tolist(), eids[j].tolist(), dist.tolist()):
                line = lines[a]
                m = minds.get(eid)
                if m is not None and not (spoken and _was_spoken(cast, eid, line)):
                    _heard(cast, m, line, d, seen)
    if cast.spoken:
        now = world.time_s
        for k in [k for k, (_, t) in cast.spoken.items() if now - t > SPOKEN_S]:
            del cast.spoken[k]


def _pairs(world, said: np.ndarray, lines: np.ndarray, eids: np.ndarray, who: np.ndarray, radius: np.ndarray):
    """(line, listener, distance) for the lines `said[lines]` and listeners `eids[who]` within the
    listener's radius (indices into `said` and `eids`), all of them at once: a few listeners (the
    hooked ones, usually) by every pair's distance, more by one grid query."""
    alive, pos = world.locate(eids[who])
    who, pos = who[alive], pos[alive]
    r = radius[who]
    if len(who) * len(lines) <= ALL_PAIRS:
        dx = said[lines, 0][None, :] - pos[:, 0, None]
        dy = said[lines, 1][None, :] - pos[:, 1, None]
        d2 = dx * dx + dy * dy  # (listener, line)
        w, k = np.nonzero(d2 <= (r * r)[:, None])
        return lines[k], who[w], np.sqrt(d2[w, k])
    if len(who) <= len(lines):  # each listener asks with its own radius
        p = nearby.within(pos, r, said[lines])
        return lines[p.entity], who[p.query], p.dist
    p = nearby.within(said[lines], float(r.max()), pos)
    ok = p.dist <= r[p.entity]
    return lines[p.query[ok]], who[p.entity[ok]], p.dist[ok]


def _was_spoken(cast, eid: int, line) -> bool:
    said = cast.spoken.get((eid, line.speaker))
    return said is not None and cast.world.time_s - said[1] <= SPOKEN_S and _same(said[0], line.text)


def _heard(cast, m, line, dist: float, seen: dict) -> None:
    world = cast.world
    speaker = Seen(line.speaker, line.name, "player" if line.kind == PLAYER else "npc", dist, line.x, line.y)
    guard = cast.guards[m.defn.id]
    if guard.has("on_hear"):

        def perceive():
            p = seen.get(m.eid)
            if p is None:
                p = seen[m.eid] = cast.perceive(m)
            return p

        ctx = cast.context(m, perceive)
        if guard.call("on_hear", ctx, speaker, line.text) and ctx.intent is not None:
            cast.act(m, ctx.intent, BY_HOOK)
            return
    talk = m.defn.params["talk"]
    if (
        line.kind == PLAYER
        and "talk" in m.defn.allowed
        and talk["reply"]
        and not cast.model_replies
        and dist <= talk["distance"]
        and world.alive(line.speaker)
    ):
        text = reply_line(m.defn, m.state, speaker, world.name_of(m.eid))
        m.state.replies += 1
        cast.act(
            m,
            Decision("talk", target=line.speaker, say=text, activity="talking", reason=f"answering {line.name}"),
            BY_BUILTIN,
        )
