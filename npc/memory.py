"""What NPCs remember of players, in SQLite (the embedded store).

Per (NPC, player): the recent turns of their conversations and short facts
("Ana said: I like apples"). Keys are stable across restarts: the NPC's
file id and instance number ("merchant#1") and the player's name, so an NPC
remembers a returning player after the server restarts.

All database work runs on one thread of its own, with its own connection:
the tick only queues work (`remember`) or asks for a future (`recall`) and
never waits on the disk. The file and its tables are created on first start.

Bounds: the newest `max_turns` turns and `max_facts` facts are kept per
(NPC, player); older ones are deleted as new ones are written. The queue of
pending work holds at most `max_queue` items; beyond it, `remember` drops the
write (counted in `dropped`) rather than grow without bound, and `recall`
answers an empty memory at once.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("npcworld.memory")

SCHEMA = """
CREATE TABLE IF NOT EXISTS turns (
    npc TEXT NOT NULL, player TEXT NOT NULL, at REAL NOT NULL,
    speaker TEXT NOT NULL CHECK (speaker IN ('player', 'npc')), text TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS turns_by_pair ON turns (npc, player, at);
CREATE TABLE IF NOT EXISTS facts (
    npc TEXT NOT NULL, player TEXT NOT NULL, at REAL NOT NULL, fact TEXT NOT NULL,
    PRIMARY KEY (npc, player, fact));
"""


@dataclass
class Recall:
    turns: list[tuple[str, str]] = field(default_factory=list)  # (speaker, text), oldest first
    facts: list[str] = field(default_factory=list)  # oldest first


class Memory:
    def __init__(self, path: str | Path, max_turns: int = 20, max_facts: int = 8, max_queue: int = 10_000):
        self.path = str(path)
        self.max_turns = max_turns
        self.max_facts = max_facts
        self.max_queue = max_queue
        self.dropped = 0
        self.written = 0
        self._q: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> "Memory":
        """Open (creating) the database on the memory thread. Raises here if it cannot be opened."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="npcworld-memory", daemon=True)
            self._thread.start()
            self._ready.wait()
            if self._error is not None:
                raise RuntimeError(f"memory database {self.path}: {self._error}") from self._error
        return self

    def close(self) -> None:
        """Write what is queued, then stop (blocks; at shutdown, off the tick)."""
        if self._thread is not None:
            self._q.put(None)
            self._thread.join(10)
            self._thread = None

    # -- the tick's side (never blocks) --------------------------------------------------

    def recall(self, npc: str, player: str) -> "concurrent.futures.Future[Recall]":
        fut: concurrent.futures.Future = concurrent.futures.Future()
        if self._thread is None or self._q.qsize() >= self.max_queue:
            fut.set_result(Recall())
        else:
            self._q.put(("recall", npc, player, fut))
        return fut

    def remember(self, npc: str, player: str, turns: list[tuple[str, str]], facts: Iterable[str] = ()) -> None:
        if self._thread is None or self._q.qsize() >= self.max_queue:
            self.dropped += 1
            return
        self._q.put(("remember", npc, player, list(turns), list(facts)))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written (tests, shutdown)."""
        fut: concurrent.futures.Future = concurrent.futures.Future()
        if self._thread is None:
            return True
        self._q.put(("flush", fut))
        try:
            fut.result(timeout)
            return True
        except concurrent.futures.TimeoutError:
            return False

    # -- the memory thread ---------------------------------------------------------------

    def _run(self) -> None:
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
        except Exception as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                item = self._q.get()
                if item is None:
                    return
                try:
                    self._do(db, item)
                except Exception:
                    log.exception("memory: %s failed", item[0])
                    if item[0] in ("recall", "flush") and not item[-1].done():
                        item[-1].set_result(Recall() if item[0] == "recall" else None)
        finally:
            db.close()

    def _do(self, db: sqlite3.Connection, item: tuple) -> None:
        kind = item[0]
        if kind == "recall":
            _, npc, player, fut = item
            turns = db.execute(
                "SELECT speaker, text FROM turns WHERE npc=? AND player=? ORDER BY at DESC, rowid DESC LIMIT ?",
                (npc, player, self.max_turns),
            ).fetchall()
            facts = db.execute(
                "SELECT fact FROM facts WHERE npc=? AND player=? ORDER BY at, rowid LIMIT ?",
                (npc, player, self.max_facts),
            ).fetchall()
            fut.set_result(Recall([(s, t) for s, t in reversed(turns)], [f for (f,) in facts]))
        elif kind == "remember":
            _, npc, player, turns, facts = item
            now = time.time()
            db.execute("BEGIN")
            db.executemany(
                "INSERT INTO turns VALUES (?, ?, ?, ?, ?)",
                [(npc, player, now + i * 1e-6, s, t) for i, (s, t) in enumerate(turns)],
            )
            db.executemany("INSERT OR REPLACE INTO facts VALUES (?, ?, ?, ?)", [(npc, player, now, f) for f in facts])
            db.execute(
                "DELETE FROM turns WHERE npc=? AND player=? AND rowid NOT IN (SELECT rowid FROM turns "
                "WHERE npc=? AND player=? ORDER BY at DESC, rowid DESC LIMIT ?)",
                (npc, player, npc, player, self.max_turns),
            )
            db.execute(
                "DELETE FROM facts WHERE npc=? AND player=? AND rowid NOT IN (SELECT rowid FROM facts "
                "WHERE npc=? AND player=? ORDER BY at DESC, rowid DESC LIMIT ?)",
                (npc, player, npc, player, self.max_facts),
            )
            db.execute("COMMIT")
            self.written += 1
        elif kind == "flush":
            item[1].set_result(None)
