"""The `talk` scenario against a real server (dialogue off: NPCs answer with their
files' fallback lines, which is what --no-dialogue serves)."""

from __future__ import annotations

import json

from support.botshelp import clean, metrics, run_bots, wait_for


def test_talk_bots_find_npcs_that_talk_and_the_report_has_their_replies(launch, tmp_path):
    srv = launch("--npcs", "10")  # 10 wanderers, which do not talk, beside the NPC files' cast
    res = run_bots(
        "--url",
        srv.ws_url,
        "--clients",
        "3",
        "--ramp",
        "0.5",
        "--duration",
        "8",
        "--scenario",
        "talk",
        "--report",
        str(tmp_path),
    )
    assert res.returncode == 0, res.stdout + res.stderr
    clean(res.stdout, res.stderr)
    talk = json.loads((tmp_path / "report.json").read_text())["summary"]["talk"]
    assert talk["replies"] >= 1 and talk["sent"] >= talk["replies"]
    assert talk["reasons"] == {"fallback": talk["replies"]} and talk["fallback_share"] == 1.0
    assert talk["ttft_n"] == 0 and talk["ttft_p50"] is None  # fallback lines come whole, with no say_delta
    assert talk["reply_p50"] is not None and talk["reply_p99"] >= talk["reply_p50"]
    # asking tells talkers from the silent: only bad_target (silent), too_far (walk closer) or nothing
    assert set(talk["refused"]) <= {"bad_target", "too_far"}
    assert "NPC fallback share" in res.stdout and "100.0 %" in res.stdout
    wait_for(lambda: metrics(srv)["npcworld_connections"] == 0, "the server to see every bot leave")
    m = metrics(srv)
    assert m["npcworld_dialogue_total{event=fallback}"] >= talk["replies"]
