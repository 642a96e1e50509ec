"""`npcworld npc check [PATHS]`: validate NPC files without starting a server.

Prints every problem as `file:line: message (expected ...)`, then a summary.
Exit status: 0 no problems, 1 any problem, 2 the map could not be loaded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from world.tilemap import MapError, load_map

from npc.hooks import check_source
from npc.files.loader import MAX_FILE, free_at, load_files, map_places, npc_files
from npc.files.schema import Problem

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIR = ROOT / "assets" / "npcs"
DEFAULT_MAP = ROOT / "assets" / "maps" / "default.tmj"


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "npc", help="NPC files: check, new, places, talk", description="Tools for NPC files (docs/designers.md)."
    )
    npc_sub = p.add_subparsers(dest="npc_command", metavar="NPC_COMMAND")
    c = npc_sub.add_parser(
        "check",
        help="validate NPC files; print every error with file and line",
        description="Validate NPC files (*.toml) and their hooks modules. Prints every "
        "problem as file:line: message (expected ...). Exit status 1 on any problem.",
    )
    c.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help=f"NPC files or folders of them (default: {DEFAULT_DIR.relative_to(ROOT)})",
    )
    c.add_argument(
        "--map",
        default=str(DEFAULT_MAP),
        metavar="FILE",
        help="the map whose points of interest the files name (default: the default map)",
    )
    c.add_argument(
        "--policy",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also check that the learned policy follows each valid file, as the server does when "
        "the file loads (default: on when the policy weights exist)",
    )
    n = npc_sub.add_parser(
        "new",
        help="write a commented template NPC file that passes npc check",
        description="Write NAME's NPC file (a commented template) into the NPC folder.",
    )
    n.add_argument("name", metavar="NAME", help="the NPC's name, as players see it; the file is named after it")
    n.add_argument("--dir", default=str(DEFAULT_DIR), metavar="FOLDER", help="where (default: assets/npcs)")
    n.add_argument("--spawn", default="plaza", metavar="PLACE", help="where it appears (default: plaza)")
    pl = npc_sub.add_parser(
        "places",
        help="list the map's places (where NPCs can go)",
        description="List the places of a map: its Tiled poi layer and its .places.toml.",
    )
    pl.add_argument("--map", default=str(DEFAULT_MAP), metavar="FILE", help="the map (default: the default map)")
    p.npc_sub = npc_sub  # type: ignore[attr-defined]  # server/cli.py adds `talk` (an admin API client)
    return p


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from npc.files import commands

    command = getattr(args, "npc_command", None)
    if command == "new":
        return commands.new(args.name, Path(args.dir), args.spawn)
    if command == "places":
        return commands.places(args.map)
    if command != "check":
        parser.print_help()
        return 2
    return check(args.paths or [str(DEFAULT_DIR)], args.map, policy=args.policy)


def check(paths: list[str], map_path: str, out=None, policy: bool = False) -> int:
    out = out or sys.stdout
    try:
        tilemap = load_map(map_path)
    except MapError as e:
        print(f"npcworld npc check: {e}", file=sys.stderr)
        return 2
    places, spawn_points = map_places(tilemap)
    tomls: list[Path] = []
    problems: list[Problem] = []
    modules: list[Path] = []
    missing = 0
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            tomls += npc_files(p)
        elif p.is_file() and p.suffix == ".py":
            modules.append(p)
        elif p.is_file():
            tomls.append(p)
        else:
            missing += 1
            problems.append(Problem(raw, 1, "not found", "an NPC file (.toml), a hooks module (.py) or a folder"))
    results = load_files(tomls, places, spawn_points, free_at(tilemap))
    for r in results:
        problems += r.problems
    named = {r.hooks_file for r in results}
    for m in modules:
        if str(m) in named:
            continue
        if m.stat().st_size > MAX_FILE:
            problems.append(Problem(str(m), 1, f"hooks module is {m.stat().st_size} bytes", f"at most {MAX_FILE}"))
            continue
        problems += check_source(str(m), m.read_text(encoding="utf-8", errors="replace"))[2]
    for problem in problems:
        print(problem, file=out)
    files = len(tomls) + len(modules) + missing
    bad = len({p.file for p in problems})
    if problems:
        print(f"{len(problems)} problem(s) in {bad} of {files} file(s)", file=out)
        return 1
    npcs = sum(r.definition.count for r in results if r.definition)
    print(f"{files} file(s) OK ({npcs} NPC(s))", file=out)
    if policy:
        _policy(results, tilemap, out)
    return 0


def _policy(results, tilemap, out) -> None:
    """Who will decide each file's NPCs in the server: the guard's verdict, as the server logs it."""
    from npc.policy import guard
    from npc.policy.model import DEFAULT_WEIGHTS
    from npc.policy.observe import OBS_DIM
    from npc.policy.weights import weights_input

    if not DEFAULT_WEIGHTS.is_file() or weights_input(str(DEFAULT_WEIGHTS)) != OBS_DIM:
        print(
            "policy: no weights for today's observation layout: the built-in behaviour decides every file "
            "(npcworld train-policy)",
            file=out,
        )
        return
    run = guard.local_runner()
    for r in results:
        d = r.definition
        if d is None:
            continue
        if d.decider == "builtin":
            print(f'{d.file}: decider = "builtin": the built-in behaviour decides', file=out)
        elif d.hook_names & {"on_decide", "on_event"}:
            print(f"{d.file}: has on_decide/on_event hooks: hooks and the built-in behaviour decide", file=out)
        else:
            print(f"{d.file}: {guard.agreement(d, tilemap, run).reason}", file=out)
