"""docs/npc.schema.json (the editors' schema of the NPC file) is up to date with npc/files/schema.py,
and every shipped NPC file is valid under it (while a misspelt field or a wrong type is not).

The `jsonschema` package is not in this project's environment, so `conforms` below checks the
subset of JSON Schema that npc/files/editor_schema.py emits (and raises on any keyword it does not
know, so that the subset cannot silently grow past it)."""

from __future__ import annotations

import json
import re
import tomllib

import pytest

from npc.files import editor_schema
from support.paths import ROOT

SHIPPED = ROOT / "docs" / "npc.schema.json"
KNOWN = {
    "$schema",
    "$id",
    "title",
    "description",
    "type",
    "properties",
    "additionalProperties",
    "required",
    "items",
    "enum",
    "minimum",
    "maximum",
    "pattern",
    "oneOf",
    "propertyNames",
    "minItems",
    "maxItems",
    "uniqueItems",
    "default",
}
TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}


def problems(value, s: dict, where: str = "") -> list[str]:
    unknown = set(s) - KNOWN
    if unknown:
        raise AssertionError(f"keywords outside the checked subset: {unknown}")
    out: list[str] = []
    if "oneOf" in s:
        if sum(not problems(value, alt, where) for alt in s["oneOf"]) != 1:
            out.append(f"{where}: matches not exactly one of oneOf")
    t = s.get("type")
    if (
        t in TYPES
        and not isinstance(value, TYPES[t])
        or t == "integer"
        and (not isinstance(value, int) or isinstance(value, bool))
        or t == "number"
        and (not isinstance(value, (int, float)) or isinstance(value, bool))
    ):
        return out + [f"{where}: {value!r} is not of type {t}"]
    if "enum" in s and value not in s["enum"]:
        out.append(f"{where}: {value!r} not in {s['enum']}")
    if "minimum" in s and value < s["minimum"] or "maximum" in s and value > s["maximum"]:
        out.append(f"{where}: {value!r} out of range")
    if "pattern" in s and not re.search(s["pattern"], value):
        out.append(f"{where}: {value!r} does not match {s['pattern']}")
    if isinstance(value, dict):
        props = s.get("properties", {})
        for k in s.get("required", []):
            if k not in value:
                out.append(f"{where}: missing {k}")
        for k, v in value.items():
            if "propertyNames" in s:
                out += problems(k, s["propertyNames"], f"{where}.{k} (name)")
            if k in props:
                out += problems(v, props[k], f"{where}.{k}")
            elif s.get("additionalProperties") is False:
                out.append(f"{where}: unknown field {k!r}")
            elif isinstance(s.get("additionalProperties"), dict):
                out += problems(v, s["additionalProperties"], f"{where}.{k}")
    if isinstance(value, list) and "items" in s:
        for i, v in enumerate(value):
            out += problems(v, s["items"], f"{where}[{i}]")
    return out


def test_the_shipped_schema_is_what_the_declarations_make():
    assert SHIPPED.read_text() == editor_schema.text(), (
        "docs/npc.schema.json is out of date: .venv/bin/python -m npc.files.editor_schema > docs/npc.schema.json"
    )


@pytest.mark.parametrize("path", sorted((ROOT / "assets" / "npcs").glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_npc_file_is_valid_under_the_schema(path):
    s = json.loads(SHIPPED.read_text())
    assert problems(tomllib.loads(path.read_text()), s) == []


def test_the_schema_catches_what_an_editor_should_flag():
    s = json.loads(SHIPPED.read_text())
    good = {"name": "Bram", "speed": 80, "actions": {"allowed": ["idle", "talk"], "talk": {"distance": 60}}}
    assert problems(good, s) == []
    for bad in (
        {**good, "colour": "#fff"},  # misspelt field
        {**good, "speed": 1000},  # out of range
        {**good, "count": "six"},  # wrong type
        {**good, "actions": {"allowed": ["dance"]}},  # not an action
        {**good, "actions": {"allowed": ["idle"], "talk": {"distanse": 3}}},
        {"actions": {"allowed": ["idle"]}},
    ):  # name is required
        assert problems(bad, s), bad
