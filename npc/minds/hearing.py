"""Hearing: the lines said since the last tick reach the NPCs within their `hear` radius.

Only NPCs that can react listen: those whose file has an on_hear hook, and
(to players) those that may answer with a fallback line when no dialogue
model answers. A hook that decides wins; else the built-in answers a player
within its talk distance with the file's next fallback line.

A line a player says *to* an NPC (a `talk`: npc/dialogue/service.py) reaches
that NPC's on_hear through `spoken()` instead, once, with `npc.spoken_to`
True; the same line said as public chat (the browser sends both) is then not
heard by that NPC again (`SPOKEN_S`), so it answers once.
"""

from __future__ import annotations

import numpy as np

from world import nearby
from world.sim import PLAYER

from npc.minds.builtin import Decision, reply_line
from npc.minds.perception import Seen
from npc.minds.state import BY_BUILTIN, BY_HOOK

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
    radius = np.asarray([d.senses["hear"] if d is not None else 0.0 for d in defs])[defi]
    hooked = hooked_f[defi]
    # players' lines reach every listener; NPCs' lines only those with on_hear (the built-in answers players)
    seen: dict = {}  # a listener's perception, made once per tick however many lines it hears
    for mine, who in ((lambda ln: ln.kind == PLAYER, np.ones(len(eids), bool)), (lambda ln: ln.kind != PLAYER, hooked)):
        said = [ln for ln in lines if mine(ln)]
        if not said or not who.any():
            continue
        sel = np.flatnonzero(who)
        where = np.asarray([(ln.x, ln.y) for ln in said], np.float64)
        # only this pass's listeners are located: NPCs' lines reach the few hooked ones, not every NPC
        _, pos = world.locate(eids[sel])
        pairs = nearby.within(where, float(radius[sel].max()), pos)  # (line, listener), nearest first
        for li, j, d in zip(pairs.query.tolist(), sel[pairs.entity].tolist(), pairs.dist.tolist()):
            line = said[li]
            if d > radius[j]:
                continue
            m = cast.minds.get(int(eids[j]))
            if m is not None and m.eid != line.speaker and not _was_spoken(cast, m.eid, line):
                _heard(cast, m, line, d, seen)
    if cast.spoken:
        now = world.time_s
        for k in [k for k, (_, t) in cast.spoken.items() if now - t > SPOKEN_S]:
            del cast.spoken[k]


def _was_spoken(cast, eid: int, line) -> bool:
    said = cast.spoken.get((eid, line.speaker))
    return said is not None and cast.world.time_s - said[1] <= SPOKEN_S and _same(said[0], line.text)


def _heard(cast, m, line, dist: float, seen: dict) -> None:
    world = cast.world
    speaker = Seen(line.speaker, line.name, "player" if line.kind == PLAYER else "npc", dist, line.x, line.y)
    guard = cast.guards[m.defn.id]
    if guard.has("on_hear"):
        p = seen.get(m.eid)
        if p is None:
            p = seen[m.eid] = cast.perceive(m)
        ctx = cast.context(m, p)
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
