"""The guard for making the think step cheaper: a seeded town of 600 NPCs of the shipped files, decided by
the shipped policy on a real pool (and the built-in, and the bard's hooks) for 60 ticks, decides exactly
what it decided when the digests were recorded (tests/support/decision_trace.json, recorded from the code
before the array work of session 13): intents, who decided and why, lines said, GET /npcs's reasons."""

from __future__ import annotations

import json

import pytest

from support import decision_trace


def test_a_seeded_town_decides_the_same_as_recorded():
    recorded = json.loads(decision_trace.RECORDED.read_text())
    if decision_trace.weights_digest() != recorded["weights"]:
        pytest.fail(
            "assets/policy/policy.safetensors changed since the decisions were recorded: check the change of "
            "behaviour is intended, then regenerate (tests/support/decision_trace.py says how)"
        )
    got = decision_trace.trace()
    assert got["missed"] == {"late": 0, "dropped": 0, "failed": 0, "skipped": 0}, got["missed"]
    assert got["policy_rows"] == recorded["policy_rows"] > 1000
    first = next((t for t, (a, b) in enumerate(zip(got["ticks"], recorded["ticks"])) if a != b), None)
    assert first is None, f"decisions differ from tick {first} of {len(got['ticks'])} on"
    assert got["ticks"] == recorded["ticks"]
    assert got["npcs"] == recorded["npcs"], "GET /npcs's who decided / why differ"
