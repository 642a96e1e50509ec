"""The NPC file schema: what a designer writes in assets/npcs/<id>.toml, checked.

`validate(data, lines, file, places)` takes the parsed TOML, its key -> line
map (npc/tomlpos.py) and the map's places, and returns a `Definition` or the
list of every `Problem` found (each with file, line, what is wrong and what
was expected). docs/designers.md is the reference for every field; keep the
two in step.
"""

from __future__ import annotations

import difflib
import re
import string
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType
from typing import Any

from world.clock import MINUTES_PER_DAY, parse_clock
from world.protocol import MAX_NAME  # the wire protocol's limit on names, in characters

from npc import actions
from npc.files.tomlpos import line_of

MAX_LINE = 200  # characters; the wire protocol's limit on chat lines
MAX_COUNT = 1000  # NPCs per archetype file
MAX_VOICE = 12  # persona.voice lines (each within max_reply): the prompt shows them all
MAX_LORE = 16  # persona.lore facts, each at most MAX_LORE_LINE characters: ~1,000 prompt tokens at most
MAX_LORE_LINE = 160
ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
NEED_RE = re.compile(r"^[a-z][a-z0-9_]{0,23}$")
COLOR_RE = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")

WEIGHTS = {  # what each weight scales in the built-in behaviour (npc/minds/builtin.py)
    "schedule": 1.0,  # the current schedule block
    "needs": 1.0,  # a need being tended: times (1 + urgency)
    "talk": 1.5,  # greeting a player who came near
    "give_item": 1.6,  # giving to a player who came near
    "follow": 1.2,  # following a (suspicious) player
    "approach": 0.6,  # walking up to a player
    "flee": 2.0,  # running from a player too close
    "wander": 0.3,  # baseline
    "idle": 0.1,  # baseline
}
SENSES = {"notice": 160.0, "hear": 192.0}  # world units: who the NPC notices / hears


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    message: str
    expected: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message} (expected {self.expected})"

    def as_dict(self) -> dict:
        return {
            "file": self.file,
            "line": self.line,
            "message": self.message,
            "expected": self.expected,
            "text": str(self),
        }


@dataclass(frozen=True)
class Persona:
    who: str = ""  # who they are (for the dialogue model)
    knows: tuple[str, ...] = ()  # what they know
    style: str = ""  # how they speak
    greeting: str = "Hello, {player}."  # said when greeting a player
    thinking: str = "Hmm..."  # shown while the dialogue model is slow
    fallback: tuple[str, ...] = ("I have nothing to say right now.",)  # when no model answers
    max_reply: int = MAX_LINE  # characters of any reply
    first_token_ms: float | None = (
        None  # dialogue: the thinking line shows if no word came by then; None: server default
    )
    voice: tuple[str, ...] = ()  # example lines in their own voice (the model imitates them; a checked
    # reply that fails is replaced by one of them)
    lore: tuple[str, ...] = ()  # what they know of the world: places, people, prices (one fact a line)
    leave: str = "I have to go, {player}."  # said when a need or the talk's `hold` ends a conversation


@dataclass(frozen=True)
class Need:
    name: str
    start: float  # 0..100 at spawn
    rate: float  # change per game hour, always
    low: float  # below this the NPC starts tending it...
    full: float  # ...and keeps at it until it is back at this
    weight: float  # scales this need's score
    relief: str | None  # the action that tends it
    at: str | None  # where
    activity: str | None  # activity label while tending it
    during: dict[str, float]  # extra change per game hour while the activity (or action) is the key


@dataclass(frozen=True)
class Block:
    start: int  # minutes since midnight, inclusive
    end: int  # minutes since midnight, exclusive; end < start wraps past midnight
    do: str
    at: str | None
    route: tuple[str, ...]  # patrol: the places in turn
    activity: str
    line: int

    def covers(self, minute: float) -> bool:
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end

    @property
    def label(self) -> str:
        return f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"


@dataclass(frozen=True)
class Definition:
    id: str
    file: str
    name: str  # may hold {n}: the instance number of an archetype
    color: str
    sprite: str | None
    spawn: str | tuple[float, float] | None  # a place, a position (world units), or None: a random place
    count: int
    persona: Persona
    needs: tuple[Need, ...]
    schedule: tuple[Block, ...]
    allowed: frozenset[str]
    params: dict[str, dict[str, Any]]  # every action's parameters, defaults filled in
    weights: dict[str, float]
    senses: dict[str, float]
    hooks: str | None = None  # path of the hooks module
    hooks_code: CodeType | None = field(default=None, compare=False)
    hook_names: frozenset[str] = frozenset()
    sources: tuple[tuple[str, int], ...] = ()  # (path, mtime_ns) of the file and its hooks module
    decider: str = "auto"  # DECIDERS: who decides its NPCs
    speed: float | None = None  # world units/s when walking; None: the world's npc_speed

    def instance_name(self, n: int) -> str:
        return self.name.replace("{n}", str(n))

    def block_at(self, minute: float) -> Block | None:
        for b in self.schedule:
            if b.covers(minute):
                return b
        return None


def default_color(npc_id: str) -> str:
    h = zlib.crc32(npc_id.encode()) / 0xFFFFFFFF
    import colorsys

    r, g, b = colorsys.hls_to_rgb(h, 0.55, 0.6)
    return "#%02x%02x%02x" % (int(r * 255), int(g * 255), int(b * 255))


_TYPE_NAMES = {
    str: "text",
    int: "a whole number",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "a table",
}


def _type_name(v: Any) -> str:
    return _TYPE_NAMES.get(type(v), type(v).__name__)


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(str(word), list(options), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def placeholders(text: str) -> set[str]:
    try:
        return {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
    except ValueError:
        return {"<unbalanced braces>"}


class _Checker:
    def __init__(self, data: dict, lines: dict, file: str, places: list[str], spawn_points: list[str]):
        self.data = data
        self.lines = lines
        self.file = file
        self.places = places
        self.spawn_points = spawn_points
        self.problems: list[Problem] = []

    def err(self, path: tuple, message: str, expected: str) -> None:
        self.problems.append(Problem(self.file, line_of(self.lines, path), message, expected))

    def where(self, path: tuple) -> str:
        parts: list[str] = []
        for p in path:
            if isinstance(p, int):
                parts[-1] = f"{parts[-1]}[{p}]" if parts else f"[{p}]"
            else:
                parts.append(p)
        return ".".join(parts)

    def keys(self, table: dict, path: tuple, known) -> None:
        for k in table:
            if k not in known:
                self.err(
                    path + (k,),
                    f"unknown field {self.where(path + (k,))!r}{_suggest(k, known)}",
                    "one of " + ", ".join(known),
                )

    def table(self, path: tuple, value: Any) -> dict | None:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.err(path, f"{self.where(path)} is {_type_name(value)}", f"a table [{self.where(path)}]")
            return None
        return value

    def get(
        self,
        table: dict,
        path: tuple,
        key: str,
        kind: str,
        default: Any = None,
        required: bool = False,
        low: float | None = None,
        high: float | None = None,
        expected: str = "",
    ) -> Any:
        """table[key] checked as `kind` ("text", "int", "number", "bool", "texts"); default when absent."""
        p = path + (key,)
        what = self.where(p)
        want = (
            expected
            or {
                "text": "text in quotes",
                "int": "a whole number",
                "number": "a number",
                "bool": "true or false",
                "texts": "a list of texts in quotes",
            }[kind]
        )
        rng = ""
        if low is not None and high is not None:
            rng = f" {low:g}..{high:g}"
        elif low is not None:
            rng = f" >= {low:g}"
        if key not in table:
            if required:
                self.err(path, f"missing field {what!r}", f"{what} = {want}{rng}")
            return default
        v = table[key]
        ok = {
            "text": isinstance(v, str),
            "int": isinstance(v, int) and not isinstance(v, bool),
            "number": isinstance(v, (int, float)) and not isinstance(v, bool),
            "bool": isinstance(v, bool),
            "texts": isinstance(v, list) and all(isinstance(x, str) for x in v),
        }[kind]
        if not ok:
            self.err(p, f"{what} is {_type_name(v)}", want + rng)
            return default
        if kind in ("int", "number"):
            if (low is not None and v < low) or (high is not None and v > high):
                self.err(p, f"{what} = {v!r} is out of range", f"{want}{rng}")
                return default
            return float(v) if kind == "number" else v
        if kind == "texts":
            return list(v)
        return v

    def place(self, path: tuple, value: Any, points: list[str] | None = None) -> str | None:
        points = self.places if points is None else points
        if not isinstance(value, str):
            self.err(path, f"{self.where(path)} is {_type_name(value)}", "the name of a point of interest in quotes")
            return None
        if value not in points:
            self.err(
                path,
                f"unknown point of interest {value!r}{_suggest(value, points)}",
                "one of " + ", ".join(points) if points else "a map with points of interest",
            )
            return None
        return value

    def line_text(self, path: tuple, text: str, allowed: set[str]) -> None:
        bad = placeholders(text) - allowed
        if bad:
            self.err(
                path,
                f"{self.where(path)} has unknown placeholder(s) " + ", ".join("{" + b + "}" for b in sorted(bad)),
                "only " + (", ".join("{" + a + "}" for a in sorted(allowed)) or "plain text"),
            )


SPEED = (5.0, 240.0)  # world units/s: an NPC file's `speed` (the world's default is 60; players run at 160)


@dataclass(frozen=True)
class Field:
    """One field of an NPC file, as editors see it (docs/npc.schema.json is made from these tables,
    npc/files/editor_schema.py) and as the checks below name it (their key lists)."""

    kind: str  # "text", "texts", "int", "number", "bool", "place", "spawn", "table", "tables", "list"
    doc: str
    low: float | None = None
    high: float | None = None
    choices: tuple = ()
    pattern: str | None = None
    required: bool = False


FIELDS: dict[str, dict[str, Field]] = {
    "": {
        "id": Field("text", "unique id (default: the file name without .toml)", pattern=ID_RE.pattern),
        "name": Field("text", "the name players see, 1..24 characters; {n}: the instance number", required=True),
        "color": Field("text", 'the colour clients draw it in: "#rrggbb" or "#rgb"', pattern=COLOR_RE.pattern),
        "sprite": Field("text", "reserved for clients that draw sprites"),
        "spawn": Field("spawn", "where it appears: a place of the map, or [x, y] in world units"),
        "count": Field("int", "an archetype: this many NPCs from one file", 1, MAX_COUNT),
        "speed": Field("number", "walking speed, world units per second (default 60; players run at 160)", *SPEED),
        "hooks": Field("text", 'a Python file of hooks beside this one, e.g. "bard.py"'),
        "decider": Field(
            "text",
            "who decides: auto (the learned policy when it follows the file) or builtin",
            choices=("auto", "builtin"),
        ),
        "persona": Field("table", "for dialogue: who it is and how it speaks"),
        "needs": Field("table", "needs by name: levels 0..100 that change per game hour"),
        "schedule": Field("tables", "a day in blocks ([[schedule]])"),
        "actions": Field("table", "allowed actions and their parameters", required=True),
        "weights": Field("table", "the built-in behaviour's weights"),
        "senses": Field("table", "notice and hear radii, world units"),
    },
    "persona": {
        "who": Field("text", "who they are (for the dialogue model)"),
        "knows": Field("texts", "what they know about"),
        "style": Field("text", "how they speak"),
        "greeting": Field("text", "said when greeting a player who comes near; {player}, {name}"),
        "thinking": Field("text", "shown when the model's first words are slow"),
        "fallback": Field("texts", "said in turn when answering without a model"),
        "max_reply": Field("int", "longest line, in characters", 1, MAX_LINE),
        "first_token_ms": Field(
            "number", "how long it may take to start answering before its thinking line", 1, 60_000
        ),
        "voice": Field("texts", f"example lines in its own voice (at most {MAX_VOICE})"),
        "lore": Field("texts", f"facts of the world it knows, one a line (at most {MAX_LORE})"),
        "leave": Field("text", "said when it ends a conversation itself"),
    },
    "need": {
        "start": Field("number", "level at spawn", 0, 100),
        "rate": Field("number", "change per game hour, always", -1000, 1000, required=True),
        "low": Field("number", "below this it starts tending the need", 0, 100),
        "full": Field("number", "...until it is back here", 0, 100),
        "weight": Field("number", "how much this need matters against the others", 0, 100),
        "relief": Field("text", "the action that tends it (must be allowed)"),
        "at": Field("place", "where it tends it"),
        "activity": Field("text", "the activity label while tending it"),
        "during": Field("table", "extra change per game hour while doing an activity (or action), by name"),
    },
    "block": {
        "from": Field("text", 'start, "HH:MM" (included)', pattern=r"^\d\d:\d\d$", required=True),
        "to": Field(
            "text", 'end, "HH:MM" (excluded; before from: past midnight)', pattern=r"^\d\d:\d\d$", required=True
        ),
        "do": Field("text", "an action (must be allowed)", required=True),
        "at": Field("place", "where: a place, or a list of places for patrol"),
        "activity": Field("text", "the label admins see and `during` rates key on"),
    },
}
TOP = tuple(FIELDS[""])
DECIDERS = {  # the top-level `decider` key: who decides the file's NPCs
    "auto": "the learned policy, when its check on this file passes (npc/policy/guard.py); else the built-in",
    "builtin": "always the built-in behaviour (and hooks)",
}


def validate(
    data: dict,
    lines: dict,
    file: str,
    places: list[str],
    spawn_points: list[str] | None = None,
    stem: str | None = None,
    free=None,
) -> tuple[Definition | None, list[Problem]]:
    """Check one parsed NPC file; (Definition, []) or (None, every problem).

    `free(x, y)` says why an entity cannot stand at (x, y) (None: it can); without it a
    spawn position is only checked to be two numbers.
    """
    c = _Checker(data, lines, file, places, spawn_points if spawn_points is not None else places)
    c.keys(data, (), TOP)
    stem = stem if stem is not None else Path(file).stem

    npc_id = c.get(
        data, (), "id", "text", default=stem, expected="text in quotes: lowercase letters, digits, _ or -, at most 40"
    )
    if isinstance(npc_id, str) and not ID_RE.match(npc_id):
        c.err(
            ("id",),
            f"id {npc_id!r} is not a valid id",
            "lowercase letters, digits, _ or -, at most 40, starting with a letter or digit",
        )
    count = c.get(data, (), "count", "int", default=1, low=1, high=MAX_COUNT)
    name = c.get(data, (), "name", "text", required=True, expected=f'name = "display name", 1..{MAX_NAME} characters')
    if isinstance(name, str):
        if count and count > 1 and "{n}" not in name:
            name = name + " {n}"
        longest = name.replace("{n}", str(count or 1))
        if not 1 <= len(longest.strip()) <= MAX_NAME:
            c.err(
                ("name",),
                f"name {longest!r} is {len(longest)} characters",
                f"1..{MAX_NAME} characters (with {{n}} replaced by the instance number)",
            )
        c.line_text(("name",), name, {"n"})
    color = c.get(data, (), "color", "text", default=None, expected='a colour "#rrggbb" or "#rgb"')
    if isinstance(color, str) and not COLOR_RE.match(color):
        c.err(("color",), f"color {color!r} is not a colour", '"#rrggbb" or "#rgb", e.g. "#c0603a"')
        color = None
    sprite = c.get(data, (), "sprite", "text", default=None)
    speed = c.get(data, (), "speed", "number", default=None, low=SPEED[0], high=SPEED[1])
    spawn: str | tuple[float, float] | None = None
    if isinstance(data.get("spawn"), list):
        xy = data["spawn"]
        if len(xy) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in xy):
            c.err(("spawn",), f"spawn = {xy!r} is not a position", "[x, y] in world units, or a place")
        elif free is not None and (why := free(float(xy[0]), float(xy[1]))):
            c.err(("spawn",), f"spawn = {xy!r} {why}", "a free position on the map, or a place")
        else:
            spawn = (float(xy[0]), float(xy[1]))
    elif "spawn" in data:
        spawn = c.place(("spawn",), data["spawn"], c.spawn_points)
    hooks = c.get(data, (), "hooks", "text", default=None, expected='a Python file beside this one, e.g. "bard.py"')
    want = " or ".join(f'"{k}"' for k in DECIDERS)
    decider = c.get(data, (), "decider", "text", default="auto", expected=want)
    if decider not in DECIDERS:
        c.err(
            ("decider",),
            f"decider = {decider!r} is not a decider{_suggest(decider, DECIDERS)}",
            f"{want}: auto lets the policy decide when its check passes, builtin never",
        )
        decider = "auto"
    if isinstance(hooks, str):
        hp = Path(hooks)
        if hp.is_absolute() or ".." in hp.parts or hp.suffix != ".py":
            c.err(
                ("hooks",),
                f"hooks = {hooks!r} is not a Python file beside this one",
                'a file name ending in .py in the same folder, e.g. "bard.py"',
            )
            hooks = None

    # persona
    persona = Persona()
    pt = c.table(("persona",), data.get("persona"))
    if pt is not None:
        c.keys(pt, ("persona",), tuple(FIELDS["persona"]))
        max_reply = c.get(pt, ("persona",), "max_reply", "int", default=MAX_LINE, low=1, high=MAX_LINE)
        fallback = c.get(pt, ("persona",), "fallback", "texts", default=list(Persona.fallback))
        if isinstance(fallback, list) and not fallback:
            c.err(("persona", "fallback"), "persona.fallback is empty", "at least one line")
            fallback = list(Persona.fallback)
        persona = Persona(
            who=c.get(pt, ("persona",), "who", "text", default=""),
            knows=tuple(c.get(pt, ("persona",), "knows", "texts", default=[])),
            style=c.get(pt, ("persona",), "style", "text", default=""),
            greeting=c.get(pt, ("persona",), "greeting", "text", default=Persona.greeting),
            thinking=c.get(pt, ("persona",), "thinking", "text", default=Persona.thinking),
            fallback=tuple(fallback),
            max_reply=max_reply,
            first_token_ms=c.get(pt, ("persona",), "first_token_ms", "number", default=None, low=1.0, high=60_000.0),
            voice=tuple(_lines(c, pt, "voice", MAX_VOICE, max_reply or MAX_LINE, "an example line")),
            lore=tuple(_lines(c, pt, "lore", MAX_LORE, MAX_LORE_LINE, "one fact")),
            leave=c.get(pt, ("persona",), "leave", "text", default=Persona.leave),
        )
        for key in ("greeting", "thinking", "leave"):
            if key in pt and isinstance(pt[key], str):
                c.line_text(("persona", key), pt[key], {"player", "name"})
        for key in ("fallback", "voice", "lore"):
            for i, line in enumerate(getattr(persona, key)):
                c.line_text(("persona", key, i), line, {"player", "name"})

    # actions
    allowed: set[str] = set()
    params: dict[str, dict] = {a: actions.defaults(a) for a in actions.VOCABULARY}
    at = c.table(("actions",), data.get("actions"))
    vocab = list(actions.VOCABULARY)
    if at is not None:
        c.keys(at, ("actions",), ["allowed", *vocab])
        raw = c.get(
            at,
            ("actions",),
            "allowed",
            "texts",
            required=True,
            expected='allowed = ["idle", "wander", ...], names from the action vocabulary',
        )
        for i, a in enumerate(raw or []):
            if a not in actions.VOCABULARY:
                c.err(
                    ("actions", "allowed", i), f"unknown action {a!r}{_suggest(a, vocab)}", "one of " + ", ".join(vocab)
                )
            else:
                allowed.add(a)
        if raw is not None and allowed and not allowed & set(actions.BASELINE):
            c.err(
                ("actions", "allowed"),
                "allowed has neither 'idle' nor 'wander'",
                "at least one of them: what the NPC does when nothing else applies",
            )
        for a in vocab:
            if a in at:
                t = c.table(("actions", a), at[a])
                if t is None:
                    continue
                spec = actions.VOCABULARY[a].params
                c.keys(t, ("actions", a), list(spec) or ["(no parameters)"])
                for k, prm in spec.items():
                    if prm.kind == "choice":
                        v = c.get(
                            t,
                            ("actions", a),
                            k,
                            "text",
                            default=prm.default,
                            expected="one of " + ", ".join(f'"{x}"' for x in prm.choices),
                        )
                        if v not in prm.choices:
                            c.err(
                                ("actions", a, k),
                                f"actions.{a}.{k} = {v!r} is not a choice",
                                "one of " + ", ".join(f'"{x}"' for x in prm.choices),
                            )
                            v = prm.default
                    elif prm.kind == "places":
                        v = c.get(
                            t,
                            ("actions", a),
                            k,
                            "texts",
                            default=list(prm.default),
                            expected="a list of points of interest",
                        )
                        v = [p for i, x in enumerate(v) if (p := c.place(("actions", a, k, i), x))]
                    else:
                        v = c.get(t, ("actions", a), k, prm.kind, default=prm.default, low=prm.low, high=prm.high)
                    params[a][k] = v
                if a == "give_item" and "line" in t and isinstance(t["line"], str):
                    c.line_text(("actions", a, "line"), t["line"], {"player", "item", "name"})
        if "give_item" in allowed and not params["give_item"]["items"]:
            c.err(
                ("actions", "give_item") if "give_item" in at else ("actions", "allowed"),
                "give_item is allowed but has no items",
                '[actions.give_item] items = ["bread", ...]',
            )

    def check_allowed(path: tuple, action: str, what: str) -> None:
        if action in actions.VOCABULARY and allowed and action not in allowed:
            c.err(
                path,
                f"{what} uses {action!r}, which is not in actions.allowed",
                f"{action!r} added to allowed, or another action",
            )

    # needs
    needs: list[Need] = []
    nt = c.table(("needs",), data.get("needs"))
    activity_labels: set[str] = set(vocab) | set(actions.BUILTIN_ACTIVITIES)
    with_hooks = isinstance(data.get("hooks"), str)  # hooks may label activities freely
    schedule_raw = data.get("schedule")
    if isinstance(schedule_raw, list):
        activity_labels |= {
            b["activity"] for b in schedule_raw if isinstance(b, dict) and isinstance(b.get("activity"), str)
        }
    if isinstance(nt, dict):
        activity_labels |= {
            v["activity"] for v in nt.values() if isinstance(v, dict) and isinstance(v.get("activity"), str)
        }
        for nname, spec in nt.items():
            path = ("needs", nname)
            if not NEED_RE.match(nname):
                c.err(path, f"need name {nname!r} is not valid", "lowercase letters, digits or _, at most 24")
            s = c.table(path, spec)
            if s is None:
                continue
            c.keys(s, path, tuple(FIELDS["need"]))
            start = c.get(s, path, "start", "number", default=100.0, low=0, high=100)
            rate = c.get(
                s,
                path,
                "rate",
                "number",
                required=True,
                low=-1000,
                high=1000,
                expected="a change per game hour, e.g. -5",
            )
            low = c.get(s, path, "low", "number", default=30.0, low=0, high=100)
            full = c.get(s, path, "full", "number", default=80.0, low=0, high=100)
            if low is not None and full is not None and full < low:
                c.err(path + ("full",), f"needs.{nname}.full = {full:g} is below low = {low:g}", "full >= low")
            weight = c.get(s, path, "weight", "number", default=1.0, low=0, high=100)
            relief = c.get(
                s, path, "relief", "text", default=None, expected='an action that tends this need, e.g. "rest"'
            )
            if relief is not None and relief not in actions.PLACE_ACTIONS:
                c.err(
                    path + ("relief",),
                    f"needs.{nname}.relief = {relief!r} cannot tend a need",
                    "one of " + ", ".join(actions.PLACE_ACTIONS),
                )
                relief = None
            if relief:
                check_allowed(path + ("relief",), relief, f"needs.{nname}.relief")
            where = c.place(path + ("at",), s["at"]) if "at" in s else None
            if relief in ("go_to", "patrol") and where is None and "at" not in s:
                c.err(path, f"needs.{nname}.relief = {relief!r} needs a place", f'needs.{nname}.at = "<place>"')
            activity = c.get(s, path, "activity", "text", default=None)
            during: dict[str, float] = {}
            dt_ = c.table(path + ("during",), s.get("during"))
            for label, v in (dt_ or {}).items():
                if label not in activity_labels and label != activity and not with_hooks:
                    c.err(
                        path + ("during", label),
                        f"needs.{nname}.during names unknown activity {label!r}{_suggest(label, activity_labels)}",
                        "an action name, a built-in activity ("
                        + ", ".join(actions.BUILTIN_ACTIVITIES)
                        + ") or an activity used in the schedule or by a need",
                    )
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    during[label] = float(v)
                else:
                    c.err(
                        path + ("during", label),
                        f"needs.{nname}.during.{label} is {_type_name(v)}",
                        "a change per game hour, e.g. 20",
                    )
            if all(x is not None for x in (start, rate, low, full, weight)):
                needs.append(Need(nname, start, rate, low, full, weight, relief, where, activity, during))

    # schedule
    blocks: list[Block] = []
    if schedule_raw is not None and not isinstance(schedule_raw, list):
        c.err(
            ("schedule",),
            f"schedule is {_type_name(schedule_raw)}",
            "blocks written as [[schedule]] tables with from, to, do",
        )
    for i, b in enumerate(schedule_raw if isinstance(schedule_raw, list) else []):
        path = ("schedule", i)
        what = f"schedule block {i + 1}"
        b = c.table(path, b)
        if b is None:
            continue
        c.keys(b, path, tuple(FIELDS["block"]))
        times = []
        for key in ("from", "to"):
            if key not in b:
                c.err(path, f"{what} has no {key!r}", f'{key} = "HH:MM"')
                continue
            try:
                times.append(parse_clock(b[key]))
            except ValueError as e:
                c.err(path + (key,), f"{what}: {key} = {b[key]!r}: {e}", '"HH:MM", 00:00 .. 24:00')
        do = c.get(b, path, "do", "text", required=True, expected='an action, e.g. do = "work"')
        if do is not None and do not in actions.PLACE_ACTIONS:
            c.err(
                path + ("do",),
                f"{what}: do = {do!r} is not an action a schedule can use{_suggest(do, actions.PLACE_ACTIONS)}",
                "one of " + ", ".join(actions.PLACE_ACTIONS),
            )
            do = None
        if do:
            check_allowed(path + ("do",), do, what)
        where = None
        route: tuple[str, ...] = ()
        if "at" in b:
            if isinstance(b["at"], list):
                if do != "patrol":
                    c.err(path + ("at",), f'{what}: a list of places is only for do = "patrol"', "one place")
                route = tuple(p for k, x in enumerate(b["at"]) if (p := c.place(path + ("at", k), x)))
                if do == "patrol" and not b["at"]:
                    c.err(path + ("at",), f"{what}: the patrol route is empty", "at least one place")
            else:
                where = c.place(path + ("at",), b["at"])
                route = (where,) if where and do == "patrol" else ()
        if do == "go_to" and "at" not in b:
            c.err(path, f'{what}: do = "go_to" needs a place', 'at = "<place>"')
        if do == "patrol" and "at" not in b and not params["patrol"]["route"]:
            c.err(
                path, f'{what}: do = "patrol" needs a route', 'at = ["place", "place", ...] or [actions.patrol] route'
            )
        if do == "patrol" and not route:
            route = tuple(params["patrol"]["route"])
        activity = c.get(b, path, "activity", "text", default=None)
        if len(times) == 2 and do:
            start, end = times[0] % MINUTES_PER_DAY, times[1] or MINUTES_PER_DAY  # 24:00 = 00:00 = midnight
            if start == end:
                c.err(
                    path + ("to",),
                    f"{what} is empty: from = {b['from']!r}, to = {b['to']!r}",
                    "a `to` different from `from`",
                )
                continue
            blk = Block(start, end, do, where, route, activity or do, line_of(c.lines, path))
            for other in blocks:
                if _overlap(blk, other):
                    c.err(
                        path + ("from",),
                        f"{what} ({blk.label}) overlaps the block at line {other.line} ({other.label})",
                        "blocks that do not overlap",
                    )
                    break
            blocks.append(blk)

    # weights, senses
    weights = dict(WEIGHTS)
    wt = c.table(("weights",), data.get("weights"))
    if wt is not None:
        c.keys(wt, ("weights",), list(WEIGHTS))
        for k in WEIGHTS:
            weights[k] = c.get(wt, ("weights",), k, "number", default=WEIGHTS[k], low=0, high=100)
    senses = dict(SENSES)
    st = c.table(("senses",), data.get("senses"))
    if st is not None:
        c.keys(st, ("senses",), list(SENSES))
        for k in SENSES:
            senses[k] = c.get(st, ("senses",), k, "number", default=SENSES[k], low=0, high=4096)

    if c.problems:
        return None, c.problems
    defn = Definition(
        id=npc_id,
        file=file,
        name=name,
        color=color or default_color(npc_id),
        sprite=sprite,
        spawn=spawn,
        count=count,
        persona=persona,
        needs=tuple(needs),
        schedule=tuple(blocks),
        allowed=frozenset(allowed),
        params=params,
        weights=weights,
        senses=senses,
        hooks=hooks,
        decider=decider,
        speed=speed,
    )
    return defn, []


def _lines(c: _Checker, pt: dict, key: str, most: int, longest: int, what: str) -> list[str]:
    """persona.voice / persona.lore: at most `most` lines, each 1..`longest` characters."""
    lines = c.get(pt, ("persona",), key, "texts", default=[])
    if len(lines) > most:
        c.err(("persona", key, most), f"persona.{key} has {len(lines)} lines", f"at most {most}")
    for i, line in enumerate(lines):
        if not 1 <= len(line.strip()) <= longest:
            c.err(
                ("persona", key, i),
                f"persona.{key}[{i}] is {len(line.strip())} characters",
                f"{what} of 1..{longest} characters",
            )
    return [line.strip() for line in lines[:most]]


def _minutes(b: Block) -> list[tuple[int, int]]:
    if b.start < b.end:
        return [(b.start, b.end)]
    return [(b.start, MINUTES_PER_DAY), (0, b.end)]


def _overlap(a: Block, b: Block) -> bool:
    return any(s1 < e2 and s2 < e1 for s1, e1 in _minutes(a) for s2, e2 in _minutes(b))
