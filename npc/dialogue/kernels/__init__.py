"""C++ kernels for the lean decode path (npc/dialogue/lean.py): weight-only quantized matmuls in
llama.cpp's block formats, for decode rows on an AVX2 CPU (quant.cpp).

Why: torch's int4 kernel (_weight_int4pack_mm_for_cpu) reads ~2.7 GB/s here and wants bf16 inputs,
which this CPU (AVX2, no AVX512-BF16) only emulates, so every decode matmul paid a float32 -> bf16 ->
float32 round trip around a slow kernel (lean.py, COMPUTE). These do what llama.cpp does: the weights
packed once at load (Q4_1: 4-bit q, a float16 scale d and min m per block of 32, w = d * q + m; Q8_0:
int8 q and a float16 d per block of 32), the input row quantized to int8 per block of 32 on the fly,
integer dot products (_mm256_maddubs_epi16, _mm256_madd_epi16), float32 in and out, output channels
split over torch's intra-op threads (at::parallel_for, so --dialogue-threads holds).

A whole decode step is one call too (STEP, lean.py): torch.classes.npc_quant.Step holds every layer's
packs and runs the layers (RMSNorm, the matmuls, RoPE + slab write + attention, silu * up, the residual
adds) without returning to Python; its threads are its own (TEAM in quant.cpp: at::get_num_threads() - 1
helpers that claim chunks from one atomic ticket, so that a helper the scheduler has not run holds no
step up; OpenMP's regions each wait for every thread at their end, lean.py has the figures).

Built ahead of use: `python -m npc.dialogue.kernels` (scripts/setup runs it) compiles quant.cpp with
g++ (-O3 -mavx2 -mfma -mf16c -fopenmp) against the installed torch into KERNELS_DIR (inside the
virtual environment), named by a hash of the source, the flags and torch's version; a worker only
loads the built file (`available`) and never compiles at a player's expense. Missing (not built, no
compiler), on a CPU without AVX2, or on CUDA, the lean path keeps torch's kernels, and says why once
(lean.Dense, `why_not`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("quant.cpp")
FLAGS = ["-O3", "-mavx2", "-mfma", "-mf16c", "-fopenmp", "-fPIC", "-shared", "-std=c++20"]
GROUP = 32  # inputs per block (QK in quant.cpp)
# The built library's folder: inside the virtual environment (scripts/setup builds it), or NPC_KERNELS_DIR.
KERNELS_DIR = Path(os.environ.get("NPC_KERNELS_DIR") or Path(sys.prefix) / "npc-kernels")

_loaded: bool | None = None
_why: str | None = None


def library() -> Path:
    """Where the built library for this source, these flags and this torch is (or would be)."""
    h = hashlib.sha256(SOURCE.read_bytes() + " ".join(FLAGS).encode() + torch.__version__.encode()).hexdigest()
    return KERNELS_DIR / f"npc_quant-{h[:16]}.so"


def command(out: Path) -> list[str]:
    """The g++ line that builds `out` (torch's headers and libraries, its C++ ABI)."""
    from torch.utils import cpp_extension

    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    inc = [f"-I{p}" for p in cpp_extension.include_paths()]
    libs = [a for p in cpp_extension.library_paths() for a in (f"-L{p}", f"-Wl,-rpath,{p}")]
    cxx = os.environ.get("CXX", "g++")
    return [
        cxx,
        *FLAGS,
        f"-D_GLIBCXX_USE_CXX11_ABI={abi}",
        *inc,
        str(SOURCE),
        "-o",
        str(out),
        *libs,
        "-lc10",
        "-ltorch_cpu",
    ]


def build() -> Path:
    """Compile quant.cpp into library() unless it is there (about a minute on 2 busy cores)."""
    out = library()
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    subprocess.run(command(tmp), check=True)
    tmp.replace(out)  # atomic: a worker never loads half a file
    return out


def cpu_ok() -> bool:
    """Whether this CPU runs the kernels (AVX2 and FMA, as torch's own dispatch sees them)."""
    return torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")


def available() -> bool:
    """Whether torch.ops.npc_quant is loaded (loading the built library on first call; never building)."""
    global _loaded, _why
    if _loaded is None:
        _loaded = False
        path = library()
        if not cpu_ok():
            _why = f"this CPU lacks AVX2 (torch sees {torch.backends.cpu.get_cpu_capability()})"
        elif not path.is_file():
            _why = f"{path} is not built (scripts/setup builds it: python -m npc.dialogue.kernels)"
        else:
            try:
                torch.ops.load_library(str(path))
                _loaded = True
            except OSError as exc:
                _why = f"{path} did not load: {exc}"
    return _loaded


def why_not() -> str | None:
    """Why the kernels are not there (None: they are)."""
    return None if available() else _why


def pack_q4_1(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """w (N, K) -> (qs (N, K / 2) uint8, d (N, K / 32) float16, m (N, K / 32) float16): per block of 32,
    m = the block's min, d = (max - min) / 15, q = round((w - m) / d) in 0..15 (llama.cpp's
    quantize_row_q4_1; weights already on a Q4_1 grid come back as they were, up to float16 d and m)."""
    N, K = w.shape
    g = w.float().reshape(N, K // GROUP, GROUP)
    lo, hi = g.amin(-1), g.amax(-1)
    d = ((hi - lo) / 15).to(torch.float16).float()  # q is found against the d the kernel will use
    m = lo.to(torch.float16).float()
    inv = torch.where(d > 0, 1 / d, torch.zeros_like(d))
    q = torch.round((g - m[..., None]) * inv[..., None]).clamp(0, 15).to(torch.uint8)
    qs = q[..., :16] | (q[..., 16:] << 4)  # byte j: element j low, element j + 16 high
    return qs.reshape(N, K // 2).contiguous(), d.half().contiguous(), m.half().contiguous()


def pack_q8_0(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """w (N, K) -> (qs (N, K) int8, d (N, K / 32) float16): per block of 32, d = max |w| / 127, q =
    round(w / d) (llama.cpp's quantize_row_q8_0)."""
    N, K = w.shape
    g = w.float().reshape(N, K // GROUP, GROUP)
    d = (g.abs().amax(-1) / 127).to(torch.float16).float()
    inv = torch.where(d > 0, 1 / d, torch.zeros_like(d))
    q = torch.round(g * inv[..., None]).clamp(-127, 127).to(torch.int8)
    return q.reshape(N, K).contiguous(), d.half().contiguous()


def unpack_q4_1(qs: torch.Tensor, d: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """The float32 weights a q4_1 pack stands for (N, K)."""
    N = qs.shape[0]
    b = qs.reshape(N, -1, GROUP // 2)
    q = torch.cat([b & 15, b >> 4], -1).float()
    return (q * d.float()[..., None] + m.float()[..., None]).reshape(N, -1)


def unpack_q8_0(qs: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """The float32 weights a q8_0 pack stands for (N, K)."""
    N = qs.shape[0]
    return (qs.reshape(N, -1, GROUP).float() * d.float()[..., None]).reshape(N, -1)


def main() -> None:
    """scripts/setup's build step: build, load, and check one product against float32."""
    if not cpu_ok():
        print(f"npc.dialogue.kernels: not built: {why_not() or 'this CPU lacks AVX2'}")
        return
    try:
        out = build()
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"npc.dialogue.kernels: build failed ({exc}); the lean path keeps torch's kernels")
        return
    assert available(), why_not()
    w, x = torch.randn(64, 128), torch.randn(2, 128)
    qs, d, m = pack_q4_1(w)
    err = (torch.ops.npc_quant.q4_1_mm(x, qs, d, m) - x @ unpack_q4_1(qs, d, m).T).abs().max().item()
    print(f"npc.dialogue.kernels: {out} (q4_1 x q8 vs float32: max error {err:.3g})")


if __name__ == "__main__":
    main()
