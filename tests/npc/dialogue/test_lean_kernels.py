"""The C++ kernels of the lean path (npc/dialogue/kernels/): the block-quantized matmuls against a
float reference on random shapes, the packing against weights already on the grid, the lean engine
on them against transformers (tiny model), and the fallback when the kernels are not built.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from npc.dialogue import kernels, lean
from npc.dialogue.model import tiny

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def ops():
    """torch.ops.npc_quant, built here if scripts/setup has not (about a minute)."""
    if not kernels.cpu_ok():
        pytest.skip("this CPU lacks AVX2")
    kernels.build()
    assert kernels.available(), kernels.why_not()
    return torch.ops.npc_quant


SHAPES = [(48, 64, 1), (960, 576, 1), (3072, 576, 8), (576, 1536, 5), (130, 96, 16), (33, 32, 3)]


@pytest.mark.parametrize("N,K,M", SHAPES)
def test_q4_1_and_q8_0_products_are_the_float_products_of_what_they_hold(ops, N, K, M):
    """y = (x as its int8 blocks) @ (w as its blocks).T, up to float32 summation order; and near x @ w.T."""
    torch.manual_seed(N * K + M)
    w, x = torch.randn(N, K) * 0.05, torch.randn(M, K)
    x[0, :32] *= 40  # one block of outsized inputs (a prompt's first token): its own scale
    xq = ops.q8_input(x)
    assert xq.shape == x.shape and not torch.equal(xq, x)
    torch.testing.assert_close(xq, x, rtol=0, atol=x.abs().max().item() / 127)
    for got, held, tol in (
        (ops.q4_1_mm(x, *kernels.pack_q4_1(w)), kernels.unpack_q4_1(*kernels.pack_q4_1(w)), 0.2),
        (ops.q8_0_mm(x, *kernels.pack_q8_0(w)), kernels.unpack_q8_0(*kernels.pack_q8_0(w)), 0.02),
    ):
        ref = xq.double() @ held.double().T
        assert got.shape == (M, N) and got.dtype == torch.float32
        torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())
        exact = x @ w.T
        assert (got - exact).abs().max().item() < tol * exact.abs().max().item()
    # q4_1 by float32 inputs (no input quantization): x @ (w as its blocks).T
    pack = kernels.pack_q4_1(w)
    ref = x.double() @ kernels.unpack_q4_1(*pack).double().T
    got = ops.q4_1_f32(x, *pack)
    assert got.shape == (M, N) and not torch.equal(got, ops.q4_1_mm(x, *pack))
    torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())


def test_weights_on_the_grid_come_back_as_they_were():
    """Weights as a Q4_1 (Q8_0) file holds them pack to the same numbers (d and m in float16, as there)."""
    torch.manual_seed(0)
    d = (torch.rand(40, 4, 1) * 0.02 + 0.001).half().float()
    m = (torch.randn(40, 4, 1) * 0.05).half().float()
    q = torch.randint(0, 16, (40, 4, 32)).float()
    q[:, :, 0], q[:, :, 1] = 0, 15  # every block spans its grid (min/max quantization)
    w = (d * q + m).reshape(40, 128)
    torch.testing.assert_close(kernels.unpack_q4_1(*kernels.pack_q4_1(w)), w, rtol=0, atol=1e-6)
    q8 = torch.randint(-127, 128, (40, 4, 32)).float()
    q8[:, :, 0] = 127
    w8 = (d * q8).reshape(40, 128)
    torch.testing.assert_close(kernels.unpack_q8_0(*kernels.pack_q8_0(w8)), w8, rtol=0, atol=1e-6)


def test_the_kernels_refuse_what_does_not_fit(ops):
    qs, d, m = kernels.pack_q4_1(torch.randn(16, 64))
    with pytest.raises(RuntimeError, match="not a multiple of 32"):
        ops.q4_1_mm(torch.randn(2, 48), qs, d, m)
    with pytest.raises(RuntimeError, match="do not fit inputs of K = 96"):
        ops.q4_1_mm(torch.randn(2, 96), qs, d, m)
    with pytest.raises(RuntimeError, match="float32"):
        ops.q4_1_mm(torch.randn(2, 64).double(), qs, d, m)


@pytest.mark.parametrize("quant", ["q4_1", "q4_1q8", "q8_0"])
def test_the_lean_engine_on_the_kernels_stays_close_to_its_float_logits(ops, quant):
    hf = tiny(seed=3, layers=3, hidden=64)[0].to(torch.bfloat16)
    prompts = [list(range(20, 60)), [5, 9, 200]]
    full = lean.LeanEngine(hf, columns=64, pad_id=0, quant="none")
    q = lean.LeanEngine(hf, columns=64, pad_id=0, quant=quant)
    assert q.model.quant == quant and q.model.layers[0][1].quant == quant
    assert q.model.head.quant == "q8_0"
    with torch.inference_mode():
        store = lambda p, layers: None  # noqa: E731
        f = full.prefill([(p, 0, None) for p in prompts], store).float()
        g = q.prefill([(p, 0, None) for p in prompts], store).float()
        tokens = f.argmax(-1)
        fd, gd = full.decode(tokens).float(), q.decode(tokens).float()  # 2 rows: through the kernels
    assert not torch.equal(fd, gd)  # quantized: the test can tell
    for a, b in ((f, g), (fd, gd)):
        assert torch.nn.functional.cosine_similarity(a, b).min().item() > (0.99 if quant == "q8_0" else 0.95)


def test_without_the_built_kernels_the_lean_path_keeps_torch_kernels_and_says_so(tmp_path):
    """A fresh process whose kernel folder is empty: quant q4_1 (and auto) run as BLOCKS_FALLBACK, unfused,
    with one warning that says how to build them."""
    code = (
        "import logging, torch\n"
        "logging.basicConfig(level=logging.WARNING, format='%(message)s')\n"
        "from npc.dialogue import kernels, lean\n"
        "from npc.dialogue.model import tiny\n"
        "assert not kernels.available()\n"
        "hf = tiny(seed=3, layers=2, hidden=64)[0].to(torch.bfloat16)\n"
        "e = lean.LeanEngine(hf, columns=32, pad_id=0, quant='q4_1')\n"
        "lean.LeanEngine(hf, columns=32, pad_id=0, quant='q8_0')\n"
        "a = lean.LeanEngine(hf, columns=32, pad_id=0, quant='auto')\n"
        "print('quant', e.model.quant, e.model.layers[0][1].quant, a.model.quant, e.model.fused)\n"
    )
    env = {**os.environ, "NPC_KERNELS_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert f"quant {lean.BLOCKS_FALLBACK} {lean.BLOCKS_FALLBACK} int4 False" in out.stdout  # auto: int4 too
    said = [line for line in out.stderr.splitlines() if "needs the C++ kernels" in line]
    assert len(said) == 1 and "is not built" in said[0] and "python -m npc.dialogue.kernels" in said[0]


def used_slab(m: lean.LeanLlama) -> torch.Tensor:
    """The slab but its dump column: a padded prefill's rows write their padding there at once, in any
    order on 2 threads (index_put_), and nothing reads it."""
    return torch.cat([m.keys[..., : m.dump].flatten(), m.values[:, :, :, : m.dump].flatten()])


def test_a_fused_decode_step_gives_the_torch_steps_numbers(ops):
    """FUSED (RMSNorm, RoPE + slab write + attention, silu * up in C++) against the same engine's torch
    ops, float32, no quantization: rows of different lengths (each attends its own columns), 6 steps,
    the same logits and the same slab."""
    hf = tiny(seed=4, layers=3, hidden=64)[0]
    prompts = [list(range(30, 70)), [7, 8, 9], list(range(100, 117))]
    engines = [lean.LeanEngine(hf, columns=80, pad_id=0, quant="none") for _ in range(2)]
    assert engines[0].model.fused
    engines[1].model.fused = False
    calls = 0
    fused_step = engines[0].model._fused_step

    def counted(*a):
        nonlocal calls
        calls += 1
        return fused_step(*a)

    engines[0].model._fused_step = counted  # type: ignore[method-assign]
    out = []
    with torch.inference_mode():
        for e in engines:
            logits = [e.prefill([(p, 0, None) for p in prompts], lambda p, layers: None).float()]
            for _ in range(6):
                logits.append(e.decode(logits[-1].argmax(-1)).float())
            out.append((torch.stack(logits), used_slab(e.model)))
    assert calls == 6
    torch.testing.assert_close(out[0][0], out[1][0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out[0][1], out[1][1], rtol=1e-5, atol=1e-5)


class Counted:
    """A Step whose calls are counted (a ScriptObject's methods cannot be patched)."""

    def __init__(self, step):
        self.step, self.calls = step, 0

    def forward(self, *args):
        self.calls += 1
        return self.step.forward(*args)


def steps(hf, quant: str, path: str, prompts: list[list[int]], n: int, columns: int) -> tuple[torch.Tensor, ...]:
    """Prefill `prompts`, then n greedy decode steps on `path`: "step" (STEP: one call a step, on TEAM; "omp":
    on OpenMP), "layers"
    (FUSED: per-layer ops) or "torch" (torch's ops around the kernels' matmuls): (logits, slab, Step calls)."""
    e = lean.LeanEngine(hf, columns=columns, pad_id=0, quant=quant)
    assert e.model.whole is not None and e.model.quant == quant
    counted = Counted(e.model.whole)
    e.model.whole = counted if path in ("step", "omp") else None
    counted.step.set_team(path != "omp")  # TEAM's threads, or torch's OpenMP (at::parallel_for)
    e.model.fused = path != "torch"
    with torch.inference_mode():
        logits = [e.prefill([(p, 0, None) for p in prompts], lambda p, layers: None).float()]
        tokens = logits[-1].argmax(-1)
        for _ in range(n):
            logits.append(e.decode(tokens).float())
            tokens = logits[-1].argmax(-1)
    return torch.stack(logits), used_slab(e.model), torch.tensor(counted.calls)


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def threads(request):
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.mark.parametrize("quant", ["q4_1", "q4_1q8", "q8_0"])
def test_the_whole_step_gives_the_per_layer_numbers_and_the_torch_paths(ops, threads, quant):
    """STEP (every layer in one C++ call, on TEAM's threads or OpenMP's) against FUSED (the same kernels, one
    op at a time: the same numbers, bit for bit) and the torch path (torch's RMSNorm, RoPE, attention and silu around the same
    matmuls: close), tiny model, rows of different lengths, 6 steps: logits and slab."""
    hf = tiny(seed=4, layers=3, hidden=64)[0]
    prompts = [list(range(30, 70)), [7, 8, 9], list(range(100, 117))]
    step, slab, calls = steps(hf, quant, "step", prompts, 6, 80)
    assert calls == 6
    layers, layers_slab, _ = steps(hf, quant, "layers", prompts, 6, 80)
    assert torch.equal(step, layers) and torch.equal(slab, layers_slab)
    omp, omp_slab, _ = steps(hf, quant, "omp", prompts, 6, 80)
    assert torch.equal(step, omp) and torch.equal(slab, omp_slab)
    plain, plain_slab, _ = steps(hf, quant, "torch", prompts, 6, 80)
    assert not torch.equal(step, plain)  # other ops: the test can tell the paths apart
    # Int8 inputs (q4_1q8, q8_0): an input a rounding apart in torch's RMSNorm may land in the next int8 step.
    tol = 1e-4 if quant == "q4_1" else 5e-3
    torch.testing.assert_close(step, plain, rtol=tol, atol=tol)
    torch.testing.assert_close(slab, plain_slab, rtol=tol, atol=tol)


def first_layers(hf, n: int):
    """A view of a transformers Llama with only its first n layers (what LeanLlama reads), sharing its weights."""
    from types import SimpleNamespace

    config = copy.copy(hf.config)
    config.num_hidden_layers = n
    model = SimpleNamespace(layers=hf.model.layers[:n], norm=hf.model.norm, rotary_emb=hf.model.rotary_emb)
    return SimpleNamespace(
        config=config,
        model=model,
        get_input_embeddings=hf.get_input_embeddings,
        get_output_embeddings=hf.get_output_embeddings,
    )


@pytest.mark.timeout(600)  # the default model's load, when no test before has loaded it
def test_the_whole_step_on_the_default_models_first_layers(ops, threads, default_bf16):
    """STEP on SmolLM2-135M's first 4 layers (its real shapes: 9 heads on 3 kv heads, 576 -> 1536) and the
    head: bit for bit the per-layer path, close to the torch path, at 1 row and at 3 rows."""
    if lean.compute_dtype(torch.bfloat16, torch.device("cpu")) != torch.float32:
        pytest.skip("this CPU computes a bf16 model in bf16: no FUSED path (lean.COMPUTE)")
    hf = first_layers(default_bf16, 4)
    for prompts in ([list(range(1000, 1090))], [list(range(1000, 1090)), [1, 2, 3, 4], list(range(500, 540))]):
        step, slab, calls = steps(hf, "q4_1", "step", prompts, 3, 100)
        layers, layers_slab, _ = steps(hf, "q4_1", "layers", prompts, 3, 100)
        plain, plain_slab, _ = steps(hf, "q4_1", "torch", prompts, 3, 100)
        assert calls == 3 and torch.equal(step, layers) and torch.equal(slab, layers_slab)
        torch.testing.assert_close(step, plain, rtol=1e-3, atol=1e-3)
        torch.testing.assert_close(slab, plain_slab, rtol=1e-4, atol=1e-4)


def test_the_whole_step_refuses_what_does_not_fit(ops):
    hf = tiny(seed=4, layers=2, hidden=64)[0]
    m = lean.LeanEngine(hf, columns=32, pad_id=0, quant="q4_1").model
    Step = torch.classes.npc_quant.Step
    weights = [t for ln1, qkv, o, ln2, gu, down in m.layers for t in (ln1, *qkv.q, *o.q, ln2, *gu.q, *down.q)]
    with pytest.raises(RuntimeError, match="quant must be q4_1, q4_1q8 or q8_0, got int4"):
        Step("int4", [*weights, m.norm], 4, 2, 16, 1e-5)
    with pytest.raises(RuntimeError, match="27 weights: expected 14 a layer"):
        Step("q4_1", weights[:-2] + [m.norm], 4, 2, 16, 1e-5)
    with pytest.raises(RuntimeError, match="qkv weights .* do not fit"):
        Step("q4_1", [*weights, m.norm], 4, 1, 16, 1e-5)  # 1 kv head: qkv would be 96 rows, not 128
    with pytest.raises(RuntimeError, match="final norm .* expected \\(64,\\) float32"):
        Step("q4_1", [*weights, m.norm.double()], 4, 2, 16, 1e-5)
    step = Step("q4_1", [*weights, m.norm], 4, 2, 16, 1e-5)
    pos = torch.tensor([3])
    with pytest.raises(RuntimeError, match="x \\[1, 32\\] Float: expected \\(rows, 64\\)"):
        step.forward(torch.zeros(1, 32), m.kv, 0, pos, m.cos, m.sin)
    with pytest.raises(RuntimeError, match="does not fit 2 layers"):
        step.forward(torch.zeros(1, 64), m.kv[:1], 0, pos, m.cos, m.sin)
    with pytest.raises(RuntimeError, match="rows 4 .. 4"):
        step.forward(torch.zeros(1, 64), m.kv, m.rows, pos, m.cos, m.sin)
    with pytest.raises(RuntimeError, match="position 40 past the slab's columns"):
        step.forward(torch.zeros(1, 64), m.kv, 0, torch.tensor([40]), m.cos, m.sin)
    with pytest.raises(RuntimeError, match="pos \\[2\\] Long: expected \\(1,\\) int64"):
        step.forward(torch.zeros(1, 64), m.kv, 0, torch.tensor([1, 2]), m.cos, m.sin)
