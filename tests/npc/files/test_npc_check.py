"""`npcworld npc check`: exit status and one line per problem, with file and line."""

import re
import subprocess
import sys

from support.paths import ROOT
from support.npchelp import write

CLI = [sys.executable, "-m", "server.cli", "npc", "check"]
LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<message>.+) \(expected (?P<expected>.+)\)$")


def check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_the_example_npcs_pass():
    out = check()
    assert out.returncode == 0, out.stdout + out.stderr
    assert "OK" in out.stdout and "problem" not in out.stdout


def test_every_problem_is_printed_with_file_and_line(tmp_path):
    write(
        tmp_path / "smith.toml",
        """
        name = "Smith"
        hooks = "smith.py"

        [[schedule]]
        from = "26:00"
        to = "08:00"
        do = "work"
        at = "forgery"

        [actions]
        allowed = ["idle", "work", "juggle"]
    """,
    )
    write(
        tmp_path / "smith.py",
        """
        def on_decide(npc):
            npc.idle(
    """,
    )
    write(tmp_path / "bad.toml", 'name = "Bad"\n[actions\n')
    out = check(str(tmp_path), str(tmp_path / "smith.toml"))  # a file named twice is checked twice
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    problems = [LINE.match(line).groupdict() for line in lines[:-1]]
    got = {(p["file"].rsplit("/", 1)[-1], int(p["line"])) for p in problems}
    assert got == {("bad.toml", 2), ("smith.toml", 5), ("smith.toml", 8), ("smith.toml", 11), ("smith.py", 2)}
    assert any("unknown action 'juggle'" in p["message"] for p in problems)
    assert any("unknown point of interest 'forgery'" in p["message"] and "forge" in p["expected"] for p in problems)
    assert re.match(r"\d+ problem\(s\) in 3 of \d+ file\(s\)", lines[-1])


def test_a_path_that_is_not_there():
    out = check("no/such/dir")
    assert out.returncode == 1 and out.stdout.startswith("no/such/dir:1: not found (expected")


def test_check_says_who_will_decide_each_file(tmp_path):
    """The policy's guard runs as in the server: a plain file is measured, `decider = "builtin"` is not."""
    write(
        tmp_path / "knitter.toml",
        """
        name = "Knitter"
        spawn = "plaza"

        [[schedule]]
        from = "00:00"
        to = "24:00"
        do = "idle"
        at = "plaza"
        activity = "knitting"

        [actions]
        allowed = ["idle", "wander", "talk"]
    """,
    )
    write(
        tmp_path / "stubborn.toml",
        """
        name = "Stubborn"
        decider = "builtin"

        [actions]
        allowed = ["idle", "wander"]
    """,
    )
    out = check(str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    lines = {ln.split(": ", 1)[0]: ln.split(": ", 1)[1] for ln in out.stdout.splitlines() if ".toml: " in ln}
    assert 'decider = "builtin"' in lines[str(tmp_path / "stubborn.toml")]
    knitter = lines[str(tmp_path / "knitter.toml")]
    assert re.search(r"agrees with the built-in behaviour on [\d.]+% of \d+ decisions", knitter), knitter
    no_policy = check(str(tmp_path), "--no-policy")
    assert "agrees" not in no_policy.stdout and no_policy.returncode == 0
