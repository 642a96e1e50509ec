"""The store's writer thread: the only code that writes world.sqlite while the server runs.

The tick hands it a checkpoint (`offer`: a Frame copied in the tick, plus who is who) and the
loop hands it account rows (`save`); neither waits. The thread writes whatever is pending in one
transaction: account rows, players' positions from the frame, the checkpoint's columns.

Bounds: one checkpoint is pending at most; a newer one replaces it (counted in `replaced`) when
the writer falls behind. Account rows are coalesced by id (the newest row wins). A write that
fails (disk full, read-only file, a lock held past BUSY_MS) is logged and counted; the account
rows go back to be tried with the next write, the checkpoint is dropped (a newer one follows),
the next try is RETRY_S later, and the game goes on.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from world.checkpoint import Frame
from world.entities import PLAYER

from ..metrics import Histogram
from . import frames

log = logging.getLogger("npcworld.store")

WRITE_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)  # seconds
COPY_BUCKETS = (0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01)  # seconds
LOG_EVERY = 100  # a failing write is logged the first time, then once every this many
SHUTDOWN_RETRIES = 3  # at a stop, a failing write is tried this many more times, then given up
RETRY_S = 1.0  # seconds after a failed write before the next try (a newer checkpoint waits too)


@dataclass(frozen=True)
class Offer:
    """A checkpoint as the tick hands it over: the frame and, per frame row, who it is."""

    frame: Frame
    keys: dict[int, str]  # entity id -> an NPC's stable key (never mutated after the hand-over)
    accounts: dict[int, int]  # entity id -> a player's account id (idem)
    map_id: str
    wall: float  # Unix seconds when it was taken
    extra: dict = field(default_factory=dict)  # name -> array: more state kept with it (copies)


class Writer:
    def __init__(self, conn: sqlite3.Connection, path: str):
        self.conn = conn
        self.path = path
        self._cv = threading.Condition()
        self._offer: Offer | None = None
        self._accounts: dict[int, tuple] = {}
        self._stop = False
        self._busy = False
        self._retries = 0  # failed writes since the stop was asked for
        self._thread = threading.Thread(target=self._run, name="npcworld-store", daemon=True)
        # counters (read by /metrics from the loop thread; ints and floats are swapped whole)
        self.written = 0  # checkpoints written
        self.replaced = 0  # checkpoints replaced by a newer one before they were written
        self.failed = 0  # transactions that failed
        self.accounts_written = 0
        self.last_written_at: float | None = None  # Unix seconds (the checkpoint's own time)
        self.last_bytes = 0  # bytes of the last checkpoint's columns
        self.last_tick = -1  # the tick of the last checkpoint written
        self.write_s = Histogram(WRITE_BUCKETS)
        self.copy_s = Histogram(COPY_BUCKETS)  # the copy in the tick (observed by the game)

    def start(self) -> "Writer":
        self._thread.start()
        return self

    # -- the loop's side (never blocks on the disk) ------------------------------------

    def offer(self, offer: Offer) -> None:
        with self._cv:
            if self._offer is not None:
                self.replaced += 1
            self._offer = offer
            self._cv.notify()

    def save(self, row: tuple) -> None:
        with self._cv:
            self._accounts[row[0]] = row
            self._cv.notify()

    def close(self, timeout: float = 30.0) -> bool:
        """Write what is pending, then stop (blocks: at shutdown, off the tick). False if it did not finish."""
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._thread.join(timeout)
        done = not self._thread.is_alive()
        if done:
            self.conn.close()
        return done

    def idle(self) -> bool:
        """Nothing pending and nothing being written (tests and shutdown)."""
        with self._cv:
            return self._offer is None and not self._accounts and not self._busy

    def wait(self, predicate, timeout: float) -> bool:
        """Block until predicate(writer) holds, or `timeout` s pass (False): tests and tools wait on the
        writer's own condition, which it signals after every transaction, rather than on the clock."""
        with self._cv:
            return self._cv.wait_for(lambda: predicate(self), timeout)

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._offer is None and not self._accounts and not self._stop:
                    self._cv.wait()
                if self._offer is None and not self._accounts:
                    return  # stopping, nothing left
                offer, accounts = self._offer, self._accounts
                self._offer, self._accounts, self._busy = None, {}, True
            try:
                self._write(offer, accounts)
            except Exception as exc:  # sqlite3.Error (disk full, read-only, locked); anything else is a bug
                self.failed += 1
                if self.failed % LOG_EVERY == 1:
                    log.error(
                        "store %s: a write failed (%s); the game goes on, %d failed so far%s",
                        self.path,
                        exc,
                        self.failed,
                        "" if self.failed == 1 else " (logged once every %d)" % LOG_EVERY,
                        exc_info=not isinstance(exc, sqlite3.Error),
                    )
                with self._cv:
                    for k, row in accounts.items():
                        self._accounts.setdefault(k, row)  # a newer row for the same account wins
                    if self._stop:
                        if offer is not None and self._offer is None:
                            self._offer = offer  # the final checkpoint is worth another try
                        self._retries += 1
                if self._retries > SHUTDOWN_RETRIES:
                    log.error(
                        "store %s: giving up at shutdown after %d tries; %d account rows and the last "
                        "checkpoint not written",
                        self.path,
                        SHUTDOWN_RETRIES,
                        len(self._accounts),
                    )
                    return
                with self._cv:  # not at once: a full disk stays full for a while
                    self._cv.wait_for(lambda: self._stop and not self._retries, RETRY_S)
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()  # whoever waits on the writer (wait) sees this transaction's end

    def _write(self, offer: Offer | None, accounts: dict[int, tuple]) -> None:
        t0 = time.perf_counter()
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            if accounts:
                c.executemany(
                    "INSERT INTO accounts (id, name, x, y, stats, items, token_gen, first_seen, last_seen) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
                    "x = excluded.x, y = excluded.y, stats = excluded.stats, items = excluded.items, "
                    "token_gen = MAX(token_gen, excluded.token_gen), last_seen = excluded.last_seen",
                    list(accounts.values()),
                )
            nbytes = 0
            if offer is not None:
                f = offer.frame
                # who is who, per row: built here, not in the tick (0.5 ms for 3,000 entities)
                eids = f.eid.tolist()
                keys = np.array([offer.keys.get(e, "") for e in eids], object)
                account = np.array([offer.accounts.get(e, 0) for e in eids], np.int64)
                players = np.flatnonzero((f.kind == PLAYER) & (account > 0))
                if len(players):
                    xy = f.columns["pos"][players]
                    c.executemany(
                        "UPDATE accounts SET x = ?, y = ?, last_seen = MAX(last_seen, ?) WHERE id = ?",
                        zip(
                            xy[:, 0].tolist(), xy[:, 1].tolist(), [offer.wall] * len(players), account[players].tolist()
                        ),
                    )
                rows = frames.rows(f, keys, offer.extra)
                nbytes = sum(len(r[3]) for r in rows)
                c.execute("DELETE FROM checkpoint_columns")
                c.executemany("INSERT INTO checkpoint_columns (name, dtype, shape, data) VALUES (?, ?, ?, ?)", rows)
                c.execute(
                    "INSERT OR REPLACE INTO checkpoint (id, tick, time_s, rng, written_at, entities, stat_names, "
                    "map) VALUES (1, ?, ?, ?, ?, ?, ?, ?)",
                    (f.tick, f.time_s, f.rng, offer.wall, len(f), json.dumps(list(f.stat_names)), offer.map_id),
                )
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise
        self.write_s.observe(time.perf_counter() - t0)
        self.accounts_written += len(accounts)
        if offer is not None:
            self.written += 1
            self.last_written_at = offer.wall
            self.last_bytes = nbytes
            self.last_tick = offer.frame.tick
