"""Players and the world survive restarts: real server processes, stopped with SIGTERM or killed
with SIGKILL, started again on the same SQLite store; real WebSocket clients; tokens signed,
rotated, expiring; a damaged store refused at start; a store that cannot be written mid-run."""

from __future__ import annotations

import asyncio
import math
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from support.npchelp import admin_of, call
from support.storehelp import GERDA
from support.storehelp import GERDA_ROWS as ROWS
from server import tokens
from server.store import schema
from support.wsclient import Player

from support.paths import ROOT
from support.servers import NPCWORLD

NPC_SPEED = 60.0  # world units per second (WorldConfig.npc_speed)
TICK_RATE = 20
SECRET = "test-secret"


@pytest.fixture
def gerda_server(npc_server, tmp_path):
    """A server on Gerda's map with her file and 6 wanderers, the built-in deciding, on the test's own store
    (tmp_path/world.sqlite): `gerda_server(*more_args)`; called again, it restarts on the same store.
    secret=None: no --secret (the key kept in the store signs tokens)."""

    def start(*extra: str, secret: str | None = SECRET, preexec_fn=None):
        key = ("--secret", secret) if secret else ()
        store = ("--store", str(tmp_path / "world.sqlite"))
        srv, _ = npc_server(
            {"gerda.toml": GERDA},
            "--decider",
            "builtin",
            *key,
            *store,
            *extra,
            rows=ROWS,
            wanderers=6,
            preexec_fn=preexec_fn,
        )
        return srv

    return start


async def npcs(srv) -> dict:
    url, token = admin_of(srv)
    status, body = await asyncio.to_thread(call, url + "npcs", "GET", token)
    assert status == 200, body
    return body


async def metric(srv, name: str) -> float:
    return (await asyncio.to_thread(srv.metrics)).get(name, 0.0)


async def settle(p: Player) -> tuple[float, float]:
    """Walk a little, stop, and return where we stand once the server applied the stop."""
    await p.move(1.0, 0.3)
    for _ in range(6):
        await p.recv()
    seq = await p.move(0.0, 0.0)
    await p.until(lambda me, m: m["t"] == "update" and me.ack >= seq and me.id in me.positions, what="the stop")
    await p.recv()
    return p.me()


def saved_checkpoint(path) -> tuple[int, dict[str, tuple[float, float]]]:
    """(tick, key -> position) of the store's last checkpoint, read from the file."""
    from server.store import _load_checkpoint

    conn = schema.connect(str(path), readonly=True)
    saved = _load_checkpoint(conn, str(path))
    conn.close()
    pos = saved.frame.columns["pos"]
    return saved.frame.tick, {k: (float(pos[i, 0]), float(pos[i, 1])) for i, k in enumerate(saved.keys.tolist()) if k}


def moved_at_most(a, b, ticks: int) -> bool:
    return math.dist(a, b) <= NPC_SPEED * max(ticks, 0) / TICK_RATE + 0.2  # 0.1: /npcs rounds positions


async def test_sigterm_then_restart_everyone_where_they_were_items_kept_tokens_rotated(gerda_server, tmp_path):
    srv = gerda_server("--checkpoint-s", "1")
    p = await Player.join(srv.ws_url, "ada")
    await p.until(lambda me, m: me.items, timeout=30, what="a gift from Gerda")
    assert p.items[0] in ("apple", "pear")
    here = await settle(p)
    items = list(p.items)
    assert srv.stop(signal.SIGTERM) == 0
    tick, saved = saved_checkpoint(tmp_path / "world.sqlite")
    assert "gerda#1" in saved and "wanderer#6" in saved

    srv = gerda_server("--checkpoint-s", "1")
    assert any(f"from the checkpoint of tick {tick}" in line for line in srv.output), srv.output
    body = await npcs(srv)
    assert body["tick"] >= tick  # the same tick and game time go on, not a fresh start
    for row in body["npcs"]:
        key = f"{row['npc']}#{row['number']}"
        assert moved_at_most(row["position"], saved[key], body["tick"] - tick), (row, saved[key])
    q = await Player.join(srv.ws_url, token=p.welcome["token"])
    assert q.welcome["resumed"] is True and q.welcome["name"] == "ada" and not q.errors
    assert q.items == items  # held across the restart, in welcome
    await q.until(lambda me, m: me.id in me.positions, what="an update with ada")
    assert q.me() == here  # exactly where ada stood
    # The used token stopped working when the resume replaced it; the new one works.
    used = await Player.join(srv.ws_url, token=p.welcome["token"])
    assert [e["code"] for e in used.errors] == ["bad_token"] and "already used" in used.errors[0]["message"]
    assert used.welcome["resumed"] is False
    account = int(q.welcome["token"].split(".")[0])
    gen = int(q.welcome["token"].split(".")[1])
    expired = tokens.issue(SECRET.encode(), account, gen, int(time.time()) - 5)  # genuine, but out of date
    forged = tokens.issue(b"not the key", account, gen, int(time.time()) + 3600)
    for token, why in ((expired, "expired"), (forged, "not signed by this server"), ("1.2.3", "not a token")):
        r = await Player.join(srv.ws_url, token=token)
        assert r.welcome["resumed"] is False and [e["code"] for e in r.errors] == ["bad_token"], r.errors
        assert why in r.errors[0]["message"]
        await r.close()
    await q.close()
    await used.close()


async def test_kill_9_loses_at_most_the_last_interval(gerda_server, tmp_path):
    srv = gerda_server("--checkpoint-s", "0.5")
    p = await Player.join(srv.ws_url, "bo")
    here = await settle(p)
    start = await metric(srv, "npcworld_store_checkpoints_written_total")
    while await metric(srv, "npcworld_store_checkpoints_written_total") < start + 2:  # two checkpoints since
        for _ in range(5):
            await p.recv()
    before = await npcs(srv)
    committed = await metric(srv, "npcworld_store_last_checkpoint_tick")
    assert srv.stop(signal.SIGKILL) == -signal.SIGKILL
    info = subprocess.run(
        [*NPCWORLD, "store", "--store", str(tmp_path / "world.sqlite"), "info"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert info.returncode == 0 and "checkpoint tick" in info.stdout, info.stderr  # readable after kill -9

    srv = gerda_server("--checkpoint-s", "0.5")
    m = next(
        re.search(r"from the checkpoint of tick (\d+)", line)
        for line in srv.output
        if "from the checkpoint of tick" in line
    )
    tick = int(m.group(1))
    assert tick >= committed  # nothing committed was lost
    after = await npcs(srv)
    old = {(r["npc"], r["number"]): r for r in before["npcs"]}
    for row in after["npcs"]:
        was = old[(row["npc"], row["number"])]
        # where it was when we looked before the kill, give or take the ticks between that look,
        # the checkpoint and this one (NPCs walk at most NPC_SPEED)
        assert moved_at_most(row["position"], was["position"], abs(tick - before["tick"]) + after["tick"] - tick)
    q = await Player.join(srv.ws_url, token=p.welcome["token"])
    assert q.welcome["resumed"] is True and q.welcome["name"] == "bo"
    await q.until(lambda me, m: me.id in me.positions, what="an update with bo")
    assert q.me() == here  # bo stood still since before the last checkpoints
    await q.close()


def test_a_damaged_store_stops_the_start_with_a_clear_error(tmp_path):
    junk = tmp_path / "world.sqlite"
    junk.write_bytes(b"\x00garbage, not SQLite\xff" * 512)
    before = junk.read_bytes()
    run = subprocess.run(
        [*NPCWORLD, "serve", "--port", "0", "--no-dialogue", "--store", str(junk)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1
    assert "not an SQLite database" in run.stderr and str(junk) in run.stderr
    assert "Traceback" not in run.stderr + run.stdout and "serving" not in run.stdout
    assert junk.read_bytes() == before  # left as it was, for the operator to look at


async def test_an_old_store_is_migrated_and_a_store_that_cannot_be_written_does_not_stop_the_game(
    gerda_server, tmp_path
):
    # A store of schema version 1 (no items yet) with an account and its signing key.
    path = tmp_path / "world.sqlite"
    c = sqlite3.connect(path, isolation_level=None)
    schema.migrate(c, 0, upto=1)
    key = b"k" * 32
    c.execute("INSERT INTO meta (key, value) VALUES ('token_key', ?)", (key,))
    c.execute(
        "INSERT INTO accounts (id, name, x, y, first_seen, last_seen) VALUES (7, 'old ada', 300, 230, 1, ?)",
        (time.time(),),
    )
    c.close()
    srv = gerda_server("--checkpoint-s", "0.2", secret=None)  # the key kept in the store signs tokens
    old = await Player.join(srv.ws_url, token=tokens.issue(key, 7, 0, int(time.time()) + 60))
    assert old.welcome["resumed"] is True and old.welcome["name"] == "old ada" and old.welcome["items"] == []
    await old.until(lambda me, m: me.id in me.positions, what="an update with old ada")
    assert old.me() == (300.0, 230.0)
    assert schema.version_of(sqlite3.connect(path)) == schema.VERSION

    # Another process holds the store's write lock: every write fails (counted), the game goes on.
    while await metric(srv, "npcworld_store_checkpoints_written_total") < 1:
        await old.recv()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
                "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); sys.stdin.read()"
            ),
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        ticks = old.last_tick
        while await metric(srv, "npcworld_store_writes_failed_total") < 2:
            await old.recv()
        assert old.last_tick > ticks  # updates kept coming while the writes failed
        newcomer = await Player.join(srv.ws_url, "newcomer")  # and players can still join
        await newcomer.recv()
        written = await metric(srv, "npcworld_store_checkpoints_written_total")
    finally:
        holder.stdin.close()  # the lock goes with the process
        holder.wait(10)
    while await metric(srv, "npcworld_store_checkpoints_written_total") <= written:
        await old.recv()
    assert any("a write failed" in line for line in srv.output)
    assert srv.proc.poll() is None
    await newcomer.close()
    await old.close()


async def test_the_browser_shows_the_items_it_holds_and_keeps_them_on_a_reload(gerda_server):
    pytest.importorskip("playwright.async_api")
    from support.chromium import CHROMIUM, chromium_page, wait_connected

    if not shutil.which(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM}")
    srv = gerda_server()
    async with chromium_page(srv.http_url) as (page, page_errors):
        await wait_connected(page)
        # Gerda notices the browser's player and gives it an item
        await page.wait_for_function(
            "/items: (apple|pear)/.test(document.getElementById('items').textContent)", timeout=30_000
        )
        shown = await page.text_content("#items")
        me = await page.evaluate("window.npcworld.myId")
        await page.reload()  # the token in localStorage resumes the same player
        await wait_connected(page)
        await page.wait_for_function(
            "window.npcworld.welcome && window.npcworld.welcome.resumed === true", timeout=20_000
        )
        assert await page.text_content("#items") == shown  # from welcome: held, not re-given
        assert await page.evaluate("window.npcworld.welcome.name") and me
        assert page_errors == []


async def test_a_full_disk_mid_run_is_counted_and_the_game_goes_on(gerda_server, tmp_path):
    """A real limit on the size of the files the server may write (RLIMIT_FSIZE, as a full disk: the
    write fails with EFBIG; Python ignores SIGXFSZ): once the store's log reaches it, writes fail."""
    import resource

    limit = 256 * 1024  # bytes: a few dozen checkpoints of this small world

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    srv = gerda_server("--checkpoint-s", "0.05", "--memory-db", str(tmp_path / "mem.sqlite"), preexec_fn=small_disk)
    try:
        p = await Player.join(srv.ws_url, "ada")
        while await metric(srv, "npcworld_store_writes_failed_total") < 3:
            await p.recv()
        ticks = p.last_tick
        for _ in range(20):  # a second more of updates: the game goes on
            await p.recv()
        assert p.last_tick >= ticks + 20
        late = await Player.join(srv.ws_url, "late")  # joins still work (their rows wait for a write)
        await late.recv()
        assert any("a write failed" in line for line in srv.output)
        assert await metric(srv, "npcworld_store_checkpoints_written_total") >= 1
        await late.close()
        await p.close()
    finally:
        assert srv.stop(signal.SIGTERM) == 0  # a clean stop still, after giving up on the last write
