"""Dialogue: the runner (continuous batching on a tiny random Llama), the
service's budgets and cancellation (with real pool workers), memory across
restarts, the constrained action step, and output cleaning.

No sleeps, no timing assertions: the service runs on a fake clock; tests wait
for streams with pool.wait_for.
"""

from __future__ import annotations


import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npc.dialogue import choice, prompt, text
from npc.dialogue.runner import DialogueRunner
from npc.dialogue.service import Dialogue, DialogueConfig, TalkRefused
from npc.inference import Pool, PoolConfig, StreamEnd
from npc.inference.testing import Latch
from npc.memory import Memory

from support.dialoguehelp import WAIT, Clock, ask, cast_beside, joined, run_all, scripted_pool


# -- the runner: continuous batching ------------------------------------------------------


@pytest.fixture(scope="module")
def runner():
    return DialogueRunner(model="tiny", max_new_tokens=24, max_prompt_tokens=400)


def test_pieces_stream_in_order_and_end_once(runner):
    out = run_all(runner, {0: [(1, ask("hello there", 10))]})
    pieces = out[1]
    assert [f for _, f, _ in pieces].count(True) == 1 and pieces[-1][1]
    steps = [s for _, _, s in pieces]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)  # at most one piece per step
    assert not runner.rows and not runner.joining


def test_joining_and_leaving_the_batch_does_not_change_a_reply(runner):
    alone_a = joined(run_all(runner, {0: [(1, ask("tell me about the village", 16))]})[1])
    alone_b = joined(run_all(runner, {0: [(2, ask("a much longer line than the other one, about apples", 6))]})[2])
    alone_c = joined(run_all(runner, {0: [(3, ask("hi", 20))]})[3])
    # b joins while a runs, leaves early; c joins later and outlives both.
    out = run_all(
        runner,
        {
            0: [(1, ask("tell me about the village", 16))],
            3: [(2, ask("a much longer line than the other one, about apples", 6))],
            5: [(3, ask("hi", 20))],
        },
    )
    assert joined(out[1]) == alone_a and joined(out[2]) == alone_b and joined(out[3]) == alone_c
    assert out[2][0][2] >= 3 and out[3][0][2] >= 5


def test_a_cached_prefix_gives_the_same_reply(runner):
    from npc.dialogue.kvcache import PrefixCache

    long_sys = "You are Tam, the merchant of the market. You sell apples, maps and rope, and you know every rumour."
    msg = lambda line: {
        **ask(line, 12),
        "messages": [{"role": "system", "content": long_sys}, {"role": "user", "content": line}],
    }
    keep = runner.prefixes
    try:
        runner.prefixes = PrefixCache(0)  # nothing stored: every prompt computed whole
        cold = [joined(run_all(runner, {0: [(i, msg(line))]})[i]) for i, line in enumerate(["apples?", "rope?"])]
        runner.prefixes = PrefixCache(4096)
        run_all(runner, {0: [(9, msg("maps?"))]})  # stores its prompt; the next two share its system part
        # One joiner alone, then two in one prefill step (with and without a hit: a fresh prompt).
        warm = [joined(run_all(runner, {0: [(0, msg("apples?"))]})[0])]
        both = run_all(runner, {0: [(1, msg("rope?")), (2, ask("unrelated words", 12))]})
        warm.append(joined(both[1]))
        assert warm == cold
        assert runner.prefixes.hits >= 2 and runner.prefixes.reused >= 2 * 20
        assert joined(both[2]) == joined(run_all(runner, {0: [(3, ask("unrelated words", 12))]})[3])
    finally:
        runner.prefixes = keep


def test_running_replies_keep_streaming_while_others_join(runner):
    keep = runner.prefill_tokens, runner.max_stall_s
    runner.prefill_tokens, runner.max_stall_s = 1, 0.0  # one joiner per prefill step; no stall allowed
    try:
        plan = {
            0: [(1, ask("a long answer please", 20))],
            2: [(10 + i, ask(f"joiner number {i}", 4)) for i in range(5)],
        }
        out = run_all(runner, plan)
        steps = [s for _, _, s in out[1]]
        assert all(b - a <= 2 for a, b in zip(steps, steps[1:]))  # a token at least every other step
        assert all(out[10 + i][-1][1] for i in range(5))
    finally:
        runner.prefill_tokens, runner.max_stall_s = keep


def test_cancel_frees_the_row_at_once(runner):
    out = run_all(runner, {0: [(1, ask("one", 20)), (2, ask("two", 20))]}, cancel={3: 1})
    assert all(s < 3 for _, _, s in out[1])  # nothing after the cancel
    assert out[2][-1][1]
    runner.add(5, ask("x", 30))
    runner.step()
    runner.cancel(5)
    assert not runner.rows and runner.last is None and runner.engine.running == 0


def test_the_prompt_is_bounded_oldest_turns_first(runner, caplog):
    before = runner.trimmed_turns
    history = []
    for i in range(40):
        history += [{"role": "user", "content": f"question {i} " * 8}, {"role": "assistant", "content": "answer " * 8}]
    msgs = [{"role": "system", "content": "You are Tam."}, *history, {"role": "user", "content": "the newest line"}]
    ids = runner.encode(msgs)
    assert len(ids) <= runner.max_prompt_tokens
    decoded = runner.tok.decode(ids)
    assert "You are Tam." in decoded and "the newest line" in decoded and "question 0 " not in decoded
    assert runner.trimmed_turns > before
    assert any("dropped its" in r.getMessage() for r in caplog.records)  # said, not silent
    # Even one enormous system message cannot overflow it.
    assert (
        len(runner.encode([{"role": "system", "content": "lore " * 5000}, {"role": "user", "content": "hi"}]))
        <= runner.max_prompt_tokens
    )


# -- the constrained action step ------------------------------------------------------------

NPC_FILE = """
    id = "tam"
    name = "Old Tam"
    spawn = "spawn"
    [persona]
    who = "A merchant."
    thinking = "Let me see..."
    fallback = ["Everything's for sale, {player}."]
    first_token_ms = 500
    [actions]
    allowed = ["idle", "talk", {extra}]
    [actions.talk]
    reply = false
    {give}
"""


def make_cast(tmp_path, allowed_extra=("go_to", "give_item")):
    give = '[actions.give_item]\n    items = ["apple"]' if "give_item" in allowed_extra else ""
    npc_file = NPC_FILE.replace("{extra}", ", ".join(f'"{a}"' for a in allowed_extra)).replace("{give}", give)
    return cast_beside(tmp_path, npc_file, "Ana")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line=st.text(max_size=200), allowed=st.sets(st.sampled_from(("follow", "go_to", "give_item")), max_size=3))
def test_a_disallowed_action_is_never_chosen(runner, tmp_path_factory, line, allowed):
    world, cast, npc, player = make_cast(tmp_path_factory.mktemp("c"), tuple(sorted(allowed)))
    defn = cast.minds[npc].defn
    opts = choice.options(defn, player, "Ana", list(cast.places), following=True)
    assert all(o.decision is None or o.decision.action in defn.allowed for o in opts)
    line = text.clean_player(line, 200) or "follow me and give me everything, then flee"
    msgs = prompt.choice_messages("Old Tam", defn.persona, "Ana", line, "Of course!")
    result = runner.choose(msgs, [o.label for o in opts])  # the player's text is in the prompt, never an option
    i = result["choice"]
    assert 0 <= i < len(opts) and len(result["scores"]) == len(opts)
    chosen = opts[i].decision
    assert chosen is None or chosen.action in defn.allowed


# -- the service: budgets, fallback, cancellation ---------------------------------------------


def service(tmp_path, pool, memory=None, act=False):
    world, cast, npc, player = make_cast(tmp_path)
    sent: list[tuple[int, dict]] = []
    online = {player}
    clock = Clock()
    d = Dialogue(
        cast,
        pool,
        memory,
        lambda pid, msg: sent.append((pid, msg)),
        lambda pid: pid in online,
        DialogueConfig(first_token_s=1.0, act=act),
        clock,
    )
    return d, world, npc, player, sent, clock, online


def kinds(sent):
    return [m["t"] for _, m in sent]


def test_thinking_line_when_the_first_token_is_late_then_the_reply(tmp_path):
    gate, started = Latch(), Latch()
    pool = scripted_pool(gate=gate, started=started, op="gate", n=3, say=["Hello there, friend."])
    try:
        d, world, npc, player, sent, clock, _ = service(tmp_path, pool)
        c = d.talk(player, npc, "Hello!")
        assert c.budget_s == 0.5  # the NPC file's first_token_ms
        assert started.wait(WAIT)
        d.tick()
        assert sent == []  # within the budget: nothing yet
        clock.t += 0.6
        d.tick()
        assert kinds(sent) == ["say_start"] and sent[0][1]["thinking"] == "Let me see..."
        gate.set()
        assert pool.wait_for(lambda: c.stream.done(), WAIT)
        clock.t += 0.1
        d.tick()
        assert kinds(sent) == ["say_start", "say_delta", "say_end"]
        assert sent[-1][1]["reason"] == "done" and sent[-1][1]["text"] == "Hello there, friend." and c.chosen == 0
    finally:
        gate.set()
        pool.close()


def test_fallback_line_when_the_worker_dies(tmp_path):
    pool = scripted_pool(op="crash")
    try:
        d, world, npc, player, sent, clock, _ = service(tmp_path, pool)
        c = d.talk(player, npc, "Hello!")
        assert pool.wait_for(lambda: c.stream is not None and c.stream.done(), WAIT)
        d.tick()
        assert c.stream.end == StreamEnd.FAILED
        assert kinds(sent) == ["say_start", "say_end"]
        assert sent[-1][1] == {"t": "say_end", "id": c.cid, "text": "Everything's for sale, Ana.", "reason": "fallback"}
    finally:
        pool.close()


def test_no_pool_means_fallback_lines(tmp_path):
    d, world, npc, player, sent, clock, _ = service(tmp_path, None)
    d.talk(player, npc, "Hello!")
    assert kinds(sent) == ["say_start", "say_end"] and sent[-1][1]["reason"] == "fallback"


@pytest.mark.parametrize("how", ["walks away", "disconnects"])
def test_leaving_cancels_the_conversation_and_frees_the_stream(tmp_path, how):
    gate, started = Latch(), Latch()
    pool = scripted_pool(gate=gate, started=started, op="gate", n=10**6)
    try:
        d, world, npc, player, sent, clock, online = service(tmp_path, pool)
        c = d.talk(player, npc, "Hello!")
        assert started.wait(WAIT)
        if how == "walks away":
            t = world._table
            t.pos[t.slot(player)] = (t.pos[t.slot(npc)][0] + 400, t.pos[t.slot(npc)][1])
        else:
            online.discard(player)
        d.tick()
        assert sent[-1][1]["t"] == "say_end" and sent[-1][1]["reason"] == "cancelled"
        assert not d.active
        assert pool.wait_for(lambda: c.stream.end == StreamEnd.CANCELLED, WAIT)
        gate.set()
        # The worker dropped it: a new stream runs alone.
        s = pool.open_stream({"n": 1, "op": "echo"})
        assert pool.wait_for(lambda: s.done(), WAIT)
        assert c.stream.sid in s.take()[0]["cancelled"]
    finally:
        gate.set()
        pool.close()


def test_talk_is_bounded(tmp_path):
    d, world, npc, player, sent, clock, _ = service(tmp_path, None)
    with pytest.raises(TalkRefused, match="not an NPC"):
        d.talk(player, 99999, "hi")
    for _ in range(3):  # the burst
        d.talk(player, npc, "hi")
    with pytest.raises(TalkRefused) as e:
        d.talk(player, npc, "hi")
    assert e.value.code == "rate_limited"
    clock.t += 10
    t = world._table
    t.pos[t.slot(player)] = (t.pos[t.slot(npc)][0] + 300, t.pos[t.slot(npc)][1])
    with pytest.raises(TalkRefused) as e:
        d.talk(player, npc, "hi")
    assert e.value.code == "too_far"


def test_a_real_reply_streams_and_is_remembered(tmp_path):
    pool = Pool(
        PoolConfig(
            runner="npc.dialogue.runner:DialogueRunner",
            runner_options={"model": "tiny", "max_new_tokens": 8},
            workers=1,
            devices=["cpu"],
            threads=1,
        )
    ).start()
    memory = Memory(tmp_path / "m.sqlite").start()
    try:
        assert pool.wait_ready(WAIT)
        d, world, npc, player, sent, clock, _ = service(tmp_path, pool, memory, act=True)
        c = d.talk(player, npc, "Hi, my name is Ana and I like apples.")
        assert pool.wait_for(lambda: (d.tick() or not d.active) and not d.choices, WAIT)
        assert kinds(sent)[0] == "say_start" and kinds(sent)[-1] == "say_end"
        end = sent[-1][1]
        assert end["reason"] in ("done", "cut") and end["text"]
        deltas = "".join(m["text"] for _, m in sent if m["t"] == "say_delta")
        assert text.clean_reply(deltas, 200) == end["text"]
        assert memory.flush()
    finally:
        pool.close()
        memory.close()
    again = Memory(tmp_path / "m.sqlite").start()  # a restart
    try:
        r = again.recall(c.npc_key, "Ana").result(WAIT)
        assert r.turns[0] == ("player", "Hi, my name is Ana and I like apples.") and r.turns[1][0] == "npc"
        assert any("Ana told me they like apples" in f for f in r.facts) and any("met Ana" in f for f in r.facts)
    finally:
        again.close()


# -- memory and text ----------------------------------------------------------------------------


def test_memory_is_created_bounded_and_survives_a_restart(tmp_path):
    path = tmp_path / "deep" / "memory.sqlite"
    m = Memory(path, max_turns=4, max_facts=2).start()
    for i in range(5):
        m.remember("tam#1", "Ana", [("player", f"line {i}"), ("npc", f"reply {i}")], [f"fact {i}"])
    m.remember("tam#1", "Bo", [("player", "other")])
    m.close()
    m = Memory(path, max_turns=4, max_facts=2).start()
    try:
        r = m.recall("tam#1", "Ana").result(WAIT)
        assert r.turns == [("player", "line 3"), ("npc", "reply 3"), ("player", "line 4"), ("npc", "reply 4")]
        assert r.facts == ["fact 3", "fact 4"]
        assert m.recall("tam#1", "Cy").result(WAIT).turns == []
    finally:
        m.close()


def test_output_is_cleaned_and_bounded():
    raw = "Hello\x00 there\u202e<|im_end|>\n\n<|im_start|>user friend\x1b[31m " + "word " * 100
    out = text.clean_reply(raw, 60)
    assert len(out) <= 60 and "\x00" not in out and "\u202e" not in out and "<|" not in out and "\x1b" not in out
    assert out.startswith("Hello there user friend")
    assert text.clean_delta("a\nb\tc") == "a b c"


def test_prompt_holds_persona_state_memory_and_is_bounded(tmp_path):
    world, cast, npc, player = make_cast(tmp_path)
    persona = cast.minds[npc].defn.persona
    scene = prompt.Scene(2, "14:05", "market", "selling", ["Bo"])
    msgs = prompt.messages(
        "Old Tam",
        persona,
        scene,
        "Ana",
        ["Ana said: I like apples"] * 50,
        [("player", "x" * 1000), ("npc", "y")] * 50,
        "Hello",
        120,
    )
    # The name and voice first, then the example exchanges, then who the NPC is and how to answer
    # (nearer the conversation than the examples), the turns, the moment and the line.
    voice, world_msg, moment = msgs[0]["content"], msgs[1 + 2 * len(prompt.EXAMPLES)], msgs[-2]["content"]
    assert voice.startswith("You are Old Tam.") and "A merchant." not in voice and "Ana" not in voice
    assert [m["role"] for m in msgs[1 : 1 + 2 * len(prompt.EXAMPLES)]] == ["user", "assistant"] * len(prompt.EXAMPLES)
    assert world_msg["role"] == "system" and "Old Tam" in world_msg["content"]
    assert "A merchant." in world_msg["content"] and world_msg["content"].endswith(prompt.rules_text("Old Tam", 120))
    assert msgs[-2]["role"] == "system" and "afternoon" in moment and "14:05" not in moment and "market" in moment
    assert "Bo" in moment and "I like apples" in moment
    assert len(msgs) == 4 + 2 * len(prompt.EXAMPLES) + prompt.MAX_TURNS
    assert msgs[-1] == {"role": "user", "content": "Hello"}
    assert sum(len(m["content"]) for m in msgs) <= prompt.MAX_CHARS
    # A long persona and long turns: the oldest turns are left out past MAX_CHARS; the world message
    # after the examples and the newest turns stay.
    from dataclasses import replace

    lore = tuple(f"Fact {i}: an apple costs one copper coin, a pear two, a plum three. " * 2 for i in range(16))
    long = prompt.messages(
        "Old Tam",
        replace(persona, lore=lore),
        scene,
        "Ana",
        [],
        [("player", "x" * 300), ("npc", "y" * 300)] * 9,
        "Hi",
        120,
    )
    k = 1 + 2 * len(prompt.EXAMPLES)
    assert long[k]["content"].startswith("You are Old Tam.") and "Fact 15" in long[k]["content"]
    assert 0 < len(long) - k - 3 < prompt.MAX_TURNS and long[-3] == {"role": "assistant", "content": "y" * 200}
    assert sum(len(m["content"]) for m in long) <= prompt.MAX_CHARS


def test_a_conversations_prompts_share_their_start():
    """The turn window keeps its start for a few exchanges, so each prompt begins
    with the whole of the previous one up to its moment (what the prefix cache reuses)."""
    from npc.files.schema import Persona

    persona = Persona(who="A merchant.")
    turns: list[tuple[str, str]] = []
    anchor, starts, shared = None, [], 0
    before = None
    for k in range(12):
        start = prompt.turn_window(turns, anchor)
        window = turns[start:]
        assert len(window) <= prompt.MAX_TURNS and window == turns[len(turns) - len(window) :]
        anchor = window[0] if window else None
        starts.append(start)
        msgs = prompt.messages(
            "Tam", persona, prompt.Scene(1, f"10:{k:02d}", "market", "selling"), "Ana", [], window, f"line {k}", 100
        )
        if before is not None and msgs[:-2] == before[:-2] + [before[-1], msgs[-3]]:
            shared += 1  # everything up to the previous moment is unchanged
        before = msgs
        turns += [("player", f"line {k}"), ("npc", f"reply {k}")]
    assert starts == sorted(starts) and len(set(starts)) <= 5  # the window moves in jumps, not every line
    assert shared >= 8


def test_the_prefix_cache_finds_the_longest_shared_start_and_stays_in_budget():
    import torch

    from npc.dialogue.kvcache import PrefixCache

    def kv(n: int, mark: float) -> list:
        return [(torch.full((1, 2, n, 4), mark), torch.full((1, 2, n, 4), -mark)) for _ in range(3)]

    cache = PrefixCache(budget=60, min_tokens=4)
    a, b = list(range(30)), list(range(20)) + [99] * 10
    cache.store(a, kv(30, 1.0))
    cache.store(b, kv(30, 2.0))
    n, got = cache.lookup(list(range(25)) + [7, 7])  # shares 25 with a, 20 with b
    assert n == 25 and got[0][0].shape == (1, 2, 25, 4) and float(got[0][0][0, 0, 0, 0]) == 1.0
    assert cache.lookup(a)[0] == 29  # the whole prompt stored: its last token is still computed
    assert cache.lookup([5, 6, 7, 8, 9]) == (0, None)  # nothing shared
    assert cache.lookup(list(range(3)) + [50])[0] == 0  # shorter than min_tokens
    cache.store(list(range(100, 130)), kv(30, 3.0))  # over budget: the least recently used (b) leaves
    assert cache.tokens == 60 and tuple(b) not in cache.entries and tuple(a) in cache.entries
    PrefixCache(budget=0).store(a, kv(30, 1.0))  # off: stores nothing


def npc_prompt(persona, player: str, line: str, clock: str = "10:00") -> dict:
    """A reply request as the service sends it: the game's prompt and its NPC's head (head.py)."""
    from npc.dialogue import head

    setting = prompt.Setting(["market", "tavern"], ["Old Tam", "Lyra"])
    msgs = prompt.messages(
        "Old Tam", persona, prompt.Scene(1, clock, "market", "selling", []), player, [], [], line, 200, setting
    )
    return {**ask(line, 12), "messages": msgs, "head": head.head("tam", "Old Tam", persona, 200, setting)}


def test_an_npcs_head_is_kept_per_npc_gives_a_cold_prompts_tokens_and_a_changed_file_drops_it():
    from npc.files.schema import Persona

    tam = Persona(who="A merchant at the market. Sells apples and maps.", knows=("prices", "gossip"), style="chatty")
    edited = Persona(who="A retired merchant who sits by the tavern.", knows=("prices", "gossip"), style="chatty")
    cold = DialogueRunner(model="tiny", max_new_tokens=24, max_prompt_tokens=1500, prefix_cache_tokens=0, head_cache=0)
    warm = DialogueRunner(model="tiny", max_new_tokens=24, max_prompt_tokens=1500, prefix_cache_tokens=0, head_cache=2)
    ask_bo, ask_edited = npc_prompt(tam, "Bo", "Any news?", "15:30"), npc_prompt(edited, "Bo", "Any news?", "15:30")
    want = {k: joined(run_all(cold, {0: [(k, p)]})[k]) for k, p in ((0, ask_bo), (1, ask_edited))}
    assert cold.heads.hits == 0 and not cold.heads.entries  # off: nothing kept

    run_all(warm, {0: [(1, npc_prompt(tam, "Ingrid", "What do you sell?"))]})  # another player: keeps the head
    ((key, n),) = [(k, len(ids)) for k, (ids, _) in warm.heads.entries.items()]
    prompt_bo = warm.encode(ask_bo["messages"])
    assert key == "tam" and 16 <= n < len(prompt_bo) - 20  # the system text before the player's name
    reused = warm.prefixes.reused
    assert joined(run_all(warm, {0: [(2, ask_bo)]})[2]) == want[0]  # from the head: the cold reply
    assert warm.heads.hits == 1 and warm.prefixes.reused - reused == n

    # The NPC file changed: its new head does not match the kept one; the reply is the cold one and
    # the new head replaces the old (the key keeps one head).
    assert joined(run_all(warm, {0: [(3, ask_edited)]})[3]) == want[1]
    assert warm.heads.hits == 1 and warm.heads.replaced == 1 and list(warm.heads.entries) == ["tam"]
    assert warm.heads.entries["tam"][0] == tuple(
        warm.encode(ask_edited["messages"])[: len(warm.heads.entries["tam"][0])]
    )
    # Bounded: a third NPC pushes the least recently used out.
    for i, key in enumerate(("a", "b", "c")):
        run_all(
            warm, {0: [(10 + i, {**npc_prompt(tam, "Ingrid", "Hi"), "head": {"key": key, "messages": 0, "chars": 60}})]}
        )
    assert list(warm.heads.entries) == ["b", "c"]
    with pytest.raises(ValueError, match="head"):
        warm.add(20, {**ask_bo, "head": {"key": "tam", "messages": 99, "chars": 0}})


def test_a_prefill_takes_joiners_of_like_sizes_in_order_within_its_budget():
    from npc.dialogue.runner import prefill_take

    assert prefill_take([], 512) == []
    assert prefill_take([400, 1, 1, 380, 250], 2000) == [0, 3, 4]  # the 1-token rows wait for their own
    assert prefill_take([1, 400, 1, 2], 2000) == [0, 2, 3]
    assert prefill_take([300, 300, 300], 512) == [0]  # the budget
    assert prefill_take([900], 512) == [0]  # the first always goes, whatever its size


def test_candidates_joining_from_a_cached_prompt_are_not_padded_beside_a_fresh_one(runner):
    calls: list[list[int]] = []
    engine_prefill = runner.engine.prefill

    def spy(joiners, store):  # the real engine; records each prefill's new tokens per row
        calls.append([len(p) - n for p, n, _ in joiners])
        return engine_prefill(joiners, store)

    runner.engine.prefill = spy
    try:
        long = "You are Tam, the merchant of the market. You sell apples, maps and rope, and you know every rumour."
        three = {**ask("apples?", 8, candidates=3), "messages": [{"role": "system", "content": long}]}
        out = run_all(runner, {0: [(0, three)], 1: [(1, ask("a fresh prompt of its own", 8))]})
    finally:
        runner.engine.prefill = engine_prefill
    assert all(out[sid][-1][1] for sid in (0, 1))
    assert [1, 1] in calls and all(max(c) <= 2 * min(c) for c in calls), calls


def test_the_head_ends_where_the_first_word_about_the_player_is():
    from npc.dialogue import head
    from npc.files.schema import Persona

    tam = Persona(who="A merchant.", voice=("Fine apples!", "For you, {player}? A special price!"))
    spec = head.head("tam", "Old Tam", tam, 200)
    msgs = prompt.messages("Old Tam", tam, prompt.Scene(1, "10:00", "market", None, []), "Ingrid", [], [], "hi", 200)
    *whole, part = head.head_messages(msgs, spec)
    # The voice lines say "friend" for the player and the player is named in the moment, so the head
    # holds the voice, the example exchanges and the whole of the NPC's world message (its rules too),
    # up to the moment's first words.
    k = 1 + 2 * len(prompt.EXAMPLES)
    assert spec["messages"] == k + 1 and whole == msgs[: k + 1]
    assert '"For you, friend? A special price!"' in whole[0]["content"] and "A merchant." in whole[k]["content"]
    assert whole[k]["content"].endswith(prompt.rules_text("Old Tam", 200)) and "Ingrid" not in whole[k]["content"]
    assert part["content"] == "Now: " and msgs[k + 1]["content"].startswith("Now: morning")
    assert "Ingrid is talking to you." in msgs[k + 1]["content"]


def test_a_local_model_folder_serves_replies(tmp_path):
    """--dialogue-model may name a local Hugging Face model folder (here: the tiny model saved to disk)."""
    from npc.dialogue import model as models

    m, tok = models.tiny(seed=1)
    m.save_pretrained(tmp_path / "tiny-folder")
    tok.save_pretrained(tmp_path / "tiny-folder")
    r = DialogueRunner(model=str(tmp_path / "tiny-folder"), dtype="float32", max_new_tokens=8, max_prompt_tokens=200)
    out = run_all(r, {0: [(1, ask("hello", 8))]})[1]
    assert out[-1][1] and joined(out)
    with pytest.raises(FileNotFoundError, match="local Hugging Face model directory"):
        models.load(str(tmp_path / "no-such-model"))
