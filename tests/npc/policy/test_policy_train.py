"""Training the policy and its check per file: randomised NPC files are valid
and varied; `npcworld train-policy` runs end to end on a tiny setting with
leave-one-file-out and held-out randomised files in its report; the guard
turns a policy down, with a reason, where it disagrees with the built-in,
and lets the shipped weights decide a shipped file."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from world.sim import World
from world.tilemap import load_map

from npc.policy import guard
from npc.policy.observe import ACTION_INDEX, ACTIONS
from npc.policy.randomise import random_definition
from support.paths import ROOT

MAP = ROOT / "assets" / "maps" / "default.tmj"


@pytest.fixture(scope="module")
def tilemap():
    return load_map(str(MAP))


@pytest.fixture(scope="module")
def shipped(tilemap):
    from npc.policy.train import shipped

    return {d.id: d for d in shipped(ROOT / "assets" / "npcs", tilemap)}


def test_randomised_files_are_valid_and_varied(tilemap):
    places = World(tilemap).places
    rng = np.random.default_rng(0)
    defs = [random_definition(rng, places, i) for i in range(400)]  # validated by construction
    assert len({d.id for d in defs}) == 400
    assert all(d.allowed & {"idle", "wander"} for d in defs)
    for a in ACTIONS:  # every action allowed somewhere...
        assert any(a in d.allowed for d in defs), a
    assert any(0 < d.weights[k] < 2.01 for d in defs for k in d.weights)
    assert any(d.weights[k] == 0 for d in defs for k in d.weights)  # ...weights of 0 included
    assert {len(d.needs) for d in defs} == {0, 1, 2, 3}
    assert {len(d.schedule) for d in defs} >= {0, 1, 2, 3, 4}
    assert any(b.do == "patrol" and len(b.route) > 1 for d in defs for b in d.schedule)
    assert {d.params["follow"]["who"] for d in defs} == {"players", "suspicious"}
    assert {d.params["flee"]["who"] for d in defs} == {"players", "suspicious"}
    assert any(d.params["give_item"]["items"] for d in defs if "give_item" in d.allowed)
    assert len({d.senses["notice"] for d in defs}) > 50


def test_train_policy_end_to_end_on_a_tiny_setting(tmp_path):
    out = tmp_path / "policy"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "server.cli",
            "train-policy",
            "--out",
            str(out),
            "--npcs",
            "12",
            "--players",
            "4",
            "--random-files",
            "4",
            "--held-out-files",
            "2",
            "--random-npcs",
            "2",
            "--synthetic-files",
            "40",
            "--synthetic-rows",
            "4",
            "--seconds",
            "6",
            "--epochs",
            "2",
            "--hidden",
            "16",
            "--lofo-epochs",
            "1",
            "--lofo-hidden",
            "8",
            "--seed",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "held-out agreement" in proc.stdout and "left out guard" in proc.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["decisions"] > 0 and report["labels_outside_mask"] == 0
    assert set(report["lofo"]["files"]) == {"bard", "blacksmith", "chicken", "guard", "merchant", "villager"}
    for v in report["lofo"]["files"].values():
        assert v["decisions"] > 0 and 0.0 <= v["action_top1"] <= 1.0 and 0.0 <= v["action_and_target"] <= 1.0
    held = report["held_out_randomised"]
    assert held["decisions"] > 0 and 0.0 <= held["action_top1"] <= 1.0
    assert report["held_out_files"] == 2 and report["synthetic_files"] == 40
    assert len(report["loss"]) == 2
    chart = ET.fromstring((out / "loss.svg").read_text())  # well-formed XML, an SVG root
    assert chart.tag == "{http://www.w3.org/2000/svg}svg"
    lines = chart.findall(".//{http://www.w3.org/2000/svg}polyline[@class='data']")
    assert len(lines) == 2 and all(len(ln.get("points").split()) == 2 for ln in lines)  # train, held: 2 epochs
    md = (out / "report.md").read_text()
    assert "leave one file out" in md and "randomised files" in md
    from npc.policy.model import build_policy

    model = build_policy(str(out / "policy.safetensors"), hidden=16)
    assert sum(p.numel() for p in model.parameters()) > 0


def test_train_policy_without_lofo(tmp_path):
    out = tmp_path / "policy"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "server.cli",
            "train-policy",
            "--out",
            str(out),
            "--npcs",
            "6",
            "--players",
            "2",
            "--random-files",
            "2",
            "--held-out-files",
            "1",
            "--random-npcs",
            "1",
            "--synthetic-files",
            "10",
            "--synthetic-rows",
            "2",
            "--seconds",
            "3",
            "--epochs",
            "1",
            "--hidden",
            "8",
            "--no-lofo",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((out / "report.json").read_text())["lofo"] is None


def always(action: str):
    def run(obs, mask, tmask):
        n = len(obs)
        return np.full(n, ACTION_INDEX[action]), np.zeros(n, np.int64)

    return run


def test_a_policy_that_always_idles_fails_the_guard_with_a_reason(tilemap, shipped):
    check = guard.agreement(shipped["guard"], tilemap, always("idle"))
    assert not check.ok and check.decisions > 100
    assert check.agreement < 0.5 and check.file.endswith("guard.toml")
    assert "below 95%" in check.reason and "the built-in behaviour decides" in check.reason
    assert f"of {check.decisions} decisions" in check.reason


def test_the_guard_takes_a_map_path_or_a_world_factory(tilemap, shipped):
    from world.sim import WorldConfig

    a = guard.agreement(shipped["chicken"], MAP, always("go_to"), seconds=10.0)
    b = guard.agreement(
        shipped["chicken"], lambda: World(tilemap, WorldConfig(day_length_s=60.0)), always("go_to"), seconds=10.0
    )
    assert a.decisions == b.decisions > 0 and a.agreement == b.agreement


def test_the_shipped_weights_pass_the_guard_for_shipped_files(tilemap, shipped):
    run = guard.local_runner()
    for name in ("merchant", "guard"):
        check = guard.agreement(shipped[name], tilemap, run)
        assert check.ok, check.reason
        assert "the policy decides" in check.reason and check.agreement >= guard.THRESHOLD
