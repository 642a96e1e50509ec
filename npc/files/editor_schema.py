"""A JSON Schema of the NPC file, for editors (TOML language servers such as Taplo and Even Better
TOML read one): docs/npc.schema.json, made from the declarations of npc/files/schema.py (FIELDS,
WEIGHTS, SENSES) and the action vocabulary (npc/actions.py).

    .venv/bin/python -m npc.files.editor_schema > docs/npc.schema.json

tests/npc/files/test_editor_schema.py checks that the shipped file is what this makes, and that every
shipped NPC file is valid under it. The schema is the editor's help (completion, hover, types,
ranges); `npcworld npc check` stays the judge (places of the map, schedule overlaps, hooks).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from npc import actions
from npc.files import schema

SCHEMA_ID = "https://npcworld.invalid/npc.schema.json"
_KINDS: dict[str, dict[str, Any]] = {
    "text": {"type": "string"},
    "texts": {"type": "array", "items": {"type": "string"}},
    "int": {"type": "integer"},
    "number": {"type": "number"},
    "bool": {"type": "boolean"},
    "place": {"type": "string"},
    "places": {"type": "array", "items": {"type": "string"}},
    "table": {"type": "object"},
    "tables": {"type": "array", "items": {"type": "object"}},
}


def _field(f) -> dict:
    if f.kind == "spawn":
        out: dict = {
            "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}]
        }
    elif f.kind == "choice":
        out = {"type": "string"}
    else:
        out = dict(_KINDS[f.kind])
    out["description"] = f.doc
    if getattr(f, "low", None) is not None:
        out["minimum"] = f.low
    if getattr(f, "high", None) is not None:
        out["maximum"] = f.high
    if f.choices:
        out["enum"] = list(f.choices)
    if getattr(f, "pattern", None):
        out["pattern"] = f.pattern
    return out


def _object(fields: dict, doc: str, extra: dict | None = None) -> dict:
    out: dict[str, Any] = {
        "type": "object",
        "description": doc,
        "additionalProperties": False,
        "properties": {k: _field(f) for k, f in fields.items()},
    }
    required = [k for k, f in fields.items() if getattr(f, "required", False)]
    if required:
        out["required"] = required
    for k, v in (extra or {}).items():
        out["properties"][k] = v
    return out


def _actions() -> dict:
    props: dict = {
        "allowed": {
            "type": "array",
            "description": "everything this NPC may ever do",
            "items": {"enum": list(actions.VOCABULARY)},
            "uniqueItems": True,
        }
    }
    for name, a in actions.VOCABULARY.items():
        params = {
            k: _field(schema.Field(p.kind, p.doc, p.low, p.high, tuple(p.choices)))
            if p.kind != "places"
            else {"type": "array", "items": {"type": "string"}, "description": p.doc}
            for k, p in a.params.items()
        }
        props[name] = {"type": "object", "description": a.doc, "additionalProperties": False, "properties": params}
    return {
        "type": "object",
        "description": "allowed actions and their parameters ([actions.<name>])",
        "additionalProperties": False,
        "required": ["allowed"],
        "properties": props,
    }


def make() -> dict:
    f = schema.FIELDS
    need = _object(
        f["need"],
        "a need: a level 0..100 that changes per game hour",
        {
            "during": {
                "type": "object",
                "additionalProperties": {"type": "number"},
                "description": f["need"]["during"].doc,
            }
        },
    )
    block = _object(
        f["block"],
        "a block of the schedule",
        {
            "at": {
                "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                "description": f["block"]["at"].doc,
            }
        },
    )
    top = _object(
        f[""],
        "An NPC of npcworld (docs/designers.md is the reference)",
        {
            "persona": _object(f["persona"], f[""]["persona"].doc),
            "needs": {
                "type": "object",
                "description": f[""]["needs"].doc,
                "additionalProperties": need,
                "propertyNames": {"pattern": schema.NEED_RE.pattern},
            },
            "schedule": {"type": "array", "description": f[""]["schedule"].doc, "items": block},
            "actions": _actions(),
            "weights": {
                "type": "object",
                "description": f[""]["weights"].doc,
                "additionalProperties": False,
                "properties": {
                    k: {"type": "number", "minimum": 0, "maximum": 100, "default": v} for k, v in schema.WEIGHTS.items()
                },
            },
            "senses": {
                "type": "object",
                "description": f[""]["senses"].doc,
                "additionalProperties": False,
                "properties": {
                    k: {"type": "number", "minimum": 0, "maximum": 4096, "default": v} for k, v in schema.SENSES.items()
                },
            },
        },
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "npcworld NPC file",
        **top,
    }


def text() -> str:
    return json.dumps(make(), indent=2) + "\n"


if __name__ == "__main__":
    sys.stdout.write(text())
