"""bench/capacity.py at a tiny N: --gateways 1,2 taking turns on pinned CPUs, side by side, every
process of the server counted (the tick process and its gateways)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from support.paths import ROOT

pytestmark = pytest.mark.e2e  # real servers and a bots run each


def test_one_and_two_gateways_run_side_by_side_pinned_with_every_server_process_counted(tmp_path):
    cpus = sorted(os.sched_getaffinity(0))
    server, bots = str(cpus[0]), str(cpus[-1])  # one CPU each (the same one on a 1-CPU machine)
    out = tmp_path / "capacity.json"
    cmd = [sys.executable, str(ROOT / "bench" / "capacity.py"), "--clients", "3", "--gateways", "1,2"]
    cmd += ["--npcs", "3", "--seconds", "2", "--warmup", "30", "--server-cpus", server, "--bots-cpus", bots]
    done = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(out.read_text())
    one, two = result["steps"]
    assert (one["gateways"], two["gateways"]) == (1, 2) and one["n"] == two["n"] == 3
    for row in (one, two):
        assert row["connected"] == 3 and row["server_affinity"] == [int(server)], row
        assert 0 < row["server_main_cpu_pct"] <= row["server_cpu_pct"], row
    # the server's tree: its decision worker beside the tick process, and with --gateways 2 two more
    assert two["server_processes"] == one["server_processes"] + 2, (one, two)
    assert two["server_cpu_pct"] > two["server_main_cpu_pct"]  # the gateways' CPU is in "server CPU"
    (pair,) = result["gateways_side_by_side"]
    assert pair["gateways"] == [2, 1] and pair["ratios"]["connected"] == 1.0
    assert "--gateways 2 vs --gateways 1" in done.stdout and f"servers on CPUs {server}" in done.stdout
