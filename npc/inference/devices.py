"""Which devices the workers get, decided without importing torch here.

The tick process must never import torch, so GPUs are found in two steps: a
cheap look at the machine (the NVIDIA driver's /proc entries or `nvidia-smi`,
and CUDA_VISIBLE_DEVICES); only if that finds GPUs, a short-lived child
process asks torch how many it can use (a CPU-only torch build sees none).
On a machine without an NVIDIA driver nothing is spawned and the answer is
immediate.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

PROBE_TIMEOUT_S = 60.0  # importing torch and initialising CUDA in the probe


def driver_gpu_count() -> int:
    """GPUs the NVIDIA driver shows, limited by CUDA_VISIBLE_DEVICES; 0 without a driver."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1", "none", "NoDevFiles"):
        return 0
    n = 0
    try:
        n = len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        smi = shutil.which("nvidia-smi")
        if smi:
            try:
                out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10).stdout
                n = sum(1 for line in out.splitlines() if line.startswith("GPU "))
            except (OSError, subprocess.SubprocessError):
                n = 0
    if n and visible is not None:
        n = min(n, len([v for v in visible.split(",") if v.strip()]))
    return n


def torch_gpu_count() -> int:
    """GPUs torch can use, asked in a child process (0 if it fails)."""
    code = "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)"
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
        return int(out.stdout.strip() or 0)
    except (OSError, ValueError, subprocess.SubprocessError):
        return 0


def gpu_count() -> int:
    return torch_gpu_count() if driver_gpu_count() else 0


def plan_devices(workers: int | None, devices: list[str] | None, gpus: int | None = None) -> list[str]:
    """One device string per worker.

    devices given: used as is (their count is the worker count unless
    `workers` is also given, in which case they are reused round-robin).
    Otherwise: one worker per GPU on cuda:0..N-1 (or `workers` of them,
    round-robin), or, with no GPU, `workers` (default 1) on "cpu".
    """
    if devices:
        n = workers if workers else len(devices)
        return [devices[i % len(devices)] for i in range(n)]
    if gpus is None:
        gpus = gpu_count()
    if gpus:
        n = workers if workers else gpus
        return [f"cuda:{i % gpus}" for i in range(n)]
    return ["cpu"] * (workers if workers else 1)
