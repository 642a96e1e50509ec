"""NPC files: every kind of mistake is reported with its file, its line and what was expected."""

import tomllib

import pytest

from npc.files.loader import free_at, load_file, load_files
from npc.files.tomlpos import line_of, locate
from support.npchelp import places_of, write
from support.paths import DEFAULT_MAP, ROOT
from world.tilemap import load_map

PLACES, SPAWNS = places_of()
FREE = free_at(load_map(DEFAULT_MAP))

GOOD = """
    id = "smith"
    name = "Brenna"
    color = "#c0603a"
    spawn = "forge"

    [persona]
    greeting = "Hello, {player}."
    fallback = ["Busy."]

    [needs.energy]
    start = 90
    rate = -2
    relief = "rest"
    at = "tavern"

    [[schedule]]
    from = "06:00"
    to = "18:00"
    do = "work"
    at = "forge"
    activity = "forging"

    [actions]
    allowed = [
        "idle",
        "work",
        "rest",
        "talk",
    ]
"""


def load(tmp_path, text, name="smith.toml"):
    return load_file(write(tmp_path / name, text), PLACES, SPAWNS, FREE)


def only(result):
    assert result.definition is None
    assert len(result.problems) == 1, [str(p) for p in result.problems]
    return result.problems[0]


def edit(old, new, text=GOOD):
    assert old in text
    return text.replace(old, new)


def test_a_good_file_loads(tmp_path):
    r = load(tmp_path, GOOD)
    assert r.problems == [] and r.definition.id == "smith"
    d = r.definition
    assert d.allowed == {"idle", "work", "rest", "talk"}
    assert d.schedule[0].start == 6 * 60 and d.schedule[0].at == "forge" and d.schedule[0].activity == "forging"
    assert d.needs[0].name == "energy" and d.needs[0].rate == -2.0 and d.needs[0].low == 30.0


def test_the_examples_are_valid():
    results = load_files(sorted((ROOT / "assets" / "npcs").glob("*.toml")), PLACES, SPAWNS)
    assert [str(p) for r in results for p in r.problems] == []
    assert len(results) >= 4 and any(r.definition.hooks for r in results)
    assert any(r.definition.count > 1 for r in results)


def test_the_hearing_radius_the_docs_state_is_what_the_shipped_npcs_hear():
    """README ("within its hearing radius: 6 tiles, 192 world units, for the shipped NPCs") and
    docs/protocol.md ("hearing radius (192 world units unless its NPC file says otherwise)") against
    the schema's default and every shipped NPC that talks (issue 13: the README once said 4 tiles)."""
    import re

    from npc.files.schema import SENSES

    readme = re.search(r"hearing radius: (\d+) tiles, (\d+) world units", (ROOT / "README.md").read_text())
    protocol = re.search(r"hearing radius \((\d+) world units", (ROOT / "docs" / "protocol.md").read_text())
    assert readme and protocol
    tiles, units = int(readme.group(1)), int(readme.group(2))
    assert units == tiles * 32 == int(protocol.group(1)) == SENSES["hear"]
    results = load_files(sorted((ROOT / "assets" / "npcs").glob("*.toml")), PLACES, SPAWNS)
    talkers = [r.definition for r in results if "talk" in r.definition.allowed]
    assert talkers and all(d.senses["hear"] == units for d in talkers)


def test_missing_field(tmp_path):
    p = only(load(tmp_path, edit('name = "Brenna"\n', "")))
    assert (p.line, p.message) == (1, "missing field 'name'")
    assert "name = " in p.expected and str(p).startswith(f"{tmp_path / 'smith.toml'}:1: missing field 'name' (expected")
    # a missing field of a table is reported at the table's header
    p = only(load(tmp_path, edit("rate = -2\n", "")))
    assert (p.line, p.message) == (10, "missing field 'needs.energy.rate'")


def test_wrong_type(tmp_path):
    p = only(load(tmp_path, edit("start = 90", 'start = "ninety"')))
    assert (p.line, p.message) == (11, "needs.energy.start is text")
    assert p.expected == "a number 0..100"
    p = only(load(tmp_path, edit('spawn = "forge"', 'spawn = "forge"\ncount = "six"')))
    assert (p.line, p.message, p.expected) == (5, "count is text", "a whole number 1..1000")


def test_unknown_action(tmp_path):
    p = only(load(tmp_path, edit('"talk",', '"tlak",')))
    assert p.line == 28 and p.message == "unknown action 'tlak'; did you mean 'talk'?"
    assert p.expected.startswith("one of idle, wander, go_to")


def test_bad_schedule_time(tmp_path):
    p = only(load(tmp_path, edit('to = "18:00"', 'to = "25:00"')))
    assert p.line == 18 and "to = '25:00'" in p.message and "00:00 .. 24:00" in p.expected
    p = only(load(tmp_path, edit('from = "06:00"', 'from = "6am"')))
    assert p.line == 17 and "'6am' is not a time" in p.message


def test_overlapping_schedule_blocks(tmp_path):
    extra = '[[schedule]]\nfrom = "17:00"\nto = "19:00"\ndo = "rest"\n\n[actions]'
    p = only(load(tmp_path, edit("[actions]", extra)))
    assert p.line == 24 and "overlaps the block at line 16" in p.message


def test_unknown_point_of_interest(tmp_path):
    p = only(load(tmp_path, edit('at = "forge"', 'at = "forje"')))
    assert (p.line, p.message) == (20, "unknown point of interest 'forje'; did you mean 'forge'?")
    assert "forge" in p.expected and "tavern" in p.expected
    p = only(load(tmp_path, edit('spawn = "forge"', 'spawn = "moon"')))
    assert p.line == 4 and "'moon'" in p.message


def test_a_spawn_position(tmp_path):
    r = load(tmp_path, edit('spawn = "forge"', "spawn = [1040, 1100.5]"))
    assert r.problems == [] and r.definition.spawn == (1040.0, 1100.5)
    p = only(load(tmp_path, edit('spawn = "forge"', "spawn = [5000, 10]")))
    assert p.line == 4 and "is outside the map" in p.message
    p = only(load(tmp_path, edit('spawn = "forge"', "spawn = [1, 1]")))  # the map's border wall
    assert p.line == 4 and "is on a blocked tile" in p.message
    p = only(load(tmp_path, edit('spawn = "forge"', 'spawn = ["x", 1]')))
    assert p.line == 4 and "is not a position" in p.message


def test_unknown_field_suggests_the_right_one(tmp_path):
    p = only(load(tmp_path, edit('color = "#c0603a"', 'colour = "#c0603a"')))
    assert (p.line, p.message) == (3, "unknown field 'colour'; did you mean 'color'?")


def test_an_action_used_but_not_allowed(tmp_path):
    p = only(load(tmp_path, edit('    "work",\n', "")))
    assert p.line == 19 and "'work', which is not in actions.allowed" in p.message


def test_toml_syntax_error(tmp_path):
    p = only(load(tmp_path, edit('to = "18:00"', 'to = "18:00')))
    assert p.line == 18 and p.message.startswith("not valid TOML") and p.expected == "valid TOML"


def test_every_problem_is_reported_at_once(tmp_path):
    text = edit('to = "18:00"', 'to = "99:00"', edit('"talk",', '"dance",', edit("start = 90", "start = 900")))
    r = load(tmp_path, text)
    assert sorted(p.line for p in r.problems) == [11, 18, 28]


HOOKS = """
    def on_spawn(npc):
        npc.memory["n"] = 0


    def on_decide(npc)
        npc.idle()
"""


def test_hook_module_syntax_error(tmp_path):
    write(tmp_path / "smith.py", HOOKS)
    p = only(load(tmp_path, 'hooks = "smith.py"\n' + GOOD.lstrip("\n")))
    assert p.file == str(tmp_path / "smith.py") and p.line == 5 and p.expected == "valid Python"
    assert str(p).startswith(f"{tmp_path / 'smith.py'}:5: ")


def test_hook_module_mistakes(tmp_path):
    write(
        tmp_path / "smith.py",
        HOOKS.replace("def on_decide(npc)", "def on_decid(npc):").replace("def on_spawn(npc):", "def on_hear(npc):"),
    )
    r = load(tmp_path, 'hooks = "smith.py"\n' + GOOD.lstrip("\n"))
    got = sorted((p.line, p.message) for p in r.problems)
    assert got == [(1, "on_hear takes 1 parameter(s)"), (5, "unknown hook 'on_decid'; did you mean 'on_decide'?")]
    p = only(load(tmp_path, 'hooks = "missing.py"\n' + GOOD.lstrip("\n")))
    assert p.line == 1 and "'missing.py' not found" in p.message


def test_duplicate_ids(tmp_path):
    a = write(tmp_path / "a.toml", GOOD)
    b = write(tmp_path / "b.toml", GOOD)
    ra, rb = load_files([a, b], PLACES, SPAWNS)
    assert ra.problems == [] and rb.definition is None
    assert rb.problems[0].line == 1 and "already used by" in rb.problems[0].message


@pytest.mark.parametrize(
    "text, path, line",
    [
        ("a = 1\n[t]\nb = 2\n", ("t", "b"), 3),
        ("[[s]]\nx = 1\n[[s]]\nx = 2\n[s.sub]\ny = 3\n", ("s", 1, "sub", "y"), 6),
        ('k = [\n  "a",\n  { b = """x\ny""" },\n  3,\n]\n', ("k", 2), 5),
        ('k = [\n  "a",\n  { b = """x\ny""" },\n  3,\n]\n', ("k", 1, "b"), 3),
        ('"quoted key" = 1\nd.e.f = 2\n', ("d", "e", "f"), 2),
        ('[t]\n# comment [not a table]\ns = "# not a comment"\nz = 1\n', ("t", "z"), 4),
    ],
)
def test_locate_finds_lines(text, path, line):
    tomllib.loads(text)
    assert line_of(locate(text), path) == line
