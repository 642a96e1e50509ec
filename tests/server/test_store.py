"""The store on real SQLite files: schema and migrations, a checkpoint written by the writer thread
and loaded back, accounts, a failing write counted while the next one succeeds, `npcworld store`."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from server.store import Offer, Store, StoreError, schema
from world import checkpoint
from world.sim import NPC, PLAYER, World, WorldConfig

from world.tilemap import load_map
from support.paths import ROOT


def default_map():
    return load_map(ROOT / "assets" / "maps" / "default.tmj")


def wait_idle(store: Store) -> None:
    assert store.writer.wait(lambda w: w.idle(), 10), "the writer did not finish"


def small_world() -> tuple[World, list[int]]:
    w = World(default_map(), WorldConfig(seed=1))
    ids = [w.spawn(NPC, f"n{i}", "#888") for i in range(5)] + [w.spawn(PLAYER, "ada", "#fff")]
    w.set_stats(ids[0], {"energy": 42.0})
    for _ in range(40):
        w.step(0.05)
    return w, ids


def offer(w: World, ids: list[int], account: int) -> Offer:
    frame = checkpoint.copy(w)
    keys = {e: f"n#{e}" for e in frame.eid.tolist() if w.kind_of(e) == NPC}
    accounts = {e: account for e in frame.eid.tolist() if w.kind_of(e) == PLAYER}
    return Offer(frame, keys, accounts, "map", time.time())


def test_a_checkpoint_and_an_account_survive_closing_and_opening(tmp_path):
    path = str(tmp_path / "var" / "world.sqlite")  # its folder is created
    store = Store.open(path)
    assert store.saved is None and len(store.token_key) == 32
    accounts = store.start()
    ada = accounts.create("ada", time.time())
    accounts.give(ada, "apple")
    w, ids = small_world()
    store.writer.offer(offer(w, ids, ada.id))
    wait_idle(store)
    store.close()
    assert store.writer.written == 1 and store.writer.failed == 0

    again = Store.open(path)
    assert again.token_key == store.token_key  # tokens outlive restarts
    f = again.saved.frame
    assert f.tick == w.tick and f.time_s == w.time_s and len(f) == len(ids)
    row = f.row_of()[ids[0]]
    assert np.array_equal(f.columns["pos"], checkpoint.copy(w).columns["pos"])
    assert f.stats[row, list(f.stat_names).index("energy")] == pytest.approx(w.stats(ids[0])["energy"])
    acc = again.start().get(ada.id)
    assert acc.name == "ada" and acc.items == ["apple"]
    assert (acc.x, acc.y) == w.position(ids[-1])  # the player's position from the checkpoint
    again.close()


def test_a_newer_checkpoint_replaces_a_pending_one_and_a_failed_write_is_counted(tmp_path):
    path = str(tmp_path / "world.sqlite")
    store = Store.open(path)
    accounts = store.start()
    w, ids = small_world()
    # Another process's write transaction holds the lock: the writer waits BUSY_MS, fails, counts it.
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    store.writer.offer(offer(w, ids, 0))
    ada = accounts.create("ada", time.time())
    assert store.writer.wait(lambda w: w.failed >= 1, 10), "the locked write never failed"
    store.writer.offer(offer(w, ids, ada.id))
    store.writer.offer(offer(w, ids, ada.id))  # the writer is behind: this replaces the last
    assert store.writer.failed >= 1 and store.writer.replaced >= 1
    other.execute("ROLLBACK")
    other.close()
    wait_idle(store)
    assert store.writer.written >= 1
    store.close()
    reopened = Store.open(path)
    assert reopened.start().get(ada.id).name == "ada"  # the account row was kept and written later
    reopened.close()


def test_damaged_and_newer_stores_are_refused_with_a_reason(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(StoreError, match="not an SQLite database"):
        Store.open(str(junk))
    newer = tmp_path / "newer.sqlite"
    c = sqlite3.connect(newer)
    c.execute(f"PRAGMA user_version = {schema.VERSION + 1}")
    c.close()
    with pytest.raises(StoreError, match="newer than this npcworld"):
        Store.open(str(newer))
    with pytest.raises(StoreError, match="is a folder"):
        Store.open(str(tmp_path))


def test_an_older_schema_is_migrated(tmp_path):
    path = tmp_path / "v1.sqlite"
    c = sqlite3.connect(path, isolation_level=None)
    schema.migrate(c, 0, upto=1)
    c.execute(
        "INSERT INTO accounts (id, name, x, y, first_seen, last_seen) VALUES (7, 'old ada', 100, 120, 1, ?)",
        (time.time(),),
    )
    c.close()
    c = sqlite3.connect(path, isolation_level=None)  # and one whose every token has long expired
    c.execute(
        "INSERT INTO accounts (id, name, first_seen, last_seen) VALUES (8, 'long gone', 1, ?)", (time.time() - 3600,)
    )
    c.close()
    store = Store.open(str(path), token_expiry_s=600)
    accounts = store.start()
    acc = accounts.get(7)
    assert (acc.name, acc.x, acc.y, acc.items) == ("old ada", 100, 120, [])
    assert accounts.get(8) is None
    store.close()
    assert schema.version_of(sqlite3.connect(path)) == schema.VERSION


def npcworld(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_store_commands_info_backup_players_forget(tmp_path):
    path = str(tmp_path / "world.sqlite")
    store = Store.open(path)
    accounts = store.start()
    accounts.create("ada", time.time())
    accounts.create("bo", time.time())
    w, ids = small_world()
    store.writer.offer(offer(w, ids, 1))
    wait_idle(store)  # the store stays open, as a server keeps it
    info = npcworld("store", "--store", path, "info")
    assert info.returncode == 0, info.stderr
    assert f"version {schema.VERSION}" in info.stdout and "players    2" in info.stdout
    assert f"tick {w.tick}" in info.stdout and f"{len(ids)} entities" in info.stdout
    backup = tmp_path / "copy.sqlite"
    out = npcworld("store", "--store", path, "backup", str(backup))
    assert out.returncode == 0, out.stderr
    assert sqlite3.connect(backup).execute("SELECT name FROM accounts ORDER BY id").fetchall() == [("ada",), ("bo",)]
    assert npcworld("store", "--store", path, "backup", str(backup)).returncode == 1  # never overwrites
    listing = npcworld("store", "--store", path, "players")
    assert listing.returncode == 0 and "ada" in listing.stdout and "2 players" in listing.stdout
    assert npcworld("store", "--store", path, "forget", "bo").returncode == 0
    missing = npcworld("store", "--store", path, "forget", "bo")
    assert missing.returncode == 1 and "no player 'bo'" in missing.stderr and "Traceback" not in missing.stderr
    store.close()
    assert Store.open(str(backup)).saved.frame.tick == w.tick
    nothing = npcworld("store", "--store", str(tmp_path / "none.sqlite"), "info")
    assert nothing.returncode == 1 and "no store at" in nothing.stderr
