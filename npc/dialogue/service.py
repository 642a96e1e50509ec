"""The game's side of dialogue: conversations, driven by the tick.

A player's `talk` to an NPC starts a conversation:
1. recall: the memory thread reads what this NPC remembers of the player
   (a future; the tick checks it, never waits);
2. reply: the prompt (prompt.py) goes to the dialogue pool as a stream; each
   tick the pieces that arrived are cleaned and sent to the player and to
   the players near the NPC (`say_start`, `say_delta`, `say_end`; see
   docs/protocol.md);
3. act: after a complete reply, one constrained step scores the NPC's
   allowed options (choice.py) and the chosen one becomes its intent.

Budgets and what happens at them:
- first token: if none has arrived `first_token_s` after the talk (the NPC
  file's persona.first_token_ms, else the server's default), the NPC shows
  its thinking line (`say_start` carries it) and the reply follows when it
  comes;
- no first token within `wait_timeout_s` (a worker still loading its model,
  or overloaded): the stream is cancelled and the NPC says a fallback line;
- whole reply: `reply_timeout_s` after its first token the stream is
  cancelled and the conversation ends with what was said;
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
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

from . import prompt as prompts
from .choice import Option, options
from .text import clean_delta, clean_player, clean_reply, facts_from, whole_sentences

log = logging.getLogger("npcworld.dialogue")


@dataclass
class DialogueConfig:
    first_token_s: float = 1.5  # default first-token budget (an NPC file may set its own)
    wait_timeout_s: float = 90.0  # no first token by then (e.g. the model still loading): a fallback line
    reply_timeout_s: float = 30.0  # from the first token: a reply not finished by then is cut
    max_new_tokens: int = 48  # per reply (the runner also bounds it)
    temperature: float = 0.7
    max_conversations: int = 64  # at once, over all NPCs
    talk_rate: float = 0.5  # talks a player may start per second...
    talk_burst: float = 3.0  # ...with this burst
    leave_distance: float = 320.0  # world units: beyond this the conversation is cancelled
    audience_distance: float = 320.0  # world units: players this close to the NPC see its line
    act: bool = True  # run the constrained action step after a reply


@dataclass
class Conversation:
    cid: int
    npc: int  # entity ids
    player: int
    player_name: str
    npc_key: str  # memory keys
    player_key: str
    line: str  # what the player said
    started: float  # clock seconds
    budget_s: float
    audience: list[int]  # player ids that see the NPC's line
    recall: Any = None  # concurrent Future[Recall]
    stream: Any = None  # the reply's Stream
    raw: str = ""  # what the model said so far (cleaned per piece)
    sent: int = 0  # characters of `raw` sent to clients
    opened: bool = False  # say_start sent
    thinking: bool = False  # the thinking line was shown
    first_at: float | None = None  # clock seconds when the first piece was seen
    ended: bool = False


@dataclass
class _Choice:
    npc: int
    player: int
    stream: Any
    options: list[Option]


class TalkRefused(Exception):
    """A talk the service will not start: code and message for the player's error."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


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

    def __init__(self, cast, pool, memory, send: Callable[[int, dict], None],
                 connected: Callable[[int], bool], cfg: DialogueConfig | None = None,
                 clock: Callable[[], float] = time.monotonic):
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
        self.choices: list[_Choice] = []
        self.buckets: dict[int, tuple[float, float]] = {}  # player -> (tokens, at)
        self._ids = itertools.count(1)
        # (npc, player) -> first turn of the last prompt's window (prompt.turn_window); newest 4,096 pairs.
        self.windows: dict[tuple[str, str], tuple[str, str]] = {}
        cast.model_replies = True  # players' lines to NPCs come here (talk), not to the built-in answer
        self.counts = {"started": 0, "ok": 0, "fallback": 0, "cancelled": 0, "thinking": 0, "acted": 0}

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
            raise TalkRefused("too_far", f"talk: {w.name_of(npc)} is too far away to hear you "
                                         f"(within {m.defn.senses['hear']:g} world units)")
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
        persona = m.defn.persona
        budget = getattr(persona, "first_token_ms", None)
        c = Conversation(next(self._ids), npc, player, w.name_of(player), f"{m.defn.id}#{m.n}", w.name_of(player),
                         line, now, cfg.first_token_s if budget is None else budget / 1000.0,
                         self._audience(npc, player))
        self.active[c.cid] = c
        self.by_player[player] = c.cid
        self.counts["started"] += 1
        # Stand and face the player while answering (the NPC's own talk action).
        self.cast.act(m, _decision("talk", player, f"talking with {c.player_name}"))
        if len(self.active) > cfg.max_conversations or self.pool is None:
            self._fallback(c, "too many conversations" if self.pool is not None else "no dialogue model")
            return c
        c.recall = self.memory.recall(c.npc_key, c.player_key) if self.memory is not None else None
        if c.recall is None:
            self._ask(c, None)
        return c

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
        if self.choices:
            self._act()

    def prometheus(self) -> list[str]:
        """/metrics lines: conversations by how they went, and the pool's streams."""
        lines = ["# HELP npcworld_dialogue_total Conversations with NPCs: started, and how they ended.",
                 "# TYPE npcworld_dialogue_total counter"]
        lines += [f'npcworld_dialogue_total{{event="{k}"}} {v}' for k, v in sorted(self.counts.items())]
        lines += ["# HELP npcworld_dialogue_active Conversations running now.", "# TYPE npcworld_dialogue_active gauge",
                  f"npcworld_dialogue_active {len(self.active)}"]
        if self.pool is not None:
            st = self.pool.stats
            lines += ["# HELP npcworld_dialogue_worker_deaths_total Dialogue workers lost (died or hung).",
                      "# TYPE npcworld_dialogue_worker_deaths_total counter",
                      f"npcworld_dialogue_worker_deaths_total {st.worker_deaths + st.worker_hangs}",
                      "# HELP npcworld_dialogue_ready Dialogue workers ready (0 while the model loads).",
                      "# TYPE npcworld_dialogue_ready gauge", f"npcworld_dialogue_ready {st.workers_ready}"]
            for ex in self.pool.executors:  # remote workers: presence, requests, outcomes, latency
                if ex.name != "local":
                    lines += ex.prometheus()
        return lines

    def close(self) -> None:
        for c in list(self.active.values()):
            self._end(c, "cancelled", clean_reply(c.raw, 200))

    def _advance(self, c: Conversation, now: float) -> None:
        w = self.world
        m = self.cast.minds.get(c.npc)
        if (m is None or not w.alive(c.npc) or not w.alive(c.player) or not self.connected(c.player)
                or self._distance(c.player, c.npc) > self.cfg.leave_distance):
            if c.stream is not None:
                c.stream.cancel()
            self._end(c, "cancelled", clean_reply(c.raw, m.defn.persona.max_reply if m else 200))
            return
        if c.stream is None:
            if c.recall is not None and c.recall.done():
                self._ask(c, c.recall.result())
            elif now - c.started > self.cfg.wait_timeout_s:
                self._fallback(c, "memory did not answer")
                return
        if c.stream is not None:
            for piece in c.stream.take():
                if isinstance(piece, dict):
                    piece = piece.get("text", "")
                c.raw += clean_delta(str(piece))
            limit = m.defn.persona.max_reply
            shown = clean_reply(c.raw, limit) if c.raw.strip() else ""
            if shown:
                # Send what is new (say_end then repeats the whole line, cleaned and bounded).
                if not c.opened:
                    self._open(c, None)
                visible = c.raw.lstrip()[:limit]
                if len(visible) > c.sent:
                    self.broadcast(c, {"t": "say_delta", "id": c.cid, "text": visible[c.sent:]})
                    c.sent = len(visible)
            if c.stream.end is not None:
                if c.stream.end == "ok" and shown:
                    shown = whole_sentences(shown)
                    self._end(c, "done", shown)
                    self._after_reply(c, m, shown)
                elif shown:
                    self._end(c, "cut", shown)
                else:
                    self._fallback(c, c.stream.error or c.stream.end)
                return
            if c.first_at is None and c.stream.pieces:
                c.first_at = now
            if (now - c.started > self.cfg.wait_timeout_s if c.first_at is None
                    else now - c.first_at > self.cfg.reply_timeout_s):
                c.stream.cancel()
                if shown:
                    self._end(c, "cut", shown)
                else:
                    self._fallback(c, f"no reply within {self.cfg.wait_timeout_s:g} s")
                return
        if not c.opened and now - c.started >= c.budget_s:
            self._open(c, m.defn.persona.thinking)

    def _ask(self, c: Conversation, recall) -> None:
        m = self.cast.minds[c.npc]
        p = self.cast.perceive(m)
        intent = p.intent
        near = [s.name for s in p.players if s.id != c.player]
        scene = prompts.Scene(p.time.day, p.time.clock, p.place, intent.activity or intent.action, near)
        facts = list(recall.facts) if recall else []
        turns = list(recall.turns) if recall else []
        pair = (c.npc_key, c.player_key)
        turns = turns[prompts.turn_window(turns, self.windows.pop(pair, None)):]
        if turns:
            self.windows[pair] = turns[0]
            while len(self.windows) > 4096:
                del self.windows[next(iter(self.windows))]
        msgs = prompts.messages(self.world.name_of(c.npc), m.defn.persona, scene, c.player_name, facts, turns,
                                c.line, m.defn.persona.max_reply)
        c.stream = self.pool.open_stream({"kind": "reply", "messages": msgs, "max_new_tokens": self.cfg.max_new_tokens,
                                          "max_chars": m.defn.persona.max_reply * 2,
                                          "temperature": self.cfg.temperature, "seed": c.cid})

    def _after_reply(self, c: Conversation, m, reply: str) -> None:
        if self.memory is not None:
            facts = facts_from(c.player_name, c.line)
            if not self.memory_known(c):
                facts.insert(0, f"You met {c.player_name} on day {self.world.game_time.day}.")
            self.memory.remember(c.npc_key, c.player_key, [("player", c.line), ("npc", reply)], facts)
        if not self.cfg.act or self.pool is None:
            return
        intent = self.world.intent(c.npc)
        following = intent.action == "follow" and intent.target == c.player
        opts = options(m.defn, c.player, c.player_name, list(self.cast.places), following, self.cast.gifts(m.eid))
        if len(opts) > 1:
            msgs = prompts.choice_messages(self.world.name_of(c.npc), m.defn.persona, c.player_name, c.line, reply)
            stream = self.pool.open_stream({"kind": "choose", "messages": msgs, "options": [o.label for o in opts]})
            self.choices.append(_Choice(c.npc, c.player, stream, opts))

    def memory_known(self, c: Conversation) -> bool:
        r = c.recall
        return bool(r is not None and r.done() and (r.result().turns or r.result().facts))

    def _act(self) -> None:
        keep = []
        for ch in self.choices:
            if ch.stream.end is None:
                keep.append(ch)
                continue
            pieces = ch.stream.take()
            m = self.cast.minds.get(ch.npc)
            if ch.stream.end != "ok" or not pieces or m is None:
                continue
            i = pieces[-1].get("choice") if isinstance(pieces[-1], dict) else None
            if not isinstance(i, int) or not 0 <= i < len(ch.options):
                continue  # a bad index is never applied
            decision = ch.options[i].decision
            if decision is not None and self.world.alive(ch.player):
                self.cast.act(m, decision)
                self.counts["acted"] += 1
        self.choices = keep

    # -- messages -------------------------------------------------------------------------

    def broadcast(self, c: Conversation, msg: dict) -> None:
        for pid in c.audience:
            self.send(pid, msg)

    def _open(self, c: Conversation, thinking: str | None) -> None:
        c.opened = True
        if thinking:
            c.thinking = True
            self.counts["thinking"] += 1
            thinking = thinking.replace("{player}", c.player_name).replace("{name}", self.world.name_of(c.npc))
        self.broadcast(c, {"t": "say_start", "id": c.cid, "npc": c.npc, "name": self.world.name_of(c.npc),
                           "to": c.player, "to_name": c.player_name, "heard": c.line, "thinking": thinking})

    def _fallback(self, c: Conversation, why: str) -> None:
        m = self.cast.minds.get(c.npc)
        lines = m.defn.persona.fallback if m is not None else ("...",)
        n = m.state.replies if m is not None else 0
        if m is not None:
            m.state.replies += 1
        text = lines[n % len(lines)].replace("{player}", c.player_name).replace("{name}", self.world.name_of(c.npc))
        log.info("conversation %d: fallback line (%s)", c.cid, why)
        self._end(c, "fallback", clean_reply(text, m.defn.persona.max_reply if m else 200))

    def _end(self, c: Conversation, reason: str, text: str) -> None:
        if c.ended:
            return
        c.ended = True
        if not c.opened:
            self._open(c, None)
        self.broadcast(c, {"t": "say_end", "id": c.cid, "text": text, "reason": reason})
        self.counts["ok" if reason == "done" else "fallback" if reason == "fallback" else "cancelled"] += 1
        self.active.pop(c.cid, None)
        if self.by_player.get(c.player) == c.cid:
            del self.by_player[c.player]
        m = self.cast.minds.get(c.npc)
        if m is not None and text:
            m.last_said, m.last_said_s = text, self.world.time_s

    # -- geometry ---------------------------------------------------------------------------

    def _distance(self, a: int, b: int) -> float:
        ax, ay = self.world.position(a)
        bx, by = self.world.position(b)
        return math.hypot(ax - bx, ay - by)

    def _audience(self, npc: int, player: int) -> list[int]:
        from world.sim import PLAYER

        ids, pos = self.world.of_kind(PLAYER)
        x, y = self.world.position(npc)
        out = [player]
        for pid, (px, py) in zip(ids.tolist(), pos.tolist()):
            if pid != player and math.hypot(px - x, py - y) <= self.cfg.audience_distance:
                out.append(int(pid))
        return out


def _decision(action: str, target: int, reason: str):
    from npc.minds.builtin import Decision

    return Decision(action, target=target, activity="talking", reason=reason)


def start(cast, send: Callable[[int, dict], None], connected: Callable[[int], bool], *, enabled: bool = True,
          model: str = "default", dtype: str = "auto", device: str = "auto", memory_db: str = "",
          first_token_ms: float = 1500.0, max_new_tokens: int = 48, conversations: int = 64,
          threads: int | None = None, nice: int = 10, prefix_cache: int = 8192, step_delay_ms: float = 0.0,
          engine: str = "auto", clock: Callable[[], float] = time.monotonic, workers: int = 1, remote=None) -> Dialogue:
    """The dialogue service of a server: its memory (opened now, created if new)
    and its pool (one worker, started now; it loads the model in the background,
    and conversations wait in the pool's queue until it is ready)."""
    from npc.memory import Memory

    from npc.inference import Pool, PoolConfig

    memory = Memory(memory_db).start() if memory_db else None
    pool = None
    if enabled:
        devices = None if device == "auto" else [device]
        pool = Pool(PoolConfig(
            runner="npc.dialogue.runner:DialogueRunner",
            runner_options={"model": model, "dtype": dtype, "max_new_tokens": max_new_tokens,
                            "prefix_cache_tokens": prefix_cache, "step_delay_s": step_delay_ms / 1000.0,
                            "engine": engine},
            workers=workers, devices=devices, max_streams=min(conversations, 16),
            remote=remote,  # remote dialogue workers through a broker (npc/inference/broker.py), or None
            threads=threads,  # None: the cores left after one for the game process
            nice=nice,  # below the tick's priority: the world never waits for the model
            # A step is a prefill of up to 512 new prompt tokens at worst: seconds on a small busy CPU.
            hang_timeout_s=60.0, heartbeat_s=0.5, start_timeout_s=300.0,
        )).start()
    cfg = DialogueConfig(first_token_s=first_token_ms / 1000.0, max_new_tokens=max_new_tokens,
                         max_conversations=conversations)
    return Dialogue(cast, pool, memory, send, connected, cfg, clock)


def stop(d: Dialogue) -> None:
    """Stop the worker and write the memory (blocks: at shutdown, off the event loop;
    sends nothing: the connections are closing)."""
    if d.pool is not None:
        d.pool.close()
    if d.memory is not None:
        d.memory.close()
