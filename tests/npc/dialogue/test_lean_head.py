"""The lean path's output head under int4 (lean.Head): an int4 pass over the vocabulary, then the
likeliest tokens' logits again from the bf16 weights, so what the sampler reads (its top_k, greedy's
argmax) is the model's own numbers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from npc.dialogue import lean


def test_the_likeliest_tokens_get_their_exact_logits_and_the_rest_stay_close():
    torch.manual_seed(0)
    w = (torch.randn(4096, 128) * 0.05).to(torch.bfloat16)
    head = lean.Head(w, lean.Dense(w, "int8"))
    assert head.q.quant == "int4"
    with torch.inference_mode():
        for rows in (1, 8, lean.QUANT_ROWS):
            x = torch.randn(rows, 128).to(torch.bfloat16)
            got, exact = head(x).float(), F.linear(x, w).float()
            approx = head.q(x).float()  # the int4 pass alone
            # Random weights give flat logits (a real model's are peaked: below), where tokens near rank TOP
            # swap places under int4's rounding: the first 16 are checked here.
            top = exact.topk(16, -1).indices
            torch.testing.assert_close(got.gather(1, top), exact.gather(1, top), rtol=1e-2, atol=1e-2)
            assert torch.equal(got.argmax(-1), exact.argmax(-1))
            # Without the second pass the same tokens are off by the int4 rounding: the test can fail.
            assert (approx.gather(1, top) - exact.gather(1, top)).abs().max() > 5e-2
            assert F.cosine_similarity(got, exact).min() > 0.95
        x = torch.randn(lean.QUANT_ROWS + 1, 128).to(torch.bfloat16)
        assert torch.equal(head(x), F.linear(x, w))  # more rows (a prefill's): the bf16 weights, one matmul


def test_a_head_that_int4_cannot_pack_is_the_exact_one():
    w = torch.randn(259, 64).to(torch.bfloat16)  # the tiny model's vocabulary: not a multiple of 16
    head = lean.Head(w, lean.Dense(w, "int8"))
    assert head.q.quant == "int8"
    x = torch.randn(2, 64).to(torch.bfloat16)
    with torch.inference_mode():
        assert torch.equal(head(x), head.exact(x))


@pytest.mark.timeout(600)  # loading the GGUF (once per session, conftest) on a busy 2-core machine
def test_on_the_default_model_every_token_a_sampler_may_draw_has_its_exact_logit(default_model, default_bf16):
    tok = default_model[1]
    e = lean.LeanEngine(default_bf16, columns=128, pad_id=0)  # bf16, int4 layers on CPU: the worker's default
    head = e.model.top
    # Its quick pass: the C++ kernels' q4_1q8 where the layers run on them (lean: KERNELS), else int4,
    # or fbgemm's int8 kernel where the model computes in float32 (lean: COMPUTE).
    if e.model.quant in lean.BLOCKS:
        quick = "q4_1q8"
    else:
        quick = lean.HEAD_F32 if e.model.dtype == torch.float32 and lean.fbgemm() else "int4"
    assert isinstance(head, lean.Head) and head.q.quant == quick
    seen: list[torch.Tensor] = []
    e.model.top = lambda x: seen.append(x.clone()) or head(x)
    ids = tok.apply_chat_template(
        [{"role": "system", "content": "You are Tam, a merchant."}, {"role": "user", "content": "Hello! Any news?"}],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=False,
    )
    ids = list(ids["input_ids"] if isinstance(ids, dict) else ids)
    with torch.inference_mode():
        t = e.prefill([(ids, 0, None)], lambda p, kv: None).argmax(-1)
        for _ in range(12):
            t = e.decode(t).argmax(-1)
        for x in seen:
            got, exact = head(x).float(), F.linear(x, head.w).float()
            top = exact.topk(40, -1).indices  # the runner's top_k
            torch.testing.assert_close(got.gather(1, top), exact.gather(1, top), rtol=1e-2, atol=1e-2)
            assert torch.equal(got.argmax(-1), exact.argmax(-1))
    assert len(seen) == 13


@pytest.mark.parametrize("top_k", [0, lean.TOP + 1])
def test_a_top_k_the_int4_head_does_not_compute_exactly_is_refused(top_k):
    from npc.dialogue.runner import DialogueRunner

    with pytest.raises(ValueError, match=f"top_k must be 1..{lean.TOP}"):
        DialogueRunner(model="tiny", top_k=top_k)
