"""bench/gateway_ipc.py at a tiny N: the full run (real gateway and clients processes, bodies checked
against the tick process's) with its per-player profile of both sides, and --path (the server's own
code of the path, as an A/B of source trees runs it)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from support.paths import ROOT

BENCH = [sys.executable, str(ROOT / "bench" / "gateway_ipc.py"), "--npcs", "10", "--gateways", "2"]


@pytest.mark.e2e  # three processes, 2N sockets
def test_the_full_run_profiles_each_side_of_the_path_per_player(tmp_path):
    out = tmp_path / "ipc.json"
    cmd = [*BENCH, "--players", "8", "--ticks", "6", "--warmup", "4", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (row,) = json.loads(out.read_text())["rows"]
    assert row["players"] == 8 and row["ticks"] > 0
    assert all(us > 0 for us in row["profile_us"].values()), row["profile_us"]
    assert row["shipped_bytes_per_tick"] > 0 and row["gateway_written_bytes_per_tick"] > 0
    assert "per-player profile of the path at 8 players" in done.stdout


def test_path_runs_the_server_s_own_code_of_each_tree_taking_turns(tmp_path):
    out = tmp_path / "path.json"
    cmd = [*BENCH, "--path", str(ROOT), "--players", "20", "--ticks", "3", "--warmup", "1", "--rounds", "2"]
    done = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert [r["round"] for r in result["runs"]] == [0, 1]
    (summary,) = result["summary"]
    parts = summary["us"]
    assert set(parts) == {
        "tick: Gateways.update",
        "tick: Gateways.send (pack)",
        "gateway: Gateway.on_message (unpack, push)",
        "tick side",
    }
    assert all(v > 0 for v in parts.values()), parts


def test_path_runs_another_tree_s_server_not_this_one_s(tmp_path):
    """The other tree's run imports its own server/ (bench/world.py imports this tree's server.app
    first; the child drops it): a copy of server/ elsewhere runs as that tree."""
    import shutil

    other = tmp_path / "tree"
    shutil.copytree(ROOT / "server", other / "server", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "path.json"
    cmd = [*BENCH, "--path", str(ROOT), str(other), "--players", "10", "--ticks", "2", "--warmup", "1", "--rounds", "1"]
    done = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert {r["src"] for r in json.loads(out.read_text())["runs"]} == {str(ROOT), str(other.resolve())}
