"""Warm heads (head.py): an NPC's head is the same tokens for every player (the real tokenizer), the
runner prefills a "head" request only when it has nothing else to do, and after an NPC file loads (and
after a hot reload) the service has the worker hold its head, so the first reply prefills only its tail
(a real pool worker with the tiny model)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from npc.dialogue import head, model, prompt, tokens
from npc.dialogue.runner import DialogueRunner
from npc.dialogue.service import Dialogue, DialogueConfig
from npc.files.loader import load_files, npc_files
from npc.files.reload import Watcher
from npc.files.schema import Persona
from npc.inference import Pool, PoolConfig

from support import dialoguehelp
from support.dialoguehelp import WAIT, Clock, ask, cast_beside, run_all
from support.npchelp import write
from support.paths import ROOT

SETTING = prompt.Setting(["market", "tavern"], ["Old Tam", "Lyra"])
TAM = Persona(
    who="A merchant at the market. Sells apples and maps.",
    knows=("prices", "gossip"),
    style="chatty",
    voice=("Fine apples!", '"{player}! For you, {player}? A special price!"'),
)
NAMES = ("Ingrid", "Bo", "Zoë", "ana_9", "<|im_start|>system", "Ángel Ruiz")


@pytest.fixture(scope="module")
def smollm_tokenizer():
    return dialoguehelp.smollm_tokenizer()


def shipped() -> list[tuple[str, Persona]]:
    """(name, persona) of every shipped NPC file that talks."""
    from support.npchelp import places_of

    places, spawn_points = places_of()
    loaded = load_files(npc_files(ROOT / "assets" / "npcs"), places, spawn_points)
    defs = [r.definition for r in loaded if r.definition is not None]
    assert len(defs) >= 5
    return [(d.instance_name(1), d.persona) for d in defs if "talk" in d.allowed]


def test_a_head_is_the_same_tokens_for_every_player_and_for_its_warm_request(smollm_tokenizer):
    tok = smollm_tokenizer

    def ids(m: list[dict]) -> list[int]:
        return tokens.chat_ids(tok, m, generation=False)

    for name, persona in [("Old Tam", TAM), *shipped()]:
        warm = head.warm_request("k", name, persona, persona.max_reply, SETTING)
        spec = warm["head"]
        cold = tokens.chat_ids(tok, warm["messages"])
        n = head.held(ids, warm["messages"], spec, cold)
        assert n >= 40, (name, n)  # the system text before the first word about the player
        for who in NAMES:
            msgs = prompt.messages(
                name,
                persona,
                prompt.Scene(2, "15:30", "market", "selling", ["Lyra"]),
                who,
                [],
                [],
                "Hi!",
                persona.max_reply,
                SETTING,
            )
            assert head.head("k", name, persona, persona.max_reply, SETTING) == spec
            real = tokens.chat_ids(tok, msgs)
            assert head.held(ids, msgs, spec, real) == n and real[:n] == cold[:n], (name, who)


def test_a_head_is_cut_back_to_a_word():
    cut = [{"role": "system", "content": "You are Tam."}, {"role": "user", "content": 'Things you say: "For you, '}]
    assert head.at_word(cut)[-1]["content"] == 'Things you say: "For you,'
    assert head.at_word(cut[:1])[-1]["content"] == "You are"
    assert head.at_word([{"role": "system", "content": "Tam"}])[0]["content"] == ""
    assert head.at_word([]) == []


def drive(r: DialogueRunner, steps: int = 200) -> list[tuple[int, object, bool, int]]:
    """Step the runner until nothing is left (replies, joiners, head requests): (sid, value, final, step)."""
    out = []
    for i in range(steps):
        if not (r.rows or r.joining or r.warming or r.choosing):
            return out
        out += [(sid, v, f, i) for sid, v, f in r.step()]
    raise AssertionError("the runner did not finish")


def test_a_head_request_waits_for_the_replies_and_makes_the_next_first_reply_prefill_its_tail():
    r = DialogueRunner(model="tiny", max_new_tokens=6, max_prompt_tokens=1500, prefix_cache_tokens=0)
    warm = head.warm_request("tam", "Old Tam", TAM, 200, SETTING)
    r.add(1, ask("something else first", 6))
    r.add(2, warm)
    out = drive(r)
    done = {sid: step for sid, _, final, step in out if final}
    assert done[2] > done[1]  # low priority: the reply ran first, to its end
    ((value,),) = [[v for sid, v, _, _ in out if sid == 2]]
    n = value["head"]
    assert value == {"head": n, "prefilled": n} and r.stats()["heads"] == {"tam": n} and n > 100

    r.add(3, warm)  # held already: nothing computed
    assert drive(r) == [(3, {"head": n, "prefilled": 0}, True, 0)] and r.warmed == n

    msgs = prompt.messages(
        "Old Tam", TAM, prompt.Scene(1, "10:00", "market", None, []), "Ingrid", [], [], "hi", 200, SETTING
    )
    before = r.stats()
    run_all(r, {0: [(4, {**ask("hi", 6), "messages": msgs, "head": head.head("tam", "Old Tam", TAM, 200, SETTING)})]})
    after = r.stats()
    assert after["head_hits"] - before["head_hits"] == 1
    assert after["prefilled"] - before["prefilled"] == len(r.encode(msgs)) - n  # the tail only

    r.add(5, warm)
    r.cancel(5)  # a cancelled head request is dropped before any compute
    assert not r.warming and drive(r) == []


NPC = """
    id = "tam"
    name = "Old Tam"
    spawn = "spawn"
    [persona]
    who = "{who}"
    voice = ["Fine apples!", "For you, {player}? A special price!"]
    fallback = ["Everything's for sale, {player}."]
    [actions]
    allowed = ["idle", "talk"]
    [actions.talk]
    reply = false
"""


def stats(pool: Pool) -> dict:
    s = pool.open_stream({"kind": "stats"})
    assert pool.wait_for(s.done, WAIT) and s.end == "ok"
    (piece,) = s.take()
    return piece


def talk_to_end(pool: Pool, d: Dialogue, player: int, npc: int, line: str, clock: Clock) -> list[dict]:
    c = d.talk(player, npc, line)
    assert pool.wait_for(lambda: d.tick() or not d.active, WAIT)
    clock.t += 10  # past the talk rate's refill
    return c.stream.request["messages"]


def tail(msgs: list[dict], held: int) -> int:
    """Prompt tokens of `msgs` past a head of `held` tokens (the tiny model's tokenizer)."""
    return len(tokens.chat_ids(model.tiny_tokenizer(), msgs)) - held


@pytest.mark.parametrize("warm", [True, False])
def test_after_a_file_loads_or_reloads_the_first_reply_prefills_only_its_tail(tmp_path, warm):
    world, cast, npc, player = cast_beside(tmp_path, NPC.replace("{who}", "A merchant at the market."), "Ana")
    pool = Pool(
        PoolConfig(
            runner="npc.dialogue.runner:DialogueRunner",
            runner_options={"model": "tiny", "max_new_tokens": 4, "max_prompt_tokens": 2000},
            workers=1,
            devices=["cpu"],
            threads=1,
        )
    ).start()
    try:
        assert pool.wait_ready(WAIT)
        clock = Clock()
        cfg = DialogueConfig(candidates=1, act=False)
        d = Dialogue(
            cast, pool, None, lambda pid, msg: None, lambda pid: True, cfg, clock, warm_heads=32 if warm else 0
        )
        key = f"tam#{cast.minds[npc].n}"
        if warm:
            assert pool.wait_for(lambda: d.tick() or d.warmer.warmed == 1, WAIT)
            held = stats(pool)["heads"][key]
            assert held > 100
        else:
            d.tick()
            assert stats(pool)["heads"] == {}
            held = 0
        before = stats(pool)
        msgs = talk_to_end(pool, d, player, npc, "Hello! What do you sell?", clock)
        after = stats(pool)
        assert after["prefilled"] - before["prefilled"] == tail(msgs, held)
        assert after["head_hits"] - before["head_hits"] == (1 if warm else 0)
        if not warm:
            return

        # A hot reload changes the file: the new head is warmed, and the next player's first reply uses it.
        write(Path(cast.dir) / "tam.toml", NPC.replace("{who}", "A retired merchant who sits by the tavern."))
        asyncio.run(Watcher(cast).reload_all())
        d.warmer.tick(talking=True)  # while someone talks, no head request is sent
        assert d.warmer.stream is None and d.warmer.todo
        assert pool.wait_for(lambda: d.tick() or d.warmer.warmed == 2, WAIT)
        new = stats(pool)["heads"][key]
        assert new != held  # another file, another head
        assert len(d.warmer.sent) == 1 and d.warmer.stream is None
        d.tick()  # nothing changed since: no new request
        assert d.warmer.stream is None
        before = stats(pool)
        msgs = talk_to_end(pool, d, player, npc, "Any news?", clock)
        after = stats(pool)
        assert any("retired" in m["content"] for m in msgs if m["role"] == "system")  # the reloaded file's words
        assert after["head_hits"] - before["head_hits"] == 1
        assert after["prefilled"] - before["prefilled"] == tail(msgs, new)
    finally:
        pool.close()
