"""Dialogue through a real server and real WebSocket clients: a player talks
to an NPC; the reply streams back as say_start / say_delta / say_end, and a
player standing nearby sees the same line.

The first test uses the tiny random model (fast); the last one the real
default model (SmolLM2-135M-Instruct from its GGUF file), kept short.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3

import pytest

from support.npchelp import TAM
from support.talkhelp import Client, check_stream, conversation, find_npc, walk_to


@pytest.mark.asyncio
async def test_a_player_talks_and_the_reply_streams_to_them_and_a_bystander(npc_server, tmp_path):
    srv, _ = npc_server(
        {"tam.toml": TAM},
        "--dialogue-model",
        "tiny",
        "--dialogue-max-new-tokens",
        "12",
        "--memory-db",
        str(tmp_path / "memory.sqlite"),
    )
    tam, ana, bo, end = await conversation(srv, "Hello! What do you sell?", timeout=60)
    text = check_stream(tam, ana, end)
    assert [m["t"] for m in bo.says][0] == "say_start" and bo.says[-1]["text"] == text
    # A clean stop writes what NPCs remember: Tam remembers what Ana said and what he answered.
    assert srv.stop(signal.SIGTERM) == 0
    rows = (
        sqlite3.connect(tmp_path / "memory.sqlite")
        .execute("SELECT speaker, text FROM turns WHERE player = 'Ana' ORDER BY at")
        .fetchall()
    )
    assert ("player", "Hello! What do you sell?") in rows and any(who == "npc" for who, _ in rows), rows


@pytest.mark.asyncio
async def test_bad_talk_gets_an_error(npc_server):
    srv, _ = npc_server(None)
    p = await Client.join(srv.ws_url, "Ana")
    try:
        await p.send({"t": "talk", "npc": 12345, "text": "hi"})
        err = await p.until(lambda me, m: m["t"] == "error", what="error")
        assert err["code"] == "bad_target" and err["ref"] == "talk"
        await p.send({"t": "talk", "npc": 1, "text": "x" * 201})
        err = await p.until(lambda me, m: m["t"] == "error", what="error")
        assert err["code"] == "bad_field" and err["field"] == "text"
    finally:
        await p.close()


@pytest.mark.timeout(300)
@pytest.mark.asyncio
async def test_the_default_model_answers_through_a_real_server(npc_server, tmp_path):
    """The real SmolLM2-135M-Instruct, loaded from its GGUF file in a worker (the slow test: ~30 s of loading)."""
    srv, _ = npc_server(
        {"tam.toml": TAM},
        "--dialogue",
        "--dialogue-max-new-tokens",
        "16",
        "--dialogue-first-token-ms",
        "60000",
        "--memory-db",
        str(tmp_path / "memory.sqlite"),
    )
    tam, ana, bo, end = await conversation(srv, "Hello! What do you sell?", timeout=240)
    check_stream(tam, ana, end)


@pytest.mark.asyncio
async def test_one_npc_answers_two_players_at_once_and_both_hear_both(npc_server):
    """docs/protocol.md: each talk is its own conversation, whoever else talks to the NPC; every
    player near it receives every stream (keyed by id, `to` says whose); a say_end after a
    say_delta holds exactly what the delta held, and a conversation has at most one delta."""
    srv, _ = npc_server(
        {"tam.toml": TAM},
        "--dialogue-model",
        "tiny",
        "--dialogue-max-new-tokens",
        "12",
    )
    ana = await Client.join(srv.ws_url, "Ana")
    bo = await Client.join(srv.ws_url, "Bo")
    try:
        tam = await find_npc(ana, "Old Tam")
        await walk_to(ana, tam)
        await find_npc(bo, "Old Tam")
        await walk_to(bo, tam)
        await asyncio.gather(
            ana.send({"t": "talk", "npc": tam, "text": "Hello! What do you sell?"}),
            bo.send({"t": "talk", "npc": tam, "text": "Good day, Tam."}),
        )

        def both_ended(me, m):
            return sum(1 for s in me.says if s["t"] == "say_end") >= 2

        await asyncio.gather(
            ana.until(both_ended, timeout=60, what="two say_end (Ana)"),
            bo.until(both_ended, timeout=60, what="two say_end (Bo)"),
        )
        for p in (ana, bo):
            starts = {s["id"]: s for s in p.says if s["t"] == "say_start"}
            assert len(starts) == 2 and all(s["npc"] == tam for s in starts.values())
            assert sorted(s["to"] for s in starts.values()) == sorted([ana.id, bo.id])  # its own, and the other's
            streamed = 0
            for cid in starts:
                deltas = [s["text"] for s in p.says if s["t"] == "say_delta" and s["id"] == cid]
                end = next(s for s in p.says if s["t"] == "say_end" and s["id"] == cid)
                assert len(deltas) <= 1
                if deltas:
                    assert end["reason"] in ("done", "cut") and end["text"] == "".join(deltas)
                    streamed += 1
            assert streamed >= 1  # the tiny model answered at least one of them (not both fallback lines)
        # both heard the same lines
        lines = [{s["id"]: s["text"] for s in p.says if s["t"] == "say_end"} for p in (ana, bo)]
        assert lines[0] == lines[1]
    finally:
        await ana.close()
        await bo.close()
