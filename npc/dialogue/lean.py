"""The lean decode path: a Llama-family model's forward, written for the
dialogue runner's decode step. Runs in worker processes only.

Why: transformers' forward costs about 40 ms a token for SmolLM2-135M on
this 2-core CPU, almost all of it per-operation overhead (hooks, cache
objects, mask building, three projections where one would do), while the
weights allow ~115 tokens/s in bf16 (issue 15). This file keeps only the
arithmetic, with the same numbers as transformers (tests/npc/dialogue/test_dialogue_lean.py
compares logits and greedy tokens):

- weights taken from the transformers model (so every format transformers
  loads, GGUF included, works here), fused: one matmul for q, k and v, one
  for gate and up; int4 (layers) and int8 (head) weight-only matmuls for
  decode where they measure faster (`quant`, see QUANTIZE; on a CPU without bf16
  arithmetic, C++ kernels in llama.cpp's Q4_1 format and a fused decode step:
  KERNELS); under int4, a decode
  row's logits are an int4 pass whose TOP likeliest tokens are computed again in
  bf16 (Head: what the sampler reads is exact);
- RoPE tables (cos, sin) precomputed once for every column, from the
  model's own rotary embedding (so its rope scaling is honoured);
- a static KV slab, one tensor for all layers:
      kv[layer, 0 = keys | 1 = values, row, kv_head, column * head_dim], seen as
      keys[layer, row, kv_head, head_dim, column] (transposed: ATTENTION below) and
      values[layer, row, kv_head, column, head_dim]
  Row b is one conversation; column c holds its token at position c (no
  padding inside a row, so a row's position ids are its column indices and
  its mask is "column <= position"). The running rows are 0 .. running-1,
  in the runner's order; a finished row's place is taken by moving the later
  rows up (copying only their used columns). The last column is a dump:
  padding tokens of a prefill write their keys there, and no query reads it.
- a decode step builds no tensor from Python values: its index tensors are
  slices of tables made at start-up (rows, columns, positions on the
  device), the KV slab is written in place; on CUDA the whole step is a CUDA graph per
  batch size (captured on first use), replayed with new inputs.

Where a CPU decode step goes (s14e, thread CPU time so that a loaded machine's waits do not count,
1 thread, ~400-token rows, int4): 1 row 14.8-18.1 ms a step, of which the matmuls (layers and the
int8 head) 9.5, attention (SDPA) 3.1-4.4, RMSNorm 2.2; 8 rows 60.4 ms, of which the matmuls 27.5
and attention 25.7 (it reads each row's keys and values: ~74 MB a step at 8 rows of 400 tokens,
more than the int4 weights' 67 MB). Tried and not kept (same measure): q made contiguous for SDPA
(14.8 / 65.1 ms), attention as two float32 matmuls (15.6 / 61.9), as bf16 matmuls (18.2 / 77.1);
torch.compile of the step on fixed shapes (every column, masked; dynamic=False): 366 s to compile
on this loaded 2-core machine and 343 ms a step after it (inductor's code for the int4 kernel path),
so the step stays eager on CPU. Fused q/k/v and gate/up projections are in (one matmul each).

COMPUTE (s17d): on a CPU without bf16 arithmetic (AVX2 only: session 17's machine, an AMD EPYC
with AVX2 and no AVX512-BF16, where earlier sessions had one) torch's bf16 kernels are emulated: a
576 -> 1728 projection of 300 rows took 73.9 ms in bf16 and 8.5 ms in float32, one layer's attention
at 1 row (400 columns) 399 vs 68 us, at 8 rows 3,644 vs 559 us (thread CPU time, 1 thread, load 2-4).
There a bf16 model computes in float32 (compute_dtype): activations, the slab (twice the bytes: 46 KB
a column of a row) and the weights prefill reads are float32 copies (exact); the decode step's matmuls
stay int4, in bf16 (the int4 kernel takes 10x longer on float32 inputs here: 2,326 vs 215 us), and
the head's quick pass is fbgemm's int8 kernel (Q8DYN below). Whole
decode step, interleaved in one process, 1 thread, 300-column rows, thread CPU ms median (load 3.8 /
7.0): 1 row: bf16 int4 (before) 65.7 / 79.7, float32 with int4 51.7 / 65.5, float32 with q8dyn
45.1 / 61.2; 8 rows: 227.9 / 306.8, 136.4 / 179.2, 97.0 / 110.6. Greedy tokens of a chat prompt
against transformers in float32: bf16 int4 14 of 16, float32 int4 16, float32 q8dyn 15; of 8
bench prompts (~405 tokens, 24 steps each, steps agreeing before the first difference), float32
int4: 24 for 7 of 8 and 11 (1 row or 8 rows alike); float32 q8dyn: 7 14 8 24 5 24 2 10 one at a
time, 17 5 8 9 5 5 2 24 as one batch of 8. So q8dyn is not the default for the layers (it is
`quant="q8dyn"`, bench/dialogue.py lean-q8dyn): its 7-bit inputs lose what the file had.

bench/dialogue.py --engines lean --engines-only --engine-repeat 2 --tokens 32 --threads 2 (s17d, one
round each, main then this, load 5.7-9.3 then 4.2-6.9; 404-token prompts), main -> this: first
token cold 55,068 -> 7,373 ms, warm 16,784 -> 5,130 ms, single stream 0.7 -> 1.7 tok/s, 8
conversations 5.5 -> 25.1 tok/s decoding (1.8 -> 10.8 over the wall). Far below the step's own
figures: 2 threads on 2 busy cores (docs/workers.md, --dialogue-threads). Again on a quiet spell
(load 0.8-1.5, main then this): first token cold 11,995 -> 1,490 ms, warm 5,459 -> 764 ms, single
stream 18.7 -> 24.4 tok/s, 8 conversations 35.3 -> 73.9 tok/s decoding (5.1 -> 30.0 over the wall).

KERNELS (s18b): C++ kernels (kernels/, built by scripts/setup) where a bf16 model computes in float32
on CPU: the layers' matmuls in llama.cpp's Q4_1 format (the GGUF's own grid: 4-bit q, float16 d and
m per block of 32; quant "q4_1" multiplies float32 inputs, "q4_1q8" quantizes them to int8 per block
first, as llama.cpp's q4_1 x q8_1; "q8_0" int8 weights), the head's quick pass q4_1q8 (then TOP
exact), and a decode step's layers FUSED: RMSNorm, RoPE + the slab write + attention, silu * up, one
C++ call each (the step was ~600 torch ops; 1 row, thread CPU, under torch.profiler: q4_1q8 matmuls
13.6 ms, attention's bmm 4.5, RMSNorm 4.0, the rest of ~34 ms per-op costs). Per projection (1 thread,
thread CPU us median, load 5, one projection repeated), float32 / int4 / q8dyn / q4_1q8 / q8_0 / q4_1:
1 row qkv 81 / 143 / 110 / 50 / 44 / 90, gate+up 260 / 390 / 207 / 140 / 118 / 271, down 120 / 205 /
124 / 63 / 58 / 111, head 15,903 / 5,624 / 4,286 / 2,732 / 3,828; 8 rows qkv 245 / 270 / 109 / 182 /
171 / 275, gate+up 1,834 / 1,363 / 370 / 621 / 535 / 760, down 371 / 408 / 134 / 242 / 250 / 317, head
38,841 / 14,764 / 5,018 / 10,965 / 10,174 (fbgemm reuses its weights across rows far better: HEAD_ROWS).
Whole decode step (interleaved in one process, 1 thread, 300-column rows, thread CPU ms median, load
5-6): 1 row int4 unfused 58.7, q4_1q8 unfused 49.4, q4_1q8 fused 26.5, int4 fused 41.9, q8_0 fused
33.9; 8 rows 116.3 / 119.0 / 101.7 / 128.1 / 97.3. Greedy tokens against transformers in float32 (the
chat prompt's 16; the 8 bench prompts' 24 steps, one at a time and as a batch of 8 alike): q4_1q8 16,
24 24 24 24 1 17 2 19; q8_0 16, 3 24 24 9 1 17 24 19; int4 fused 14, 3 24 24 13 24 24 24 24 (unfused,
s17d: 16, 24 for 7 of 8 and 11): near-ties flip with any rounding; q4_1 (float32 inputs, the default)
16, 3 24 24 24 24 24 24 19. So the default is q4_1: 4-bit weights, float32 arithmetic, as close to
transformers as int4 was, and q4_1q8 (llama.cpp's arithmetic) is an option.
The default against main's path (int4 layers in bf16, q8dyn head, torch ops: int4 unfused here),
whole decode step as above, load 8-11: 1 row 62.7 -> 37.8 ms (q4_1; q4_1q8 31.2), 8 rows 169.5 ->
123.4 (q4_1q8 111.0). bench/dialogue.py --engines lean --engines-only --engine-repeat 2 --tokens 32
--threads 2, main then this (one round each, load 8-14, the pytest of another helper and one of this
branch's beside): first token cold 23,476 -> 13,663 ms, warm 18,403 -> 10,012, single stream 0.4 ->
1.4 tok/s, 8 conversations 2.4 -> 1.9 decoding: 2 threads on 2 busy cores (docs/workers.md), no
figure for the targets; re-measure on a quiet machine.
Tried: one accumulator a row indexed by block parity (kept in memory by the compiler): 1 row gate+up
202 vs 140 us with two named ones.

STEP (s19a): a decode step of up to BLOCK_ROWS rows is ONE C++ call (kernels' Step, made once from the
Denses' packs, forward(x, slab, first, pos, cos, sin) -> the final norm of x): per layer RMSNorm, qkv,
RoPE + slab write + attention (split over query heads), o + residual, RMSNorm, gate / up with silu * up on
the same thread's channels, down + residual, no Python and no dispatch between them; the head's quick
pass runs on the same threads (Head.quick), its TOP again in Python. The numbers are FUSED's bit for bit
(the same kernels in the same order; tests: logits and slab, tiny model and the default model's first
layers, threads 1 and 2), and main's: the default model's decode logits under q4_1 and q4_1q8 (the chat
prompt's 16 steps, the 8 bench prompts' 24 as one batch and the first alone; /tmp exact.py, 1 thread) are
equal bit for bit between main and this, so the greedy agreement above (KERNELS) holds. Its threads are TEAM
(kernels/quant.cpp): helper threads claim chunks of each matmul from one atomic ticket, and the caller
returns when every chunk is done; with torch's OpenMP regions (at::parallel_for) every region's end waits
for both threads, which on two busy cores is most of the step. Whole decode step, interleaved in one
process (/tmp step.py: 300-column rows, 12 rounds, ms median; load 11-23 from the other helpers):
1 thread (thread CPU): 1 row FUSED 41.0 -> STEP 29.5 (q4_1q8 STEP 21.0); 8 rows 127.3 -> 96.6 (89.7).
2 threads (wall, load 13-23): 1 row FUSED 2,036 / STEP on OpenMP 1,305 / STEP on TEAM 255 (q4_1q8 216);
8 rows 3,406 / 3,626 / 576 (573); thread CPU of the caller 1 row 289 / 148 / 31: OpenMP's waits spin.
Again at load 4 (the other core taken by other jobs): 1 row 1,178 / 1,186 / 40.0 (35.8), 8 rows 1,232 /
1,232 / 124.7 (115.0); in a process that never started TEAM (/tmp thr.py omp, switching threads step by
step, load 3.6) STEP on OpenMP took 35.2 ms with 1 thread and 1,231.5 with 2 (8 rows 108.2 vs 1,242.7):
each region's end waits for the busy core's next time slice, so the slowness is OpenMP's, not TEAM's.
Per projection (the ops, 1 thread, thread CPU us median, load 17-20), q4_1 (float32 inputs) / q4_1q8 at
1, 2, 4, 8 rows: qkv 111 / 56, 128 / 83, 203 / 164, 293 / 240; o 67 / 33, 92 / 62, 77 / 55, 188 / 152;
gate+up 336 / 150, 366 / 263, 371 / 281, 1,016 / 915; down 153 / 73, 160 / 100, 166 / 120, 452 / 304;
head q4_1q8 2,790 at 1 row. A tile of 4 rows shares each weight block's unpacking, so 4 rows cost
1.1-1.8x one row and 8 rows 2.6-3x; past that the float32 FMAs are the cost (the 1 -> 8 row figures of
the whole step above). Prefill stays on torch's float32 matmuls (MKL): a 250-token prefill (1 thread,
load 17) took 1,326 ms of CPU, 78% of it in aten::mm, and at 250 rows torch beats the kernels' tile
(ms of CPU, torch / kernel: qkv 5.3 / 7.4, o 2.9 / 4.4, gate+up 14.1 / 22.8, down 6.6 / 11.1): the
150 ms first-token target is past float32 arithmetic on this CPU (about 53 GFLOP for 250 tokens).
bench/dialogue.py --engines lean --engines-only --engine-repeat 2 --tokens 32 --threads 2, main then
this (one round each, load 10-18): single stream 0.5 -> 9.0 tok/s, 8 conversations 1.4 -> 23.9 tok/s
decoding (1.1 -> 7.8 over the wall), first token cold 23,812 -> 33,275 ms, warm 20,672 -> 17,057 (the
prefill, not changed here: the load's noise). No figure for the targets on a box this loaded.
q4_1q8 (llama.cpp's int8 inputs) against q4_1: perplexity of docs/designers.md (4 rows of 120 tokens,
448 predicted, teacher-forced through decode steps, 1 thread; /tmp ppl.py): transformers float32 89.33,
q4_1 90.69, q4_1q8 90.50 (the gap to transformers is mostly the head's quick pass: a token outside the
TOP has its approximate logit). So its int8 inputs cost nothing this measure sees, and its step is 0.71x
q4_1's (above); its greedy disagreements (KERNELS: 3 of 8 bench prompts part before 24 steps) are
near-ties. Not made the default here: the persona eval ran on q4_1 this session; that is the measure
to take next (bench/persona.py with quant q4_1q8 against q4_1).

Q8DYN: fbgemm's int8 weight (a scale per output channel) x input quantized per call (one scale for
the whole input, 7 bits: reduce_range) GEMM, quantized::linear_dynamic. The 30 layers' matmuls, 1
thread, thread ms: 1 row int4 (bf16) 25.4, q8dyn 20.4, fbgemm fp16 weights 29.0, float32 51.8,
int8 (bf16) 34.2; 8 rows 58.3 / 26.2 / 43.7 / 99.3 / 65.7; 16 rows q8dyn 51 vs float32 189, 32 rows
79 vs 197, 128 rows 323 vs 559: so q8dyn takes every decode batch (up to MAX_ROWS; int4 against
float32: 12 rows 85.5 vs 112.6, 16 rows 111 vs 126, 32 rows 248 vs 217: QUANT_ROWS stays). Only decode
steps: a prefill's first tokens have outsized activations, and one input scale for all its tokens
gave a wrong first token (0 of 16 greedy tokens); prefill stays float32. One scale for a decode
step's rows makes a row's numbers depend a little on the rows beside it. The head's quick pass is
q8dyn too (49152 x 576, ms: 1 row 4.8 vs int4 6.2, 8 rows 5.5 vs 14.1); its TOP tokens are exact.

Grouped-query attention without copying keys: the query heads that share a
key head are laid out as extra query rows, (B, kv_heads, group * T, head_dim),
so one matmul serves them all.

ATTENTION: two matmuls (q @ keys, softmax, @ values) over the filled columns, with the keys kept
transposed in the slab (kv_head, head_dim, column), instead of scaled_dot_product_attention
(s15e, thread CPU time of one layer's attention, 1 thread, 400 columns, us: SDPA on the old layout /
matmuls on the transposed one): 1 row 41 / 53, 2 rows 78 / 72, 8 rows 314 / 182, a 400-token
prefill 4,346 / 2,040. q @ keys on the old (column, head_dim) layout takes torch's slow path for a
strided batch (301 us at 8 rows). The whole decode step (/tmp A/B in one process, interleaved,
1 thread, load 0.7-0.9, 394-token rows, ms min/median): 1 row 14.47/14.87 -> 14.55/15.02 (same),
8 rows 54.89/54.98 -> 45.79/46.13 (0.84x). Scores are bf16 (as transformers' eager attention),
not float32 as in SDPA: the default model's greedy tokens are unchanged (the tests). An 8-bit
slab was tried (dequant, then attention: 8 rows 23.0 vs 16.1 ms a step at 1 thread): without a
fused kernel torch has no int8 x bf16 batched matmul (torch._int_mm on CPU was slower than bf16).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Callable

import torch
import torch.nn.functional as F

from . import kernels

log = logging.getLogger("npcworld.dialogue")

# Weight-only quantized matmuls for the decode step, where they measure faster. The decode step
# is bound by reading the weights (134 MB a token in int8, 270 MB in bf16): 1 row at a time
# needs no compute to speak of.
# - int4 (torch's _weight_int4pack_mm_for_cpu; groups of 32 inputs, a scale and a zero per
#   group): the default model's layers are Q4_1 in its GGUF file (groups of 32, d * q + m), so
#   quantizing the weights transformers dequantized gives back the file's own numbers (up to
#   bf16 rounding of d and m): int4 loses nothing the file had. 67 MB a token.
# - int8 (torch._weight_int8pack_mm, one scale per output channel): the output head (tied to the
#   embedding, Q8_0 in the file) stays int8 under "int4" for every-token logits (scoring), as a 4-bit
#   head loses precision the file had; a decode row's logits use Head instead (int4, then TOP in bf16).
# Measured (bench/dialogue.py --engines-only, 2 threads, one decode row, side by side in one run
# on a busy machine): see QUANT_MEASURED. Prefill rows (many at once) stay bf16, faster there:
# a 272-row prefill took 8.0 ms in int8 and 2.2 ms in bf16 for a 576 -> 3072 projection, so a
# Dense keeps both and multiplies up to QUANT_ROWS rows quantized (decode of up to 12
# conversations), more in bf16 (prefill, bigger batches). Prefill stays bf16, not float32 (which
# transformers advises for packed GGUF weights): this CPU has AVX512-BF16; a ~400-token prefill of
# the default model took 1,656 ms in bf16 vs 3,911 ms with float32 matmuls (s14e, medians of 12,
# interleaved in one process, 1 thread, load 5-7); 39% of a bf16 prefill is attention (SDPA).
# "auto": int4 for bf16 models on CPU
# (torch's int4/int8 kernels used here are CPU ones), none on CUDA.
QUANTS = ("none", "int8", "int4", "q8dyn", "q4_1", "q4_1q8", "q8_0")
# llama.cpp's block formats through the C++ kernels (kernels/: an input row quantized per block of 32,
# float32 in and out): "q4_1" layers (the default model's GGUF grid) and a q8_0 head, or "q8_0" throughout.
# Without the kernels (not built, no AVX2, CUDA) they are today's torch kernels (BLOCKS_FALLBACK).
# "q4_1" multiplies float32 inputs (exact: KERNELS), "q4_1q8" quantizes them to int8 per block first
# (llama.cpp's q4_1 x q8_1: faster, less exact).
BLOCKS = ("q4_1", "q4_1q8", "q8_0")
QUANTIZE = {"cpu": "int4", "cuda": "none"}
QUANTIZE_F32 = "q4_1"  # "auto" on a CPU without bf16 arithmetic (COMPUTE) with the kernels built (KERNELS)
# int4 up to 12 rows, measured at the default model's decode step (s13c, /tmp A/B in one process,
# 1 thread, load 6-8, ms a step, QUANT_ROWS 4 (bf16 above 4 rows) vs int4): 6 rows 140 vs 108,
# 8 rows 119 vs 85, 12 rows 171 vs 152; 16 rows 114 vs 123 and 24 rows 160 vs 189 (bf16 faster).
QUANT_ROWS = 12
# The head's quick pass (Head) where the model computes in float32 (COMPUTE) and fbgemm is there: Q8DYN.
HEAD_F32 = "q8dyn"
# What "q4_1" / "q8_0" become without the kernels: the path the kernels replaced (COMPUTE).
BLOCKS_FALLBACK = "int4"
_said: set[str] = set()


def blocks_or_fallback(quant: str) -> str:
    """quant, or BLOCKS_FALLBACK where it names the kernels' formats and they are not there (said once)."""
    if quant not in BLOCKS or kernels.available():
        return quant
    why = kernels.why_not() or "unavailable"
    if why not in _said:
        _said.add(why)
        log.warning("lean decode path: quant %s needs the C++ kernels, %s: using %s", quant, why, BLOCKS_FALLBACK)
    return BLOCKS_FALLBACK


GROUP = 32  # int4: inputs per scale and zero (Q4_1's block)
# q4_1 / q8_0: inputs of up to BLOCK_ROWS rows through the kernels, more (prefill) through float32.
BLOCK_ROWS = 16
# The head under "int4" (Head): an int4 pass, then the TOP likeliest tokens again in bf16. TOP is well
# above the runner's top_k (40), so every token it may sample has its exact logit: the int4 pass of the
# tied embedding (Q8_0 in the file) is off by up to 4 in a logit, and on the default model (124 decode
# steps of 4 chat prompts) the true 40th token ranked at most 129th in it (median 55): 256 leaves room.
# HEAD_MEASURED (s16e, the head alone, 49152 x 576, thread CPU time, 1 thread, load 7-12, us a call):
# 1 row: int8 5,527 / int4 1,919 / int4 + 256 again 2,421 / bf16 10,598; 8 rows: 15,246 / 6,499 /
# 10,143 / 11,049. The whole decode step (s16e, interleaved in one process, 286-token rows, 2 threads,
# load 1.3-1.5, wall ms median): 1 row 19.8 -> 16.8 (50.6 -> 59.6 tok/s), 8 rows 44.7 -> 37.8 (179 -> 212).
TOP = 256
# The quick pass through the q4_1 kernel up to HEAD_ROWS rows, fbgemm's q8dyn above (s18b, the head alone,
# thread CPU us, 1 thread, load 5: 1 row q4_1 2,732 vs q8dyn 4,286; 8 rows 10,965 vs 5,018).
HEAD_ROWS = 2
# STEP on its own threads (kernels' TEAM) rather than torch's OpenMP regions (at::parallel_for).
TEAM = True
# The slab's rows are bounded: a burst of joiners used to double it without end (session 14). At
# MAX_ROWS the runner prefills no more joiners until rows leave (they wait in its queue); a row is
# columns x 23 KB for the default model (1,088 columns: 25 MB a row, 32 rows 800 MB).
MAX_ROWS = 32


def unsupported(config: Any) -> str | None:
    """Why the lean path cannot run this model (None: it can)."""
    if getattr(config, "model_type", None) != "llama":
        return f"model type {getattr(config, 'model_type', None)!r} (the lean path knows 'llama')"
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        return "biases in attention or MLP"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"activation {config.hidden_act!r}"
    if getattr(config, "pretraining_tp", 1) != 1:
        return "pretraining_tp > 1"
    return None


def bf16_arithmetic(device: torch.device) -> bool:
    """Whether `device` computes in bf16 at full speed (CPU: AVX512-BF16 or AMX, through oneDNN)."""
    return device.type != "cpu" or bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def compute_dtype(dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """The dtype the lean path computes in for a model of `dtype`: its own, except bf16 on a CPU
    without bf16 arithmetic, where it computes in float32 (COMPUTE: bf16 -> float32 is exact)."""
    return torch.float32 if dtype == torch.bfloat16 and not bf16_arithmetic(device) else dtype


def fbgemm() -> bool:
    """Whether torch's fbgemm int8 kernels (quantized::linear_dynamic) are there (x86 builds)."""
    return "fbgemm" in torch.backends.quantized.supported_engines


class Dense:
    """y = x @ w.T; with `quant` "int8"/"int4"/"q8dyn" or one of BLOCKS, inputs of up to `rows` rows
    (QUANT_ROWS by default) use a quantized copy of w (w stays, for prefill). The int8/int4 kernels
    run in bf16: a float32 input goes through them in bf16 (COMPUTE); BLOCKS' in float32 (KERNELS)."""

    def __init__(self, w: torch.Tensor, quant: str, rows: int | None = None):
        self.w = w.contiguous()
        self.quant = quant
        self.rows = QUANT_ROWS if rows is None else rows
        N, K = w.shape
        if quant == "int4" and (K % GROUP or N % 16):
            self.quant = "int8"  # int4 needs whole groups, and outputs in 16s (torch's packing)
        if self.quant == "q8dyn" and not fbgemm():
            self.quant = "int4" if K % GROUP == 0 and N % 16 == 0 else "int8"
        if self.quant in BLOCKS and K % GROUP:
            self.quant = "int8"  # whole blocks of 32 inputs only
        self.quant = blocks_or_fallback(self.quant)
        kdt = torch.bfloat16 if w.dtype == torch.float32 else w.dtype  # the int kernels' scales
        self.q: Any
        if self.quant in ("q4_1", "q4_1q8"):
            self.q = kernels.pack_q4_1(w)  # (qs, d, m)
        elif self.quant == "q8_0":
            self.q = kernels.pack_q8_0(w)  # (qs, d)
        elif self.quant == "q8dyn":
            # fbgemm: int8 weights, a scale per output channel; the input quantized to 8 bits per call
            # (one scale for the whole input: a row's numbers depend a little on the rows beside it).
            w32 = w.float()
            scale = w32.abs().amax(dim=1).clamp(min=1e-8) / 127.0
            zero = torch.zeros(N, dtype=torch.long, device=w.device)
            q8 = torch.quantize_per_channel(w32, scale.double(), zero, 0, torch.qint8)
            self.q = torch.ops.quantized.linear_prepack(q8, None)
        elif self.quant == "int8":
            w32 = w.float()
            scale = w32.abs().amax(dim=1).clamp(min=1e-8) / 127.0
            self.q = torch.round(w32 / scale[:, None]).clamp(-127, 127).to(torch.int8).contiguous()
            self.scale = scale.to(kdt)
        elif self.quant == "int4":
            # Asymmetric, per group: w = d * q + lo, q in 0..15; the kernel computes (q - 8) * d + zero.
            g = w.float().reshape(N, K // GROUP, GROUP)
            lo, hi = g.amin(-1), g.amax(-1)
            d = ((hi - lo) / 15).clamp(min=1e-10)
            q = torch.round((g - lo[..., None]) / d[..., None]).clamp(0, 15).to(torch.int32).reshape(N, K)
            self.q = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1)
            self.scale = torch.stack([d, lo + 8 * d], -1).transpose(0, 1).contiguous().to(kdt)  # (K/G, N, 2)

    def __call__(self, x: torch.Tensor, step: bool = True) -> torch.Tensor:
        """x (..., in) -> (..., out); `step`: x is a decode step's (one token a row): only then does
        q8dyn quantize (a prompt's first tokens have outsized activations that one input scale
        for the whole prefill would flatten every other token's numbers to)."""
        rows = x.numel() // x.shape[-1]
        if self.quant == "none" or rows > self.rows or (self.quant == "q8dyn" and not step):
            return F.linear(x, self.w)
        x2 = x.reshape(rows, x.shape[-1]).contiguous()  # the int kernels take contiguous inputs only
        if self.quant in BLOCKS:
            ops = torch.ops.npc_quant
            op = {"q4_1": ops.q4_1_f32, "q4_1q8": ops.q4_1_mm, "q8_0": ops.q8_0_mm}[self.quant]
            y = op(x2.float(), *self.q).to(x2.dtype)
        elif self.quant == "q8dyn":
            y = torch.ops.quantized.linear_dynamic(x2, self.q, True)
        else:
            xk = x2.to(self.scale.dtype)
            if self.quant == "int8":
                y = torch._weight_int8pack_mm(xk, self.q, self.scale)
            else:
                y = torch.ops.aten._weight_int4pack_mm_for_cpu(xk, self.q, GROUP, self.scale)
            y = y.to(x2.dtype)
        return y.view(*x.shape[:-1], y.shape[-1])


class Head:
    """The output head of decode and prefill rows (one token's logits a row): an int4 pass over the
    whole vocabulary finds each row's TOP likeliest tokens, whose logits are then computed again from
    the bf16 weights (the model's own numbers): what the runner's sampler reads (its top_k, 40, and
    greedy's argmax) is exact, the rest is the int4 pass's approximation. HEAD_MEASURED."""

    def __init__(self, w: torch.Tensor, exact: Dense, quant: str = "int4"):
        self.w, self.exact = w, exact  # (vocab, hidden), the model's numbers; the int8 head (rows it does not take)
        self.q = Dense(w, quant)
        # HEAD_ROWS: past them a kernels' quick pass is fbgemm's (q8dyn), which reuses its weights across rows.
        self.many = Dense(w, "q8dyn") if self.q.quant in BLOCKS and fbgemm() else None
        self.quick: Callable | None = None  # TEAM: the whole step's q4_1_mm (the same numbers, on its threads)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, hidden) -> (B, vocab)."""
        if x.shape[0] > self.q.rows or self.q.quant not in ("int4", "q8dyn", *BLOCKS):
            return self.exact(x)
        if self.many is not None and x.shape[0] > HEAD_ROWS:
            logits = self.many(x)
        elif self.quick is not None:
            logits = self.quick(x.float().contiguous(), *self.q.q).to(x.dtype)
        else:
            logits = self.q(x)
        top = logits.topk(min(TOP, logits.shape[-1]), -1).indices  # (B, TOP)
        again = torch.bmm(F.embedding(top, self.w), x[:, :, None])[..., 0]  # (B, TOP)
        return logits.scatter_(1, top, again)


class LeanLlama:
    """The fused weights of a transformers Llama, the RoPE tables and the KV slab.

    `forward` runs T new tokens for each of B consecutive slab rows; the runner's
    engine (LeanEngine) decides which rows and which columns."""

    def __init__(self, hf: Any, columns: int, rows: int = 4, quant: str = "auto"):
        cfg = hf.config
        why = unsupported(cfg)
        if why:
            raise ValueError(f"lean decode path: unsupported model: {why}")
        emb = hf.get_input_embeddings().weight.detach()
        self.device = emb.device
        self.dtype = compute_dtype(emb.dtype, self.device)  # activations, the slab, the weights prefill reads
        if quant == "auto":
            quant = QUANTIZE.get(self.device.type, "none") if emb.dtype == torch.bfloat16 else "none"
            if quant == "int4" and self.dtype == torch.float32 and self.device.type == "cpu":
                quant = blocks_or_fallback(QUANTIZE_F32)  # KERNELS (int4 without them, logged)
        if quant not in QUANTS:
            raise ValueError(f"lean decode path: quant {quant!r}: expected auto, {', '.join(QUANTS)}")
        self.quant = blocks_or_fallback(quant) if self.device.type == "cpu" else "none"  # CPU kernels only
        self.config = cfg
        self.n_layers = cfg.num_hidden_layers
        self.hidden = cfg.hidden_size
        self.heads = cfg.num_attention_heads
        self.kv_heads = getattr(cfg, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(cfg, "head_dim", None) or self.hidden // self.heads
        self.group = self.heads // self.kv_heads
        self.eps = cfg.rms_norm_eps
        self.columns = columns  # the longest row (prompt + reply), in tokens

        # The attention's 1/sqrt(head_dim) goes into q's weights (RoPE is linear, so scaling q before
        # it is scaling after): one op a layer fewer. For head_dim 64 the scale is 1/8, a power of
        # two, so the weights (and their int4 grid: d and lo scale with them) are exact.
        self.scale = getattr(hf.model.layers[0].self_attn, "scaling", 1.0 / math.sqrt(self.head_dim))
        dt = lambda t: t.detach().to(self.dtype)  # noqa: E731 (a copy only where COMPUTE says float32)
        self.embed = dt(emb)
        self.layers = []
        qrows = BLOCK_ROWS if self.quant in BLOCKS else MAX_ROWS if self.quant == "q8dyn" else QUANT_ROWS  # Q8DYN
        for layer in hf.model.layers:
            a, m = layer.self_attn, layer.mlp
            qkv = dt(torch.cat([a.q_proj.weight.detach() * self.scale, a.k_proj.weight, a.v_proj.weight]))
            self.layers.append(
                (
                    dt(layer.input_layernorm.weight),
                    Dense(qkv, self.quant, qrows),
                    Dense(dt(a.o_proj.weight), self.quant, qrows),
                    dt(layer.post_attention_layernorm.weight),
                    Dense(dt(torch.cat([m.gate_proj.weight, m.up_proj.weight])), self.quant, qrows),
                    Dense(dt(m.down_proj.weight), self.quant, qrows),
                )
            )
        self.norm = dt(hf.model.norm.weight)
        out_w = hf.get_output_embeddings().weight
        out_w = self.embed if out_w.data_ptr() == emb.data_ptr() else dt(out_w)  # tied: one copy
        scoring = "q8_0" if self.quant in BLOCKS else "int8" if self.quant != "none" else "none"
        self.head = Dense(out_w, scoring)  # every token's logits (scoring)
        # One token a row (decode): a quick pass, then the likeliest tokens again (Head).
        first = {"int4": "int4", "q8dyn": "q8dyn", **dict.fromkeys(BLOCKS, "q4_1q8")}.get(self.quant)
        if first == "int4" and self.dtype == torch.float32 and fbgemm():
            first = HEAD_F32
        self.top = Head(out_w, self.head, first) if first else self.head

        # RoPE tables from the model's own rotary embedding: (columns + 1, head_dim), in
        # transformers' rotate_half layout: rope(x) = x * cos + rotate_half(x) * sin, where
        # rotate_half(x) = (-x2, x1) = roll(x, D/2) * (-1 .. -1, 1 .. 1); the sign goes into `sin`,
        # so that the step's RoPE is one roll and two in-place ops (it was seven kernels a layer).
        with torch.inference_mode():
            at = torch.arange(columns + 1, device=self.device)[None]
            cos, sin = hf.model.rotary_emb(emb[:1][None], at)
        half = self.head_dim // 2
        self.cos = cos[0].to(self.dtype).contiguous()
        self.sin = torch.cat([-sin[0, :, :half], sin[0, :, half:]], -1).to(self.dtype).contiguous()
        self.col_ids = torch.arange(columns + 1, device=self.device)
        # FUSED: a decode step's layers through the C++ kernels (RMSNorm, RoPE + slab write + attention,
        # silu * up): where they are built, on CPU, in float32.
        self.fused = self.device.type == "cpu" and self.dtype == torch.float32 and kernels.available()
        self.whole: Any = self._whole_step() if self.fused else None  # STEP
        if self.whole is not None and TEAM:
            self.whole.set_team(True)
            if isinstance(self.top, Head) and self.top.q.quant == "q4_1q8":
                self.top.quick = self.whole.quick
        self.dump = columns  # the column padding writes to
        self.kv = self._slab(rows)

    def _whole_step(self) -> Any:
        """STEP: the kernels' Step holding every layer's packed weights (the same tensors as the Denses), or
        None where the layers are not all in one of BLOCKS (e.g. quant "none": the per-layer FUSED path)."""
        denses = [layer[i] for layer in self.layers for i in (1, 2, 4, 5)]
        quant = denses[0].quant
        if quant not in BLOCKS or any(d.quant != quant for d in denses):
            return None
        weights = [t for ln1, qkv, o, ln2, gu, down in self.layers for t in (ln1, *qkv.q, *o.q, ln2, *gu.q, *down.q)]
        return torch.classes.npc_quant.Step(
            quant, [*weights, self.norm], self.heads, self.kv_heads, self.head_dim, self.eps
        )

    def _slab(self, rows: int) -> torch.Tensor:
        """A zeroed slab of `rows` rows (see the module's docstring for its layout), its views
        `keys` (layers, rows, kv_heads, head_dim, columns + 1: transposed, so that a query's scores
        are one plain matmul) and `values` (layers, rows, kv_heads, columns + 1, head_dim), and its
        index tables (made once per slab): row_ids (rows, 1); at (rows, 2 * kv_heads * head_dim) and
        step (2 * kv_heads * head_dim,): element (row, keys | values, kv head, dim) of column c is
        at at[row] + c * step[...] in a layer's slab seen flat, so that one index_put_ a layer
        writes a step's keys and values (two were 5% of a decode step)."""
        KV, D, C = self.kv_heads, self.head_dim, self.columns + 1
        kv = torch.zeros((self.n_layers, 2, rows, KV, C * D), dtype=self.dtype, device=self.device)
        self.keys = kv[:, 0].view(self.n_layers, rows, KV, D, C)
        self.values = kv[:, 1].view(self.n_layers, rows, KV, C, D)
        self.row_ids = torch.arange(rows, device=self.device)[:, None]
        head = torch.arange(2 * rows * KV, device=self.device).view(2, rows, KV) * (C * D)  # (k|v, row, head)
        d = torch.arange(D, device=self.device)
        at = torch.stack([head[0, :, :, None] + d * C, head[1, :, :, None] + d], 1)  # (row, k|v, head, dim)
        self.at = at.reshape(rows, 2 * KV * D).contiguous()
        self.step = torch.tensor([1, D], device=self.device).repeat_interleave(KV * D)  # a column's stride
        return kv

    @property
    def rows(self) -> int:
        return self.kv.shape[2]

    def grow(self, rows: int, used: int, width: int, cap: int = MAX_ROWS) -> bool:
        """Room for at least `rows` rows (doubling, up to `cap`), keeping the first `used` rows'
        first `width` columns (a new slab: True, and views of the old one are stale)."""
        if rows <= self.rows:
            return False
        if rows > cap:
            raise ValueError(f"lean decode path: {rows} rows asked for, the slab holds at most {cap}")
        old_keys, old_values = self.keys, self.values
        self.kv = self._slab(min(max(rows, 2 * self.rows), cap))
        self.keys[:, :used, :, :, :width] = old_keys[:, :used, :, :, :width]
        self.values[:, :used, :, :width] = old_values[:, :used, :, :width]
        return True

    def move(self, src: int, dst: int, width: int) -> None:
        """Row src's first `width` columns into row dst."""
        self.keys[:, dst, :, :, :width] = self.keys[:, src, :, :, :width]
        self.values[:, dst, :, :width] = self.values[:, src, :, :width]

    def load_prefix(self, row: int, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Per-layer (keys, values), each (1, kv_heads, n, head_dim), into row `row` columns 0 .. n-1."""
        for li, (k, v) in enumerate(layers):
            n = k.shape[2]
            self.keys[li, row, :, :, :n] = k[0].transpose(-1, -2)
            self.values[li, row, :, :n] = v[0]

    def prefix(self, row: int, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Row `row`'s first n columns as per-layer (keys, values) views, each (1, kv_heads, n, head_dim)."""
        return [
            (self.keys[li, row : row + 1, :, :, :n].transpose(-1, -2), self.values[li, row : row + 1, :, :n])
            for li in range(self.n_layers)
        ]

    def forward(
        self,
        ids: torch.Tensor,
        pos: torch.Tensor,
        col: torch.Tensor,
        first: int,
        width: int,
        pick: torch.Tensor | None,
        full: bool = False,
    ) -> torch.Tensor:
        """Logits for T new tokens in each of the B rows first .. first+B-1.

        ids, pos, col: (B, T) long: the tokens, their positions (RoPE, mask), the
        slab columns their keys go to (pos, or the dump column for padding).
        width: columns attended, > every pos. pick: (B,) the token of each row
        whose logits are wanted -> (B, vocab); None: every token's -> (B, T, vocab).
        full: every token sees every column < width (a decode step of rows of one
        length: no mask to build or apply)."""
        B, T = ids.shape
        step = T == 1
        if step and col is pos and self.fused:  # a decode step (col is pos: its keys go to their positions)
            x = F.embedding(ids[:, 0], self.embed)
            if self.whole is not None and B <= self.layers[0][1].rows:  # STEP: the Denses' rows, through the kernels
                return self.top(self.whole.forward(x, self.kv, first, pos.view(B), self.cos, self.sin))
            x = self._fused_step(x, pos.view(B), first)
            return self.top(torch.ops.npc_quant.rms_norm(x, self.norm, self.eps))
        H, KV, G, D = self.heads, self.kv_heads, self.group, self.head_dim
        half = D // 2
        x = F.embedding(ids, self.embed)  # (B, T, hidden), a new tensor: the residual adds go into it
        cos, sin = self.cos[pos][:, :, None], self.sin[pos][:, :, None]  # (B, T, 1, D)
        at = (self.at[first : first + B, None] + col[:, :, None] * self.step).view(B, T, 2 * KV, D)
        rows = slice(first, first + B)
        mask = None
        if not full:
            # Each query (head g of kv head k, token t) sees the columns up to its position: an
            # additive mask made once a step, added to every layer's scores.
            seen = self.col_ids[:width] <= pos[:, :, None]  # (B, T, width)
            mask = torch.zeros(seen.shape, dtype=self.dtype, device=ids.device).masked_fill_(~seen, -math.inf)
            mask = mask[:, None, None].expand(B, 1, G, T, width).reshape(B, 1, G * T, width)
        for li, (ln1, qkv_w, o_w, ln2, gu_w, down_w) in enumerate(self.layers):
            h = F.rms_norm(x, (self.hidden,), ln1, self.eps)
            qkv = qkv_w(h, step).view(B, T, H + 2 * KV, D)  # q comes scaled (LeanLlama.__init__)
            qk = qkv[:, :, : H + KV]
            turned = qk.roll(half, -1)
            qk.mul_(cos).addcmul_(turned, sin)  # RoPE on q and k at once, in place
            self.kv[li].view(-1).index_put_((at,), qkv[:, :, H:])  # keys and values, one write
            q = qkv[:, :, :H].reshape(B, T, KV, G, D).permute(0, 2, 3, 1, 4).reshape(B, KV, G * T, D)
            # Attention as two matmuls over the filled columns (ATTENTION in the module's docstring).
            scores = torch.matmul(q, self.keys[li, rows, :, :, :width])  # (B, KV, G T, width)
            if mask is not None:
                scores.add_(mask)
            a = torch.matmul(torch.softmax(scores, -1), self.values[li, rows, :, :width])  # (B, KV, G T, D)
            a = a.view(B, KV, G, T, D).permute(0, 3, 1, 2, 4).reshape(B, T, H * D)
            x.add_(o_w(a, step))
            h = F.rms_norm(x, (self.hidden,), ln2, self.eps)
            gate, up = gu_w(h, step).chunk(2, -1)
            x.add_(down_w(F.silu(gate).mul_(up), step))
        if pick is not None:
            x = x[:, 0] if T == 1 else x[self.row_ids[:B, 0], pick]  # (B, hidden)
            return self.top(F.rms_norm(x, (self.hidden,), self.norm, self.eps))
        return self.head(F.rms_norm(x, (self.hidden,), self.norm, self.eps))

    def _fused_step(self, x: torch.Tensor, pos: torch.Tensor, first: int) -> torch.Tensor:
        """The layers for one token a row (x (B, hidden), float32, its own tensor) at positions pos (B,), rows
        first .. first+B-1, through the C++ kernels: per layer 2 RMSNorms, the 4 matmuls, one call for RoPE,
        the slab write and attention, one for silu * up (FUSED)."""
        ops = torch.ops.npc_quant
        for li, (ln1, qkv_w, o_w, ln2, gu_w, down_w) in enumerate(self.layers):
            qkv = qkv_w(ops.rms_norm(x, ln1, self.eps))
            a = ops.attend(qkv, self.kv[li], first, pos, self.cos, self.sin, self.heads, self.kv_heads)
            x.add_(o_w(a))
            x.add_(down_w(ops.silu_mul(gu_w(ops.rms_norm(x, ln2, self.eps)))))
        return x


class LeanEngine:
    """The dialogue runner's engine on the lean path (the interface is in hfengine.py).

    Rows 0 .. running-1 of the slab are the running batch, in the runner's
    order; `lens[b]` is row b's filled columns (its next position). Prefill and
    the action step's scoring use the rows after the running ones."""

    def __init__(self, hf: Any, columns: int, pad_id: int, quant: str = "auto", cuda_graphs: bool = True):
        self.model = LeanLlama(hf, columns, quant=quant)
        self.max_rows = MAX_ROWS  # the runner prefills only while running rows stay under it
        self.config = self.model.config
        self.pad_id = pad_id
        self.device = self.model.device
        self.running = 0
        self.lens: list[int] = []  # per running row: filled columns (Python, so widths need no device sync)
        self.pos = torch.zeros(self.model.rows, dtype=torch.long, device=self.device)  # the same, on the device
        self.zeros = torch.zeros(self.model.rows, dtype=torch.long, device=self.device)
        self.graphs: dict[int, tuple] = {}  # CUDA: batch size -> (graph, tokens in, positions in, logits out)
        self.cuda_graphs = cuda_graphs and self.device.type == "cuda"

    def _room(self, rows: int, cap: int | None = None) -> None:
        width = max(self.lens, default=0)
        if self.model.grow(rows, self.running, width, cap or self.max_rows):
            pos = torch.zeros(self.model.rows, dtype=torch.long, device=self.device)
            pos[: self.running] = self.pos[: self.running]
            self.pos = pos
            self.zeros = torch.zeros(self.model.rows, dtype=torch.long, device=self.device)
            self.graphs.clear()  # they hold the old slab

    def _inputs(self, seqs: list[list[int]], starts: list[int]) -> tuple[torch.Tensor, ...]:
        """(ids, pos, col) for rows whose new tokens `seqs[i]` start at column starts[i],
        right-padded: padding keeps its RoPE position in range and writes to the dump column.

        Only real tokens must fit: a row joining from a long cached prefix (n tokens, 1 new) beside
        a fresh prompt (T new) is padded to n + T positions, which may pass the slab's columns
        (s12f: 24 requests x 3 candidates of ~530-token prompts, "a row of 1079 tokens"); its
        padding goes to the dump column at a clamped position, so it never needs the room."""
        m = self.model
        end = max(start + len(s) for s, start in zip(seqs, starts))  # columns the real tokens reach
        if end > m.columns:
            raise ValueError(f"lean decode path: a row of {end} tokens is past the slab's {m.columns} columns")
        T = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), T), self.pad_id, dtype=torch.long)
        pos = torch.arange(T)[None].repeat(len(seqs), 1) + torch.tensor(starts)[:, None]
        col = pos.clone()
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s)
            col[i, len(s) :] = m.dump
        pos = pos.clamp(max=m.dump)
        return ids.to(self.device), pos.to(self.device), col.to(self.device)

    def prefill(self, joiners: list[tuple[list[int], int, Any]], store: Callable) -> torch.Tensor:
        first, k = self.running, len(joiners)
        self._room(first + k)
        for i, (_, n, kv) in enumerate(joiners):
            if kv:
                self.model.load_prefix(first + i, kv)
        ids, pos, col = self._inputs([p[n:] for p, n, _ in joiners], [n for _, n, _ in joiners])
        pick = torch.tensor([len(p) - n - 1 for p, n, _ in joiners], device=self.device)
        width = max(len(p) for p, _, _ in joiners)
        logits = self.model.forward(ids, pos, col, first, width, pick)
        for i, (p, _, _) in enumerate(joiners):
            store(p, self.model.prefix(first + i, len(p)))
        self.pos[first : first + k] = torch.tensor([len(p) for p, _, _ in joiners], device=self.device)
        self.lens += [len(p) for p, _, _ in joiners]
        self.running += k
        return logits

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """One token for every running row; its key goes to column lens[b]."""
        B = self.running
        if self.cuda_graphs:
            logits = self._replay(B, tokens)
        else:
            pos = self.pos[:B, None]
            top = max(self.lens)
            logits = self.model.forward(
                tokens[:, None], pos, pos, 0, top + 1, self.zeros[:B], full=min(self.lens) == top
            )
        self.pos[:B] += 1
        self.lens = [n + 1 for n in self.lens]
        return logits

    def _replay(self, B: int, tokens: torch.Tensor) -> torch.Tensor:
        """The decode step as a CUDA graph for batch size B, over every column (the
        mask limits each row): one launch instead of a few hundred."""
        g = self.graphs.get(B)
        if g is None:
            m = self.model
            tok = torch.zeros((B, 1), dtype=torch.long, device=self.device)
            pos = torch.full((B, 1), m.dump, dtype=torch.long, device=self.device)  # warm-up writes go to the dump
            width = m.dump + 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):
                    m.forward(tok, pos, pos, 0, width, self.zeros[:B])
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):  # its own memory pool: graphs of other sizes never share buffers
                out = m.forward(tok, pos, pos, 0, width, self.zeros[:B])
            g = self.graphs[B] = (graph, tok, pos, out)
        graph, tok, pos, out = g
        tok.copy_(tokens[:, None])
        pos.copy_(self.pos[:B, None])
        graph.replay()
        return out

    def keep(self, keep: list[int]) -> None:
        if keep != sorted(keep):
            raise ValueError("keep: row indices must increase")
        for new, old in enumerate(keep):
            if old != new:
                self.model.move(old, new, self.lens[old])
        if keep:
            self.pos[: len(keep)] = self.pos[torch.tensor(keep, device=self.device)]
        self.lens = [self.lens[i] for i in keep]
        self.running = len(keep)

    def score(
        self, prompt: list[int], n: int, kv: Any, opts: list[list[int]], store: Callable
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The prompt into the first free row (from its cached prefix), copied into one
        row per option; the options then run as one batch."""
        first, m, P = self.running, len(opts), len(prompt)
        self._room(first + m, max(self.max_rows, first + m))  # options are scored at once: past the bound if need be
        if kv:
            self.model.load_prefix(first, kv)
        ids, pos, col = self._inputs([prompt[n:]], [n])
        head = self.model.forward(ids, pos, col, first, P, torch.tensor([P - n - 1], device=self.device))[0]
        store(prompt, self.model.prefix(first, P))
        for j in range(1, m):
            self.model.move(first, first + j, P)
        ids, pos, col = self._inputs(opts, [P] * m)
        logits = self.model.forward(ids, pos, col, first, P + ids.shape[1], None)
        return head, logits
