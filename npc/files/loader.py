"""Reading NPC files from disk: parse, locate, validate, compile hooks.

Blocking file I/O only (the server runs these in a worker thread with
asyncio.to_thread); nothing here touches the world or runs designer code.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from world.navigation import SPAWN_POI, place_names
from world.tilemap import TileMap

from npc import hooks
from npc.files.schema import Definition, Problem, validate
from npc.files.tomlpos import line_of, locate

MAX_FILE = 256 * 1024  # bytes; a bigger NPC file or hooks module is refused
_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


@dataclass
class Loaded:
    file: str
    definition: Definition | None
    problems: list[Problem] = field(default_factory=list)
    hooks_file: str | None = None  # the hooks module it names, even when broken


def free_at(tilemap: TileMap):
    """A check for spawn positions: free(x, y) -> why an entity cannot stand there, or None."""
    w, h = tilemap.world_size
    ts = tilemap.tile_size

    def free(x: float, y: float) -> str | None:
        if not (0 <= x < w and 0 <= y < h):
            return f"is outside the map (0..{w}, 0..{h})"
        if tilemap.blocked[int(y // ts), int(x // ts)]:
            return "is on a blocked tile"
        return None

    return free


def map_places(tilemap: TileMap) -> tuple[list[str], list[str]]:
    """(places NPCs can go to, places they can spawn at) of a map."""
    places = place_names(tilemap)
    spawn_points = places + ([SPAWN_POI] if SPAWN_POI in tilemap.pois and SPAWN_POI not in places else [])
    return places, spawn_points


def _read(path: Path, what: str) -> tuple[str | None, int, Problem | None]:
    try:
        st = path.stat()
        if st.st_size > MAX_FILE:
            return None, 0, Problem(str(path), 1, f"{what} is {st.st_size} bytes", f"at most {MAX_FILE} bytes")
        return path.read_text(encoding="utf-8"), st.st_mtime_ns, None
    except FileNotFoundError:
        return None, 0, Problem(str(path), 1, f"{what} not found", "an existing file")
    except UnicodeDecodeError as e:
        return None, 0, Problem(str(path), 1, f"{what} is not UTF-8 text ({e.reason})", "a UTF-8 text file")
    except OSError as e:
        return None, 0, Problem(str(path), 1, f"cannot read {what}: {e.strerror or e}", "a readable file")


def load_file(path: str | Path, places: list[str], spawn_points: list[str] | None = None, free=None) -> Loaded:
    """One NPC file and its hooks module; every problem found in either."""
    path = Path(path)
    file = str(path)
    text, mtime, problem = _read(path, "NPC file")
    if problem:
        return Loaded(file, None, [problem])
    assert text is not None  # read, since there is no problem
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = _TOML_POS.search(msg)
        line = int(m.group(1)) if m else (getattr(e, "lineno", None) or max(1, text.count("\n") + 1))
        return Loaded(
            file,
            None,
            [
                Problem(
                    file,
                    line,
                    f"not valid TOML: {_TOML_POS.sub('', msg).strip()}" + (f" (column {m.group(2)})" if m else ""),
                    "valid TOML",
                )
            ],
        )
    lines = locate(text)
    defn, problems = validate(data, lines, file, places, spawn_points, free=free)
    sources = [(file, mtime)]
    hooks_file = None
    code, names = None, frozenset[str]()
    name = data.get("hooks")
    if isinstance(name, str) and name.endswith(".py") and not Path(name).is_absolute() and ".." not in Path(name).parts:
        hp = path.parent / name
        hooks_file = str(hp)
        src, hmtime, problem = _read(hp, f"hooks module {data['hooks']!r}")
        if problem:
            problems.append(
                Problem(
                    file,
                    line_of(lines, ("hooks",)),
                    problem.message,
                    f"a Python file {data['hooks']!r} beside {path.name}",
                )
            )
        else:
            assert src is not None  # read, since there is no problem
            code, names, hook_problems = hooks.check_source(hooks_file, src)
            problems.extend(hook_problems)
            sources.append((hooks_file, hmtime))
    if problems or defn is None:
        return Loaded(file, None, problems, hooks_file)
    defn = replace(defn, hooks=hooks_file, hooks_code=code, hook_names=names, sources=tuple(sources))
    return Loaded(file, defn, [], hooks_file)


def npc_files(folder: str | Path) -> list[Path]:
    """The NPC files of a folder: *.toml, sorted by name (not recursive)."""
    return sorted(p for p in Path(folder).glob("*.toml") if p.is_file())


def load_files(paths: list[Path], places: list[str], spawn_points: list[str] | None = None, free=None) -> list[Loaded]:
    """Several NPC files; an id used by an earlier file is a problem in the later one."""
    out = [load_file(p, places, spawn_points, free) for p in paths]
    owner: dict[str, str] = {}
    for r in out:
        if r.definition is None:
            continue
        first = owner.setdefault(r.definition.id, r.file)
        if first != r.file:
            r.problems.append(duplicate(r, first))
            r.definition = None
    return out


def duplicate(r: Loaded, first: str) -> Problem:
    text = Path(r.file).read_text(encoding="utf-8", errors="replace")
    assert r.definition is not None  # only a loaded file can repeat an id
    return Problem(
        r.file,
        line_of(locate_safe(text), ("id",)),
        f"id {r.definition.id!r} is already used by {first}",
        "an id no other NPC file uses",
    )


def locate_safe(text: str) -> dict:
    try:
        return locate(text)
    except Exception:
        return {}
