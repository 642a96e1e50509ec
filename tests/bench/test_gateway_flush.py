"""bench/gateway_flush.py at a tiny N: both trees' send and receive path in one process (this tree and a
copy of its server/ elsewhere, each on its own real picows connections), every figure there."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from support.paths import ROOT


@pytest.mark.e2e  # a clients process, 2N sockets
def test_both_trees_are_timed_on_their_own_connections_tick_by_tick(tmp_path):
    other = tmp_path / "tree"
    shutil.copytree(ROOT / "server", other / "server", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "flush.json"
    cmd = [sys.executable, str(ROOT / "bench" / "gateway_flush.py"), "--baseline-src", str(other)]
    cmd += ["--clients", "12", "--ticks", "4", "--warmup", "2", "--npcs", "10", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(out.read_text())
    trees = result["trees"]
    assert [t["src"] for t in trees.values()] == [str(ROOT), str(other)]
    for t in trees.values():
        assert len(t["us_per_conn_tick"]) == len(t["inbound_us_per_message"]) == 4
        assert all(us > 0 for us in t["us_per_conn_tick"] + t["push_us_per_conn_tick"] + t["inbound_us_per_message"])
    assert result["coalesced"] == [0, 0]
