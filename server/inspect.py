"""GET /npcs/<id>: one NPC in detail (npc/minds/inspect.py), with what it remembers of the nearest player.

The dialogue memory lives in its own thread (npc/memory.py); its answer is
awaited here, off the tick, for at most RECALL_S (then: "memory": null and
"memory_note" says why).
"""

from __future__ import annotations

import asyncio

from npc.minds import inspect as npc_inspect

RECALL_S = 2.0


async def npc_detail(game, eid: int) -> dict:
    """KeyError when no NPC of an NPC file has that id."""
    out = npc_inspect.detail(game.cast, eid)
    near = out["nearest_player"]
    memory = getattr(game.dialogue, "memory", None)
    if near is not None:
        near["memory"], note = None, "no dialogue memory on this server (--memory-db)"
        if memory is not None:
            try:
                r = await asyncio.wait_for(
                    asyncio.wrap_future(memory.recall(f"{out['npc']}#{out['number']}", near["name"])), RECALL_S
                )
                near["memory"] = {"facts": list(r.facts), "turns": [list(t) for t in r.turns]}
                note = ""
            except TimeoutError:
                note = f"the memory did not answer within {RECALL_S:g} s"
        if note:
            near["memory_note"] = note
    return out
