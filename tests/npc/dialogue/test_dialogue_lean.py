"""The lean decode path (npc/dialogue/lean.py) against transformers' own
forward: the same logits and the same greedy tokens, on a tiny random Llama
built from a config and, in one test, on the real default model; the runner
gives the same replies on either engine, through joins, leaves and cached
prefixes; the engine choice.
"""

from __future__ import annotations

import copy

import pytest
import torch

from npc.dialogue import kernels, lean
from npc.dialogue.model import tiny
from npc.dialogue.runner import DialogueRunner, make_engine

from support.dialoguehelp import ask, joined, run_all


def reference(hf, ids: list[int]) -> torch.Tensor:
    """transformers' logits for the last token of `ids`, computed whole (no cache)."""
    with torch.inference_mode():
        return hf(input_ids=torch.tensor([ids])).logits[0, -1].float()


def greedy(hf, ids: list[int], n: int) -> list[int]:
    out = list(ids)
    for _ in range(n):
        out.append(int(reference(hf, out).argmax()))
    return out[len(ids) :]


def engine_greedy(e: lean.LeanEngine, prompts: list[list[int]], n: int, kv=None) -> tuple[torch.Tensor, list]:
    """Prefill the prompts as one batch, then n greedy decode steps for all: (first logits, tokens per row)."""
    stored = {}
    with torch.inference_mode():
        logits = e.prefill([(p, 0, None) for p in prompts], lambda p, layers: stored.setdefault(tuple(p), layers))
        first = logits.float().clone()
        tokens = logits.argmax(-1)
        out = [[int(t)] for t in tokens]
        for _ in range(n - 1):
            tokens = e.decode(tokens).argmax(-1)
            for row, t in zip(out, tokens):
                row.append(int(t))
    e.keep([])
    return first, out


@pytest.fixture(scope="module")
def tiny_llama():
    return tiny(seed=3, layers=3, hidden=64)[0]


def test_lean_logits_and_greedy_tokens_match_transformers_on_a_tiny_llama(tiny_llama):
    e = lean.LeanEngine(tiny_llama, columns=128, pad_id=0, quant="none")
    prompts = [[5, 9, 200, 17, 33, 8], [44] * 3, list(range(60, 100))]  # different lengths: padded prefill
    first, out = engine_greedy(e, prompts, 12)
    for i, p in enumerate(prompts):
        torch.testing.assert_close(first[i], reference(tiny_llama, p), rtol=1e-4, atol=1e-4)
        assert out[i] == greedy(tiny_llama, p, 12)
    # More rows than the slab had: it grows, and the answers stay the same.
    rows = e.model.rows
    first2, out2 = engine_greedy(e, prompts * 3, 12)
    assert e.model.rows > rows and out2 == out * 3


def test_lean_rows_leave_and_join_and_cached_prefixes_keep_the_numbers(tiny_llama):
    e = lean.LeanEngine(tiny_llama, columns=128, pad_id=0, quant="none")
    a, b, c = [3, 4, 5, 6, 7, 8, 9], [100, 101], [50, 60, 70, 80]
    stored: dict = {}
    keep = lambda p, layers: stored.setdefault(tuple(p), [(k.clone(), v.clone()) for k, v in layers])
    with torch.inference_mode():
        ta = e.prefill([(a, 0, None), (b, 0, None)], keep).argmax(-1)
        ta = e.decode(ta).argmax(-1)  # both rows: one step
        e.keep([1])  # a leaves; b moves up to row 0
        # c joins, from the stored prefix of a (its first 3 tokens shared)
        prefix = [(k[:, :, :3], v[:, :, :3]) for k, v in stored[tuple(a)]]
        c2 = a[:3] + c
        logits = e.prefill([(c2, 3, prefix)], keep)
        torch.testing.assert_close(logits[0].float(), reference(tiny_llama, c2), rtol=1e-4, atol=1e-4)
        last = torch.cat([ta[1:], logits.argmax(-1)])
        logits = e.decode(last)
    b_so_far = b + greedy(tiny_llama, b, 2)
    torch.testing.assert_close(logits[0].float(), reference(tiny_llama, b_so_far), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(logits[1].float(), reference(tiny_llama, c2 + [int(last[1])]), rtol=1e-4, atol=1e-4)


def test_a_row_joining_from_a_long_prefix_beside_a_fresh_prompt_fits_the_slab(tiny_llama):
    """Only real tokens need columns: a row joining from a cached prefix (39 tokens cached, 1 new)
    prefilled beside a fresh 40-token prompt is padded to positions 39 .. 78 of a 64-column
    slab (s12f's "a row of 1079 tokens is past the slab's 1072 columns"); the numbers stay right.
    A real row that does not fit is refused, with the sizes."""
    e = lean.LeanEngine(tiny_llama, columns=64, pad_id=0, quant="none")
    a, b = list(range(10, 50)), list(range(100, 140))
    stored: dict = {}
    keep = lambda p, layers: stored.setdefault(tuple(p), [(k.clone(), v.clone()) for k, v in layers])
    with torch.inference_mode():
        e.prefill([(a, 0, None)], keep)
        prefix = [(k[:, :, :39], v[:, :, :39]) for k, v in stored[tuple(a)]]
        logits = e.prefill([(a, 39, prefix), (b, 0, None)], keep)
        for i, p in enumerate([a, b]):
            torch.testing.assert_close(logits[i].float(), reference(tiny_llama, p), rtol=1e-4, atol=1e-4)
        step = e.decode(torch.cat([logits.argmax(-1)[:1], logits.argmax(-1)]))
        torch.testing.assert_close(step[2].float(), reference(tiny_llama, b + [int(logits[1].argmax())]))
        e.keep([])
        with pytest.raises(ValueError, match="a row of 65 tokens is past the slab's 64 columns"):
            e.prefill([(list(range(65)), 0, None)], keep)


def test_many_requests_of_three_candidates_with_long_prompts_all_end_as_on_transformers():
    """s12f's load scaled down: requests of 3 candidates joining at once with prompts of most of
    a row, so that the siblings (joining from a cached prefix) are prefilled beside the next fresh
    prompts. It raised inside a step (every stream failed); now every reply ends, as on transformers."""
    kw = dict(model="tiny", max_new_tokens=8, max_prompt_tokens=120, seed=7)
    line = lambda sid: f"{sid} " + "tell me about the village, the market and the well; " * 2
    plan = {0: [(sid, ask(line(sid), 8, candidates=3)) for sid in range(8)]}
    leaned, plain = DialogueRunner(**kw), DialogueRunner(**kw, engine="transformers")
    assert 100 < len(leaned.encode(plan[0][0][1]["messages"])) <= 120
    a, b = run_all(leaned, plan), run_all(plain, plan)
    assert sorted(a) == list(range(8)) and all(pieces[-1][1] for pieces in a.values())

    def texts(out: dict) -> dict:  # (sid, candidate) -> its text (the order of pieces follows the clock)
        said: dict = {}
        for sid, pieces in out.items():
            for p, _, _ in pieces:
                said[sid, p["n"]] = said.get((sid, p["n"]), "") + p["text"]
        return said

    assert texts(a) == texts(b) and len(texts(a)) == 24
    assert leaned.engine.running == 0


def test_a_choose_that_cannot_fit_a_row_is_refused_alone():
    """Its prompt and its longest option pass the row: refused when it is added (an error inside a
    step would fail every stream); the reply beside it goes on."""
    r = DialogueRunner(model="tiny", max_new_tokens=4, max_prompt_tokens=60, seed=7)
    r.add(1, ask("hello", 4))
    long = {"kind": "choose", "messages": ask("x" * 40)["messages"], "options": ["wait", "follow " * 3]}
    with pytest.raises(ValueError, match="choose: a prompt of .* tokens and an option of 21 pass the 64 tokens"):
        r.add(2, long)
    out = run_all(r, {})
    assert out[1][-1][1] and not r.choosing


@pytest.mark.parametrize("quant", ["int8", "int4"])
def test_quantized_weights_stay_close_to_the_bf16_logits(quant):
    hf = tiny(seed=3, layers=3, hidden=64)[0].to(torch.bfloat16)
    prompt = list(range(20, 60))
    full = lean.LeanEngine(hf, columns=64, pad_id=0, quant="none")
    q = lean.LeanEngine(hf, columns=64, pad_id=0, quant=quant)
    assert q.model.quant == quant and full.model.quant == "none"
    assert q.model.layers[0][1].quant == quant and q.model.head.quant == "int8"
    f, _ = engine_greedy(full, [prompt], 1)
    g, _ = engine_greedy(q, [prompt], 1)
    # Random weights are on no grid: int4 rounds them (the default model's are on one, Q4_1: below).
    assert torch.nn.functional.cosine_similarity(f, g).item() > (0.99 if quant == "int8" else 0.95)


def test_int4_gives_back_weights_that_were_on_a_4_bit_grid():
    """Weights as a Q4_1 file holds them (groups of 32, d * q + m) come back through the int4
    kernel as they were, up to bf16 rounding: what "int4" does to the default model's layers."""
    torch.manual_seed(0)
    d, m = torch.rand(96, 8, 1) * 0.02 + 0.001, torch.randn(96, 8, 1) * 0.05
    q = torch.randint(0, 16, (96, 8, 32)).float()
    q[:, :, 0], q[:, :, 1] = 0, 15  # every group spans its grid, as Q4_1's min/max quantization makes it
    w = (d * q + m).reshape(96, 256).to(torch.bfloat16)
    dense = lean.Dense(w, "int4")
    x = torch.randn(3, 256).to(torch.bfloat16)
    exact = x.float() @ w.float().T
    torch.testing.assert_close(dense(x).float(), exact, rtol=2e-2, atol=2e-2 * exact.abs().max().item())
    rows = lean.QUANT_ROWS + 1  # past QUANT_ROWS: the bf16 weight
    assert dense(torch.randn(rows, 256).to(torch.bfloat16)).shape == (rows, 96)


def test_a_bf16_model_computes_in_float32_on_a_cpu_without_bf16_arithmetic():
    """COMPUTE: on a CPU without bf16 arithmetic (AVX2 only) the activations, the slab and the
    weights prefill reads are float32 copies of the bf16 weights (exact), so the logits are the bf16
    model's numbers computed in float32; with it, the lean path stays in bf16."""
    hf = tiny(seed=3, layers=3, hidden=64)[0].to(torch.bfloat16)
    e = lean.LeanEngine(hf, columns=64, pad_id=0, quant="none")
    fast_bf16 = lean.bf16_arithmetic(torch.device("cpu"))
    want = torch.bfloat16 if fast_bf16 else torch.float32
    assert e.model.dtype == want and e.model.kv.dtype == want and e.model.layers[0][1].w.dtype == want
    prompt = list(range(20, 60))
    first, _ = engine_greedy(e, [prompt], 1)
    f32 = lean.LeanEngine(copy.deepcopy(hf).float(), columns=64, pad_id=0, quant="none")  # the same numbers, float32
    ref, _ = engine_greedy(f32, [prompt], 1)
    if fast_bf16:
        assert torch.nn.functional.cosine_similarity(first, ref).item() > 0.99
    else:
        torch.testing.assert_close(first, ref, rtol=1e-5, atol=1e-5)


def test_q8dyn_quantizes_decode_steps_only():
    """q8dyn (fbgemm's int8 kernel, one input scale a call) runs for one token a row; a prefill's
    rows use the float32 weights (its first tokens' outsized activations would flatten the rest)."""
    if not lean.fbgemm():
        pytest.skip("torch has no fbgemm kernels here")
    torch.manual_seed(0)
    w = torch.randn(96, 256) * 0.05
    dense = lean.Dense(w, "q8dyn", rows=lean.MAX_ROWS)
    assert dense.quant == "q8dyn"
    with torch.inference_mode():
        x = torch.randn(lean.MAX_ROWS, 256)
        exact = torch.nn.functional.linear(x, w)
        got = dense(x)
        assert not torch.equal(got, exact)  # quantized: the test can tell
        torch.testing.assert_close(got, exact, rtol=0.05, atol=0.05 * exact.abs().max().item())
        assert torch.equal(dense(x, step=False), exact)  # a prefill's rows: the float32 weights
        more = torch.randn(lean.MAX_ROWS + 1, 256)
        assert torch.equal(dense(more), torch.nn.functional.linear(more, w))  # past its rows: float32


def test_quant_names_are_checked():
    with pytest.raises(ValueError, match="expected auto, none, int8, int4"):
        lean.LeanEngine(tiny()[0].to(torch.bfloat16), columns=16, pad_id=0, quant="int3")


def run(r: DialogueRunner) -> dict:
    """Replies that join, leave early, share a prefix and ask for an action choice."""
    sys_line = "You are Tam, the merchant of the market. You sell apples, maps and rope."
    msg = lambda line, n: {
        **ask(line, n),
        "messages": [{"role": "system", "content": sys_line}, {"role": "user", "content": line}],
    }
    out = run_all(
        r,
        {
            0: [(1, msg("tell me about the village", 14))],
            2: [(2, msg("apples?", 5))],
            4: [(3, ask("hi", 16)), (4, msg("rope?", 9))],
        },
    )
    texts = {sid: joined(p) for sid, p in out.items()}
    texts["choice"] = r.choose([{"role": "user", "content": "follow me"}], ["follow", "wait here", "go to market"])
    return texts


def test_the_runner_gives_the_same_replies_on_either_engine():
    leaned = DialogueRunner(model="tiny", max_new_tokens=24, max_prompt_tokens=300, seed=7)
    plain = DialogueRunner(model="tiny", max_new_tokens=24, max_prompt_tokens=300, seed=7, engine="transformers")
    assert (leaned.engine_name, plain.engine_name) == ("lean", "transformers")
    a, b = run(leaned), run(plain)
    assert a["choice"]["choice"] == b["choice"]["choice"]
    assert a["choice"]["scores"] == pytest.approx(b["choice"]["scores"], abs=1e-4)
    assert {k: v for k, v in a.items() if k != "choice"} == {k: v for k, v in b.items() if k != "choice"}
    assert leaned.prefixes.hits >= 1 and leaned.engine.running == 0


def test_a_cancel_after_the_slab_grew_moves_rows_and_the_others_go_on():
    """Cancel comes from the worker outside any step (no inference mode), and a slab grown during a
    prefill is an inference tensor: moving rows up must still work."""
    r = DialogueRunner(model="tiny", max_new_tokens=12, max_prompt_tokens=200, seed=7)
    rows = r.engine.model.rows
    out = run_all(r, {0: [(sid, ask(f"line {sid}", 12)) for sid in range(rows + 2)]}, cancel={3: 0})
    assert r.engine.model.rows > rows and r.engine.running == 0
    assert 0 not in out or not out[0][-1][1]  # the cancelled reply never ended
    assert all(out[sid][-1][1] for sid in range(1, rows + 2))  # every other one did


def test_the_engine_is_lean_for_llama_and_transformers_otherwise():
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=300)).eval()
    assert make_engine("auto", gpt2, 64, 0)[0] == "transformers"
    with pytest.raises(ValueError, match="model type 'gpt2'"):
        make_engine("lean", gpt2, 64, 0)
    with pytest.raises(ValueError, match="expected one of auto, lean, transformers"):
        make_engine("fast", gpt2, 64, 0)
    assert make_engine("auto", tiny()[0], 64, 0)[0] == "lean"


@pytest.fixture(scope="module")
def default_reference(default_model):
    """SmolLM2-135M-Instruct in float32 (conftest's `default_model`: loaded once per session), a chat
    prompt, and transformers' own greedy reply to it (generate: 8 tokens, with the first token's logits)."""
    hf, tok = default_model
    ids = tok.apply_chat_template(
        [
            {"role": "system", "content": "You are Tam, a merchant."},
            {"role": "user", "content": "Hello! What do you sell?"},
        ],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=False,
    )
    ids = list(ids["input_ids"] if isinstance(ids, dict) else ids)
    with torch.inference_mode():
        ref = hf.generate(
            torch.tensor([ids]),
            max_new_tokens=8,
            min_new_tokens=8,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
        )
    return hf, ids, ref.logits[0][0].float(), ref.sequences[0, len(ids) :].tolist()


@pytest.mark.timeout(600)  # loading the GGUF into float32 takes most of it; slow on a busy 2-core machine
def test_lean_matches_transformers_on_the_default_model(default_reference, default_bf16):
    """SmolLM2-135M-Instruct, both in float32 so that the numbers can agree closely."""
    hf, ids, ref_first, want = default_reference
    e = lean.LeanEngine(hf, columns=len(ids) + 16, pad_id=0, quant="none")
    first, out = engine_greedy(e, [ids], 4)
    torch.testing.assert_close(first[0], ref_first, rtol=1e-3, atol=2e-3)
    assert out[0] == want[:4]
    # The default on CPU: bf16 with int4 layers (the GGUF's own Q4_1 grid) and an int8 head. The
    # documented tolerance: the same greedy tokens as transformers in float32 for 8 steps (measured
    # on this prompt: 14 of 16, as int8; bf16 without quantization: 16 of 16).
    e = lean.LeanEngine(default_bf16, columns=len(ids) + 16, pad_id=0, quant="int4")
    assert e.model.quant == "int4"
    _, out = engine_greedy(e, [ids], 8)
    assert out[0] == want


@pytest.mark.timeout(600)
@pytest.mark.parametrize("quant", ["int4", "none", "q4_1"])
def test_three_candidates_of_one_prompt_match_transformers_on_the_default_model(default_reference, default_bf16, quant):
    """What the runner does for a request of 3 candidates: the prompt is prefilled whole into row
    0, the other two join from its stored prefix (only its last token computed), and the 3 rows
    decode as one batch, rows of one length. Greedy, each row must give transformers' tokens (the
    tolerance above: 8 steps). With int4 the 2-row sibling prefill and every decode step run the
    quantized matmuls on more than one row (the case s12e's cuts broke: a non-contiguous input). q4_1:
    the C++ kernels (lean.KERNELS), the default where a bf16 model computes in float32."""
    hf, ids, _, want = default_reference
    if quant in lean.BLOCKS and not kernels.available():
        pytest.skip(f"the C++ kernels: {kernels.why_not()}")
    e = lean.LeanEngine(default_bf16, columns=len(ids) + 16, pad_id=0, quant=quant)
    assert e.model.quant == quant
    stored: dict = {}
    keep = lambda p, layers: stored.setdefault(tuple(p), [(k.clone(), v.clone()) for k, v in layers])
    n = len(ids) - 1  # the prefix cache always leaves the last token to compute
    with torch.inference_mode():
        row0 = e.prefill([(ids, 0, None)], keep)
        prefix = [(k[:, :, :n], v[:, :, :n]) for k, v in stored[tuple(ids)]]
        rows12 = e.prefill([(ids, n, prefix), (ids, n, prefix)], keep)
        tokens = torch.cat([row0, rows12]).argmax(-1)
        out = [[int(t)] for t in tokens]
        for _ in range(len(want) - 1):
            tokens = e.decode(tokens).argmax(-1)
            for row, t in zip(out, tokens):
                row.append(int(t))
    assert out == [want] * 3


def test_a_burst_of_joiners_never_grows_the_slab_past_its_bound():
    """Session 14: the slab doubled without end on a burst. With the bound at 6 rows, 20 requests
    of 2 candidates at once (40 rows wanted) run at most 6 at a time; the others wait in the queue,
    and every reply still ends with the tokens transformers gives."""
    kw = dict(model="tiny", max_new_tokens=6, max_prompt_tokens=60, seed=5)
    plan = {0: [(sid, ask(f"{sid} hello there", 6, candidates=2)) for sid in range(20)]}
    leaned = DialogueRunner(**kw)
    leaned.engine.max_rows = 6
    most = 0
    step = leaned.step

    def counted():
        nonlocal most
        out = step()
        most = max(most, leaned.engine.model.rows, len(leaned.rows))
        return out

    leaned.step = counted
    a = run_all(leaned, plan)
    b = run_all(DialogueRunner(**kw, engine="transformers"), plan)
    assert most <= 6 and leaned.engine.model.rows == 6
    assert sorted(a) == list(range(20)) and all(pieces[-1][1] for pieces in a.values())
    texts = lambda out: {
        (s, p["n"]): "".join(q["text"] for q, _, _ in ps if q["n"] == p["n"]) for s, ps in out.items() for p, _, _ in ps
    }
    assert texts(a) == texts(b)
    with pytest.raises(ValueError, match="7 rows asked for, the slab holds at most 6"):
        leaned.engine.model.grow(7, 0, 0, cap=6)
