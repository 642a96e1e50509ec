"""The entity record's `talks` field on the wire (docs/protocol.md, "update": an entity record is
`[id, kind, name, color, talks]`), as a client reads it: true for an NPC whose file allows `talk`,
false for players, for NPCs that do not talk and for generic wanderers; a `talk` to one that does
not talk is `bad_target`; and an edit that changes whether an NPC talks spawns it again with a new
id, so no record goes stale. A real server, a real WebSocket client, a real file edit."""

from __future__ import annotations

from support.npchelp import write
from support.wsclient import Player

TAM = """
    id = "tam"
    name = "Old Tam"
    spawn = "spawn"
    [actions]
    allowed = ["idle", "talk"]
    [actions.talk]
    reply = false
"""
HEN = """
    id = "hen"
    name = "Hen"
    spawn = "a"
    [actions]
    allowed = ["idle"]
"""


def by_name(p: Player, name: str) -> list | None:
    return next((rec for rec in p.known.values() if rec[2] == name), None)


async def test_the_record_says_who_talks_and_an_edit_that_changes_it_gives_a_new_id(npc_server):
    srv, folder = npc_server({"tam.toml": TAM, "hen.toml": HEN}, wanderers=1)
    p = await Player.join(srv.ws_url, "Ana")
    try:
        await p.until(
            lambda me, m: by_name(me, "Old Tam") and by_name(me, "Hen") and me.id in me.known and len(me.known) >= 4,
            what="Tam, the hen, a wanderer and me in view",
        )
        tam, hen, me = by_name(p, "Old Tam"), by_name(p, "Hen"), p.known[p.id]
        wanderers = [rec for rec in p.known.values() if rec[1] == 1 and rec[2] not in ("Old Tam", "Hen")]
        assert len(wanderers) == 1
        assert all(len(rec) == 5 for rec in p.known.values())
        assert [tam[1], tam[4]] == [1, True]
        assert [hen[1], hen[4]] == [1, False] and wanderers[0][4] is False
        assert [me[1], me[4]] == [0, False]

        await p.send({"t": "talk", "npc": hen[0], "text": "hello hen"})  # a record saying false: refused
        err = await p.until(lambda me, m: m["t"] == "error", what="an error for the hen")
        assert err["code"] == "bad_target" and err["ref"] == "talk"

        write(folder / "hen.toml", HEN.replace('["idle"]', '["idle", "talk"]'))  # the hen talks now
        await p.until(
            lambda me, m: hen[0] not in me.known and (by_name(me, "Hen") or [0] * 5)[4] is True,
            timeout=30,
            what="the hen gone and back, talking",
        )
        again = by_name(p, "Hen")
        assert again[0] != hen[0] and again[1] == 1
        assert by_name(p, "Old Tam") == tam  # the others keep their ids and records
    finally:
        await p.close()
