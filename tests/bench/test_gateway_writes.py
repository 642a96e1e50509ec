"""bench/gateway_writes.py runs: the gateway's own Connection on websockets' server connection, both
write paths, a few ticks (it once called Connection with the arguments of an older constructor)."""

from __future__ import annotations

import json
import subprocess
import sys

from support.paths import ROOT


def test_both_write_paths_run_and_report(tmp_path):
    out = tmp_path / "gateway_writes.json"
    cmd = [sys.executable, str(ROOT / "bench" / "gateway_writes.py"), "--clients", "4", "--blocks", "1", "--block", "2"]
    done = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    (row,) = json.loads(out.read_text())["rows"]
    assert row["clients"] == 4
    assert row["direct_us"] > 0 and row["websockets_us"] > 0  # each path wrote, and its flush was timed
    assert row["update_bytes_mean"] > 16  # an update's head and a body
