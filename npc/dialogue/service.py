"""The game's side of dialogue: conversations, driven by the tick.

A player's `talk` to an NPC starts a conversation:
0. hear: the NPC's on_hear hook is called first (npc.spoken_to is True):
   a hook that calls `npc.talk(line)` or `npc.give_item(...)` *answers*: its
   line is the reply (streamed as a model reply would be) and the model is not
   asked; a hook that calls any other action (follow, go_to, ...) *adds to*
   the reply: the model answers, then that action is taken in place of the
   model's own choice of action (step 3); a hook that decides nothing, or
   raises, *leaves it to the model*;
1. recall: the memory thread reads what this NPC remembers of the player
   (a future; the tick checks it, never waits);
2. reply: the prompt (prompt.py) goes to the dialogue pool as one stream of
   `candidates` replies decoded together; when they have ended, each is
   cleaned, cut back to its last whole sentence (counted as "trimmed" when
   the one shown was) and checked (check.py: character breaks, names not of
   this world, the prompt quoted, the player's line parroted, a sentence left
   unfinished); the best that passes is sent to the player and to the players
   near the NPC (`say_start`, `say_delta`, `say_end`; see docs/protocol.md),
   and when none passes, one of the NPC file's voice lines (else a fallback
   line) is said instead. Nothing unchecked is ever shown. The first reply
   to a returning player (met before, since this server started) names them;
3. act: after a complete reply, one constrained step scores the NPC's
   allowed options (choice.py); "no action" wins unless another option is
   clearly better (choice.pick), and the chosen one becomes its intent.

While a conversation runs the NPC is held (Cast.hold): it stands, facing the
player (its talk intent), and its schedule, needs and the policy do not move
it until the reply has ended and `[actions.talk] duration` seconds passed,
for at most `[actions.talk] hold` seconds. A need that falls below half its
`low` (urgent) ends the conversation with the NPC's `persona.leave` line
(reason "left"), as does the hold's end.

Budgets and what happens at them:
- first token: if none has arrived `first_token_s` after the talk (the NPC
  file's persona.first_token_ms, else the server's default), the NPC shows
  its thinking line (`say_start` carries it) and the reply follows when it
  comes;
- no first token within `wait_timeout_s` (a worker still loading its model,
  or overloaded): the stream is cancelled and the NPC says a fallback line;
- whole reply: `reply_timeout_s` (30 s) after its first token the stream is
  cancelled and the conversation ends with what was said (say_end reason
  "cut", counted as "cut"; remembered like a reply that ended well, with no
  action step after it);
- the model fails, the worker dies, or there is no dialogue pool: the NPC
  says one of its fallback lines (reason "fallback");
- the player walks beyond `leave_distance` of the NPC, disconnects or is
  gone: the stream is cancelled (its compute freed at the worker's next
  step) and the conversation ends (reason "cancelled");
- at most `max_conversations` at once (beyond: a fallback line at once), one
  per player (a new talk while one runs is refused with `busy`), and each
  player may start `talk_rate` per second (burst `talk_burst`).
Every step is a few dictionary operations per conversation per tick: nothing
here waits for the model, the memory or a socket.

Warm heads (head.Warmer): when NPC files load, at start and on every hot
reload, each talking NPC's head (the start all its prompts share) is sent to
the worker as a prefill-only request, one at a time, at low priority and
only while a worker is ready and no conversation runs, so the first player to talk to it waits
only for the tail of the prompt.

Beside it: conversation.py (the state of one, the configuration), acting.py
(the action step), lines.py (the file's own lines), metrics.py (/metrics).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import time
from dataclasses import replace
from typing import Callable, Protocol

from prometheus_client.metrics_core import Metric

from npc.minds import hearing
from npc.minds.builtin import Decision
from npc.minds.perception import Seen
from npc.minds.state import BY_HOOK

from . import acting, check, lines, metrics
from . import prompt as prompts
from . import head as heads
from .conversation import Conversation, DialogueConfig, TalkRefused
from .text import clean_delta, clean_player, clean_reply, facts_from, in_own_terms, met_fact, unquoted, whole_sentences

__all__ = ["Conversation", "Dialogue", "DialogueConfig", "TalkRefused", "start", "stop"]

log = logging.getLogger("npcworld.dialogue")

ANSWERS = ("talk", "give_item")  # on_hear actions that say a line: the hook answers instead of the model


class Dialogue:
    """Conversations between players and the NPCs of a cast.

    cast:    npc.minds.cast.Cast (minds, definitions, world)
    pool:    an inference Pool whose runner is the DialogueRunner, or None
             (every reply is then a fallback line)
    memory:  npc.memory.Memory, or None (no memory)
    send:    send(player_id, message dict): queue a message to a player
             (never blocks; drops it if the player is not connected)
    connected(player_id) -> bool
    """

    def __init__(
        self,
        cast,
        pool,
        memory,
        send: Callable[[int, dict], None],
        connected: Callable[[int], bool],
        cfg: DialogueConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        warm_heads: int = 0,
    ):
        """warm_heads: how many talking NPCs' heads to prefill at the worker before anyone talks
        (head.Warmer; `start` asks for head.WARM_HEADS; 0: none, a head is kept at its first talk)."""
        self.cast = cast
        self.world = cast.world
        self.pool = pool
        self.memory = memory
        self.send = send
        self.connected = connected
        self.cfg = cfg or DialogueConfig()
        self.clock = clock
        self.active: dict[int, Conversation] = {}  # cid -> conversation
        self.by_player: dict[int, int] = {}  # player id -> cid
        self.choices: list[acting.Choice] = []  # action steps running (acting.py)
        self.buckets: dict[int, tuple[float, float]] = {}  # player -> (tokens, at)
        self._ids = itertools.count(1)
        # (npc, player) -> first turn of the last prompt's window (prompt.turn_window); newest 4,096 pairs.
        self.windows: dict[tuple[str, str], tuple[str, str]] = {}
        self.observer: Callable[[str, dict], None] | None = None  # benches: observer("choice", {...})
        self._voice_words = lines.VoiceWords()  # the scorer's voice and lore words, per persona
        self.welcomed: dict[tuple[str, str], None] = {}  # (npc, player) named on their return; newest 4,096
        self.warmer = heads.Warmer(cast, pool, self.setting, warm_heads) if pool is not None and warm_heads else None
        cast.model_replies = True  # players' lines to NPCs come here (talk), not to the built-in answer
        self.counts = {
            "started": 0,
            "ok": 0,
            "fallback": 0,
            "cancelled": 0,
            "cut": 0,
            "hook": 0,
            "thinking": 0,
            "acted": 0,
            "replaced": 0,
            "trimmed": 0,
            "left": 0,
        }

    # -- a player talks (from the tick, applying the gateway's command) ----------------

    def talk(self, player: int, npc: int, text: str) -> Conversation:
        """Start a conversation; TalkRefused says why not (sent to the player as an error)."""
        now = self.clock()
        w, cfg = self.world, self.cfg
        m = self.cast.minds.get(npc)
        if m is None or not w.alive(npc):
            raise TalkRefused("bad_target", f"talk: entity {npc} is not an NPC one can talk to")
        if "talk" not in m.defn.allowed:
            raise TalkRefused("bad_target", f"talk: {w.name_of(npc)} does not talk")
        if not w.alive(player):
            raise TalkRefused("bad_target", "talk: you have no character")
        if self._distance(player, npc) > m.defn.senses["hear"]:
            raise TalkRefused(
                "too_far",
                f"talk: {w.name_of(npc)} is too far away to hear you (within {m.defn.senses['hear']:g} world units)",
            )
        if player in self.by_player:
            raise TalkRefused("busy", "talk: wait for the answer to your last line")
        tokens, at = self.buckets.get(player, (cfg.talk_burst, now))
        tokens = min(cfg.talk_burst, tokens + (now - at) * cfg.talk_rate)
        if tokens < 1:
            raise TalkRefused("rate_limited", f"talk: at most {cfg.talk_rate:g} lines per second")
        self.buckets[player] = (tokens - 1, now)
        line = clean_player(text, prompts.MAX_TURN)
        if not line:
            raise TalkRefused("bad_field", "talk: text is empty after cleaning")
        px, py = w.position(player)
        speaker = Seen(player, w.name_of(player), "player", self._distance(player, npc), px, py)
        return self._start(m, speaker, line, now)

    def talk_as(self, npc: int, name: str, text: str, sink: Callable[[dict | None], None]) -> Conversation:
        """An admin's talk to an NPC as a named player who has no character (POST /npcs/<id>/talk): the same
        conversation, with no distance, and every event also to `sink` (then None at the end). What the NPC
        remembers is kept under `name`, as for a player of that name."""
        w = self.world
        m = self.cast.minds.get(npc)
        if m is None or not w.alive(npc):
            raise TalkRefused("bad_target", f"talk: entity {npc} is not an NPC of an NPC file")
        if "talk" not in m.defn.allowed:
            raise TalkRefused("bad_target", f"talk: {w.name_of(npc)} does not talk ('talk' is not allowed)")
        if -npc in self.by_player:
            raise TalkRefused("busy", f"talk: an admin talk with {w.name_of(npc)} is still running")
        line = clean_player(text, prompts.MAX_TURN)
        who = clean_player(name, 24)
        if not line or not who:
            raise TalkRefused("bad_field", "talk: name and text must not be empty after cleaning")
        x, y = w.position(npc)
        return self._start(m, Seen(-npc, who, "player", 0.0, x, y), line, self.clock(), sink)

    def _start(self, m, speaker: Seen, line: str, now: float, sink=None) -> Conversation:
        w, cfg, npc = self.world, self.cfg, m.eid
        virtual = sink is not None
        player = speaker.id  # virtual: -npc, the key of its by_player entry
        hooked = self.cast.guards.get(m.defn.id) is not None and self.cast.guards[m.defn.id].has("on_hear")
        hook = hearing.spoken(self.cast, m, speaker, line)  # on_hear first: answer, add to, or leave it
        persona = m.defn.persona
        budget = getattr(persona, "first_token_ms", None)
        c = Conversation(
            next(self._ids),
            npc,
            player,
            speaker.name,
            heads.npc_key(m),
            speaker.name,
            line,
            now,
            cfg.first_token_s if budget is None else budget / 1000.0,
            self._audience(npc, None if virtual else player),
            started_s=w.time_s,
            sink=sink,
            virtual=virtual,
        )
        self.active[c.cid] = c
        self.by_player[player] = c.cid
        self.counts["started"] += 1
        if sink is not None:
            sink({"event": "heard", "npc": npc, "name": w.name_of(npc), "from": speaker.name, "text": line})
            sink(
                {
                    "event": "hook",
                    "hook": "on_hear",
                    "called": hooked,
                    "result": ("none" if hook is None else "answered" if hook.action in ANSWERS else "action"),
                    **({"intent": _intent(hook)} if hook is not None else {}),
                }
            )
        # Stand and face the player while answering (the NPC's own talk action), held there.
        self.cast.act(m, _decision("talk", None if virtual else player, f"talking with {c.player_name}"))
        self.cast.hold(npc, w.time_s + m.defn.params["talk"]["hold"])
        if hook is not None and hook.action in ANSWERS:
            self._hook_answer(c, m, hook)
            return c
        c.then = hook
        if len(self.active) > cfg.max_conversations or self.pool is None:
            self._fallback(c, "too many conversations" if self.pool is not None else "no dialogue model")
            return c
        c.recall = self.memory.recall(c.npc_key, c.player_key) if self.memory is not None else None
        if c.recall is None:
            self._ask(c, None)
        return c

    def _hook_answer(self, c: Conversation, m, hook) -> None:
        """on_hear answered (npc.talk / npc.give_item): its line is the reply; a gift is handed now."""
        c.by = "hook"
        if hook.action == "give_item" and not c.virtual:
            self.cast.act(m, replace(hook, say=None, reason=f"on_hear: giving to {c.player_name}"), BY_HOOK)
            self._tell(c, {"event": "action", "action": "give_item", "by": "hook", "applied": True, "item": hook.item})
        elif hook.action == "give_item":
            self._tell(
                c,
                {
                    "event": "action",
                    "action": "give_item",
                    "by": "hook",
                    "applied": False,
                    "item": hook.item,
                    "why": "a talk from the admin API has no character to hold the item",
                },
            )
        else:
            m.reason = f"on_hear: answered {c.player_name}"
            self._set_by(m, BY_HOOK)
        text = clean_reply(hook.say or "", m.defn.persona.max_reply)
        self._open(c, None)
        self.broadcast(c, {"t": "say_delta", "id": c.cid, "text": text})
        c.sent = len(text)
        self._end(c, "done", text)
        self._remember(c, text)

    def _set_by(self, m, by: int) -> None:
        row = self.cast.rows.row_of.get(m.eid)
        if row is not None:
            self.cast.rows.by[row] = by

    def _tell(self, c, event: dict | None) -> None:
        if c.sink is not None:
            c.sink(event)

    # -- every tick -----------------------------------------------------------------------

    def tick(self) -> None:
        now = self.clock()
        for c in list(self.active.values()):
            try:
                self._advance(c, now)
            except Exception:
                log.exception("conversation %d failed", c.cid)
                if not c.ended:
                    self._fallback(c, "internal error")
        if self.warmer is not None:
            self.warmer.tick(bool(self.active))  # one head request open at most, none while anyone talks
        if self.choices:
            self.choices, acted = acting.apply(self.choices, self.cast, self.world, self.observer, self._tell)
            self.counts["acted"] += acted

    def collect(self) -> list[Metric]:
        """/metrics families (a prometheus-client collector): conversations by how they went, and
        the pool's streams (metrics.py)."""
        return metrics.families(self.counts, len(self.active), self.pool)

    def close(self) -> None:
        for c in list(self.active.values()):
            self._end(c, "cancelled", "")

    def _advance(self, c: Conversation, now: float) -> None:
        w = self.world
        m = self.cast.minds.get(c.npc)
        if (
            (m is None or not w.alive(c.npc))
            or not c.virtual
            and (
                not w.alive(c.player)
                or not self.connected(c.player)
                or self._distance(c.player, c.npc) > self.cfg.leave_distance
            )
        ):
            if c.stream is not None:
                c.stream.cancel()
            self._end(c, "cancelled", "")  # nothing unchecked is shown, so nothing was said
            return
        why = self._must_go(c, m)
        if why is not None:
            if c.stream is not None:
                c.stream.cancel()
            log.info("conversation %d: %s leaves (%s)", c.cid, w.name_of(c.npc), why)
            self._end(
                c, "left", lines.fill(m.defn.persona.leave, c.player_name, w.name_of(c.npc), m.defn.persona.max_reply)
            )
            return
        if c.stream is None:
            if c.recall is not None and c.recall.done():
                self._ask(c, c.recall.result())
            elif now - c.started > self.cfg.wait_timeout_s:
                self._fallback(c, "memory did not answer")
                return
        if c.stream is not None:
            for piece in c.stream.take():
                n, text = (piece.get("n", 0), piece.get("text", "")) if isinstance(piece, dict) else (0, piece)
                if isinstance(n, int) and 0 <= n < 8:
                    c.texts[n] = c.texts.get(n, "") + clean_delta(str(text))
                    if isinstance(piece, dict) and isinstance(piece.get("logprob"), (int, float)):
                        c.logprobs[n] = float(piece["logprob"])
            if c.first_at is None and c.texts:
                c.first_at = now
            if c.stream.end is not None:
                self._say(c, m, "done" if c.stream.end == "ok" else "cut")
                return
            if (
                now - c.started > self.cfg.wait_timeout_s
                if c.first_at is None
                else now - c.first_at > self.cfg.reply_timeout_s
            ):
                c.stream.cancel()
                self._say(c, m, "cut")
                return
        if not c.opened and now - c.started >= c.budget_s:
            self._open(c, m.defn.persona.thinking)

    def _must_go(self, c: Conversation, m) -> str | None:
        """Why the NPC ends the conversation now: its hold is over, or a need became urgent."""
        if self.world.time_s - c.started_s > m.defn.params["talk"]["hold"]:
            return f"talked for {m.defn.params['talk']['hold']:g} s (actions.talk.hold)"
        stats = self.world.stats(c.npc) if m.defn.needs else {}
        for need in m.defn.needs:
            if need.relief and need.relief in m.defn.allowed and stats.get(need.name, 100.0) < need.low / 2:
                return f"{need.name} is urgent ({stats[need.name]:.0f} < {need.low / 2:g})"
        return None

    def _say(self, c: Conversation, m, reason: str) -> None:
        """The candidates have ended (or were cut): show the best that passes the checker,
        else one of the file's voice lines; no text at all: a fallback line."""
        limit, name = m.defn.persona.max_reply, self.world.name_of(c.npc)
        raw = [unquoted(clean_reply(c.texts.get(i, ""), limit), name) for i in range(max(c.texts, default=-1) + 1)]
        cands = [whole_sentences(t) for t in raw]
        c.trimmed = [i for i, (a, b) in enumerate(zip(raw, cands)) if a != b]
        if not any(cands):
            self._fallback(c, (c.stream.error if c.stream is not None else None) or "the model said nothing")
            return
        c.final = cands
        i, c.problems = check.best(
            cands,
            c.check,
            self._voice_words(m.defn),
            limit,
            [c.logprobs.get(k) for k in range(len(cands))],
            self.cfg.scorer,
        )
        if i is None:
            self.counts["replaced"] += 1
            log.info(
                "conversation %d: every candidate failed the checker (%s); a voice line instead",
                c.cid,
                "; ".join(str(p) for ps in c.problems for p in ps if p.kind in check.HARD),
            )
            text = lines.voice_line(m, c.player_name, self.world.name_of(c.npc))
        else:
            c.chosen, text = i, cands[i]
            self.counts["trimmed"] += i in c.trimmed
        pair = (c.npc_key, c.player_key)
        if pair not in self.welcomed:
            # The first line to a player it has met before (before this server started) names them.
            self.welcomed[pair] = None
            while len(self.welcomed) > 4096:
                del self.welcomed[next(iter(self.welcomed))]
            if c.returning and c.player_name.lower() not in text.lower():
                text = whole_sentences(clean_reply(f"{c.player_name}! {text}", limit))
        if not c.opened:
            self._open(c, None)
        self.broadcast(c, {"t": "say_delta", "id": c.cid, "text": text})
        c.sent = len(text)
        self._end(c, reason, text)
        if reason == "done":
            self._after_reply(c, m, text)
        elif reason == "cut":
            # What was said is kept, and what the player said of themself (their name first): on a loaded
            # machine (s17e's persona run, load 8-13) 18 of 30 replies were cut at reply_timeout_s, and two
            # NPCs whose every reply was cut did not know their player after a restart. No action follows.
            self._remember(c, text)

    def _ask(self, c: Conversation, recall) -> None:
        m = self.cast.minds[c.npc]
        p = self.cast.perceive(m)
        intent = p.intent
        near = [s.name for s in p.players if s.id != c.player]
        scene = prompts.Scene(p.time.day, p.time.clock, p.place, intent.activity or intent.action, near)
        facts = [in_own_terms(c.player_name, f) for f in recall.facts] if recall else []
        turns = list(recall.turns) if recall else []
        c.returning = bool(facts or turns)
        pair = (c.npc_key, c.player_key)
        turns = turns[prompts.turn_window(turns, self.windows.pop(pair, None)) :]
        if turns:
            self.windows[pair] = turns[0]
            while len(self.windows) > 4096:
                del self.windows[next(iter(self.windows))]
        name, persona = self.world.name_of(c.npc), m.defn.persona
        setting = self.setting()
        msgs = prompts.messages(name, persona, scene, c.player_name, facts, turns, c.line, persona.max_reply, setting)
        c.check = check.World(
            known=check.known_words(name, c.player_name, *near, *setting.places, *self._names())
            | check.proper_words(
                persona.who,
                *persona.knows,
                persona.style,
                *persona.lore,
                *persona.voice,
                persona.greeting,
                *persona.fallback,
            ),
            # The player's names are not the world's: a reply may only say them back (check.problems).
            heard=check.heard_words(c.line, *(t for who, t in turns if who == "player"), *facts),
            framing=prompts.moment_text(scene, c.player_name, facts)
            + " "
            + prompts.rules_text(name, persona.max_reply),
            line=c.line,
            player=c.player_name,
            own=check.known_words(name, persona.who, m.defn.id),  # its own trade (check._trade)
            said=[t for who, t in turns if who == "npc"],
        )
        c.stream = self.pool.open_stream(
            {
                "kind": "reply",
                "messages": msgs,
                "max_new_tokens": self.cfg.max_new_tokens,
                "max_chars": persona.max_reply * 2,
                "candidates": self.cfg.candidates,
                "temperature": self.cfg.temperature,
                "seed": c.cid,
                # The start every prompt of this NPC shares: the worker keeps it per NPC (kvcache.HeadCache).
                "head": heads.head(c.npc_key, name, persona, persona.max_reply, setting),
            }
        )

    def setting(self) -> prompts.Setting:
        """The world every prompt is anchored in: the map's places, the people of the NPC files."""
        people = [d.instance_name(1) if d.count == 1 else f"the {d.id}s" for d in self.cast.defs.values()]
        return prompts.Setting([p for p in self.cast.places if p != "spawn"], sorted(people))

    def _names(self) -> list[str]:
        return [d.name.replace("{n}", "") for d in self.cast.defs.values()]

    def _remember(self, c: Conversation, reply: str) -> None:
        if self.memory is not None:
            # Facts in the NPC's own words; the first one of a player holds their name.
            facts = facts_from(c.player_name, c.line)
            if not c.returning:
                facts.insert(0, met_fact(c.player_name, self.world.game_time.day))
            self.memory.remember(c.npc_key, c.player_key, [("player", c.line), ("npc", reply)], facts)

    def _after_reply(self, c: Conversation, m, reply: str) -> None:
        """A model's reply ended well: remember it, and choose an action (unless on_hear chose one)."""
        self._remember(c, reply)
        if not self.cfg.act or self.pool is None or c.then is not None:
            return  # _end told the listener (or took on_hear's action)
        ch = acting.ask(self.pool, self.cast, self.world, m, c, reply, self.cfg.calibrate)
        if ch is not None:
            self.choices.append(ch)
        else:
            self._tell(c, None)

    def memory_known(self, c: Conversation) -> bool:
        return c.returning

    # -- messages -------------------------------------------------------------------------

    def broadcast(self, c: Conversation, msg: dict) -> None:
        for pid in c.audience:
            self.send(pid, msg)
        if c.sink is not None:
            c.sink(
                {
                    "event": msg["t"],
                    **{k: v for k, v in msg.items() if k != "t"},
                    **({"by": _said_by(c)} if msg["t"] == "say_end" else {}),
                }
            )

    def _open(self, c: Conversation, thinking: str | None) -> None:
        c.opened = True
        if thinking:
            c.thinking = True
            self.counts["thinking"] += 1
            thinking = thinking.replace("{player}", c.player_name).replace("{name}", self.world.name_of(c.npc))
        self.broadcast(
            c,
            {
                "t": "say_start",
                "id": c.cid,
                "npc": c.npc,
                "name": self.world.name_of(c.npc),
                "to": c.player,
                "to_name": c.player_name,
                "heard": c.line,
                "thinking": thinking,
            },
        )

    def _fallback(self, c: Conversation, why: str) -> None:
        m = self.cast.minds.get(c.npc)
        log.info("conversation %d: fallback line (%s)", c.cid, why)
        self._end(c, "fallback", lines.fallback_line(m, c.player_name, self.world.name_of(c.npc)))

    def _end(self, c: Conversation, reason: str, text: str) -> None:
        if c.ended:
            return
        c.ended, c.reply, c.reason = True, text, reason
        if not c.opened:
            self._open(c, None)
        self.broadcast(c, {"t": "say_end", "id": c.cid, "text": text, "reason": reason})
        # "cut": a reply stopped at reply_timeout_s (30 s after its first word) or by the model; "hook": on_hear
        # answered instead of the model
        self.counts[
            "hook"
            if c.by == "hook"
            else {"done": "ok", "fallback": "fallback", "left": "left", "cut": "cut"}.get(reason, "cancelled")
        ] += 1
        self.active.pop(c.cid, None)
        if self.by_player.get(c.player) == c.cid:
            del self.by_player[c.player]
        m = self.cast.minds.get(c.npc)
        if m is not None and text:
            m.said(text, self.world.time_s)
        if m is not None and reason in ("done", "cut", "fallback"):
            # Stand a moment after speaking (the talk's duration), then the schedule may take it.
            self.cast.hold(c.npc, self.world.time_s + m.defn.params["talk"]["duration"])
        else:
            self.cast.hold(c.npc, None)
        if c.then is not None and m is not None and reason in ("done", "cut", "fallback"):
            self._then(c, m)
        elif c.by == "hook" or reason not in ("done",) or self.pool is None or not self.cfg.act:
            self._tell(c, None)  # nothing follows the reply (a model's "done" goes on to its action step)

    def _then(self, c: Conversation, m) -> None:
        """on_hear chose an action besides the reply: take it now, in place of the model's choice."""
        d = c.then
        event = {"event": "action", "action": d.action, "by": "hook", "applied": False}
        if c.virtual and d.target == c.player:
            event["why"] = "a talk from the admin API has no character to follow or give to"
        else:
            event["applied"] = self.cast.act(m, replace(d, reason=f"on_hear: after answering {c.player_name}"), BY_HOOK)
            self.cast.hold(c.npc, None)
        self._tell(c, event)
        self._tell(c, None)

    # -- geometry ---------------------------------------------------------------------------

    def _distance(self, a: int, b: int) -> float:
        ax, ay = self.world.position(a)
        bx, by = self.world.position(b)
        return math.hypot(ax - bx, ay - by)

    def _audience(self, npc: int, player: int | None) -> list[int]:
        from world.sim import PLAYER

        ids, pos = self.world.of_kind(PLAYER)
        x, y = self.world.position(npc)
        out = [player] if player is not None else []
        for pid, (px, py) in zip(ids.tolist(), pos.tolist()):
            if pid != player and math.hypot(px - x, py - y) <= self.cfg.audience_distance:
                out.append(int(pid))
        return out


def _decision(action: str, target: int | None, reason: str):
    return Decision(action, target=target, activity="talking", reason=reason)


def _said_by(c: Conversation) -> str:
    """Whose line a say_end carries: "hook", "model", "voice" (the model's failed the checks), "fallback"
    (no model, or it failed), or "none" (nothing was said: cancelled, or the NPC left)."""
    if c.by == "hook":
        return "hook"
    if c.chosen is not None:
        return "model"
    return {"done": "voice", "cut": "voice", "fallback": "fallback"}.get(c.reason, "none")


def _intent(d) -> dict:
    """A hook's decision as the admin's talk stream shows it."""
    return {
        k: v
        for k, v in (
            ("action", d.action),
            ("target", d.target),
            ("place", d.place),
            ("say", d.say),
            ("item", d.item),
            ("activity", d.activity),
        )
        if v is not None
    }


class Settings(Protocol):
    """What `start` reads of its configuration (server/config.py DialogueSection, handed over whole).
    Units: ms, tokens."""

    enabled: bool
    model: str  # "default" (SmolLM2-135M-Instruct GGUF), a .gguf file, a local HF dir, "tiny"
    dtype: str
    device: str  # "auto", "cpu", "cuda:N"
    memory_db: str  # "" = no memory
    first_token_ms: float
    max_new_tokens: int
    conversations: int
    threads: int  # 0 = every core
    nice: int
    prefix_cache: int
    step_delay_ms: float
    engine: str


def start(
    cast,
    send: Callable[[int, dict], None],
    connected: Callable[[int], bool],
    settings: Settings,
    *,
    clock: Callable[[], float] = time.monotonic,
    workers: int = 1,
    remote=None,
) -> Dialogue:
    """The dialogue service of a server: its memory (opened now, created if new)
    and its pool (one worker, started now; it loads the model in the background,
    and conversations wait in the pool's queue until it is ready)."""
    from npc.memory import Memory

    from npc.inference import Pool, PoolConfig

    o = settings
    memory = Memory(o.memory_db).start() if o.memory_db else None
    pool = None
    if o.enabled:
        devices = None if o.device == "auto" else [o.device]
        pool = Pool(
            PoolConfig(
                runner="npc.dialogue.runner:DialogueRunner",
                runner_options={
                    "model": o.model,
                    "dtype": o.dtype,
                    "max_new_tokens": o.max_new_tokens,
                    "prefix_cache_tokens": o.prefix_cache,
                    "step_delay_s": o.step_delay_ms / 1000.0,
                    "engine": o.engine,
                },
                workers=workers,
                devices=devices,
                max_streams=min(o.conversations, 16),
                remote=remote,  # remote dialogue workers through a broker (npc/inference/broker.py), or None
                threads=o.threads or os.cpu_count() or 1,
                nice=o.nice,  # below the tick's priority: the world never waits for the model
                # A step is a prefill of up to 512 new prompt tokens at worst: seconds on a small busy CPU.
                hang_timeout_s=60.0,
                heartbeat_s=0.5,
                start_timeout_s=300.0,
            )
        ).start()
    cfg = DialogueConfig(
        first_token_s=o.first_token_ms / 1000.0, max_new_tokens=o.max_new_tokens, max_conversations=o.conversations
    )
    return Dialogue(cast, pool, memory, send, connected, cfg, clock, warm_heads=heads.WARM_HEADS)


def stop(d: Dialogue) -> None:
    """Stop the worker and write the memory (blocks: at shutdown, off the event loop;
    sends nothing: the connections are closing)."""
    if d.pool is not None:
        d.pool.close()
    if d.memory is not None:
        d.memory.close()
