"""The embedded store: one SQLite file (WAL, var/world.sqlite by default) holding the players'
accounts, the token signing key and the last world checkpoint.

Opened once at start (`Store.open`: created if new, checked, migrated; StoreError with a clear
message otherwise, before anything else starts). Reads happen only then: the accounts and the
last checkpoint are loaded into memory. While serving, every write goes through the writer
thread (server/store/writer.py); the tick only copies (world/checkpoint.py) and hands over.

Parts: schema.py (version, migrations, opening), accounts.py (the registry), frames.py (a
checkpoint as rows), writer.py (the thread and its counters), ops.py (`npcworld store`).
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import sqlite3
import time
from pathlib import Path

import numpy as np

from prometheus_client.metrics_core import Metric

from world.checkpoint import Frame

from ..metrics import counter, gauge

from . import frames, schema
from .accounts import COLUMNS as ACCOUNT_COLUMNS
from .accounts import Accounts
from .schema import StoreError
from .writer import Offer, Writer

__all__ = ["Store", "StoreError", "Offer", "Saved"]

log = logging.getLogger("npcworld.store")


class Saved:
    """The last checkpoint as loaded at start."""

    def __init__(self, frame: Frame, keys: np.ndarray, written_at: float, map_id: str, extra: dict):
        self.frame, self.keys, self.written_at, self.map_id = frame, keys, written_at, map_id
        self.extra = extra  # the Offer's extra arrays


class Store:
    def __init__(self, path: str, conn: sqlite3.Connection, accounts: list, key: bytes, saved: Saved | None):
        self.path = path
        self.account_rows = accounts
        self.token_key = key
        self.saved = saved
        self.writer = Writer(conn, path)

    @classmethod
    def open(cls, path: str, token_expiry_s: float | None = None) -> "Store":
        """Open the store at `path` (its folder created if missing) and load what a start needs.
        token_expiry_s: accounts not seen for longer are deleted first: every token they were given
        has expired, so nobody can resume them (bots' guests would otherwise pile up for ever)."""
        p = Path(path)
        if p.is_dir():
            raise StoreError(f"store {path} is a folder; expected an SQLite file (e.g. var/world.sqlite)")
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"store {path}: cannot create its folder: {exc.strerror}") from None
        conn = schema.connect(path)
        try:
            if token_expiry_s is not None:
                gone = conn.execute(
                    "DELETE FROM accounts WHERE last_seen < ?", (time.time() - token_expiry_s,)
                ).rowcount
                if gone:
                    log.info(
                        "store %s: forgot %d players not seen for %.0f s (their tokens had expired)",
                        path,
                        gone,
                        token_expiry_s,
                    )
            accounts = conn.execute(f"SELECT {', '.join(ACCOUNT_COLUMNS)} FROM accounts").fetchall()
            key = conn.execute("SELECT value FROM meta WHERE key = 'token_key'").fetchone()
            if key is None:
                key = (secrets.token_bytes(32),)
                conn.execute("INSERT INTO meta (key, value) VALUES ('token_key', ?)", key)
            saved = _load_checkpoint(conn, path)
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"store {path} cannot be read ({exc}); restore a backup or move it away") from None
        return cls(path, conn, accounts, bytes(key[0]), saved)

    def start(self) -> Accounts:
        """Start the writer; return the accounts registry, whose changes it writes."""
        self.writer.start()
        return Accounts(self.account_rows, self.writer.save)

    def close(self) -> None:
        if not self.writer.close():
            log.error("store %s: the writer did not finish in time; the last changes may be lost", self.path)

    def size(self) -> int:
        """Bytes on disk: the file and its write-ahead log."""
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.stat(self.path + suffix).st_size
            except OSError:
                pass
        return total

    def collect(self) -> list[Metric]:
        """/metrics families (a prometheus-client collector): the writer's counters, read as they are."""
        w = self.writer
        age = time.time() - w.last_written_at if w.last_written_at is not None else math.nan
        return [
            counter("npcworld_store_checkpoints_written_total", "World checkpoints written to the store.", w.written),
            counter(
                "npcworld_store_checkpoints_replaced_total",
                "Checkpoints replaced by a newer one before the writer got to them (it fell behind).",
                w.replaced,
            ),
            counter("npcworld_store_writes_failed_total", "Store transactions that failed (logged).", w.failed),
            counter("npcworld_store_account_rows_written_total", "Player account rows written.", w.accounts_written),
            gauge("npcworld_store_last_checkpoint_age_seconds", "Seconds since the last checkpoint written.", age),
            gauge(
                "npcworld_store_last_checkpoint_tick",
                "The tick of the last checkpoint written (-1: none).",
                w.last_tick,
            ),
            gauge("npcworld_store_last_checkpoint_bytes", "Bytes of the last checkpoint's columns.", w.last_bytes),
            gauge("npcworld_store_bytes", "Size of the store on disk (file and write-ahead log).", self.size()),
            w.write_s.family("npcworld_store_write_seconds", "Wall time of one store transaction (writer thread)."),
            w.copy_s.family(
                "npcworld_store_checkpoint_copy_seconds", "Wall time of copying a checkpoint's columns inside the tick."
            ),
        ]


def _load_checkpoint(conn: sqlite3.Connection, path: str) -> Saved | None:
    head = conn.execute("SELECT tick, time_s, rng, stat_names, written_at, map FROM checkpoint WHERE id = 1").fetchone()
    if head is None:
        return None
    cols = conn.execute("SELECT name, dtype, shape, data FROM checkpoint_columns").fetchall()
    try:
        frame, keys, extra = frames.frame(head[:4], cols)
    except (ValueError, TypeError) as exc:
        raise StoreError(
            f"store {path}: the last checkpoint is unreadable ({exc}); restore a backup or move the file away"
        ) from None
    return Saved(frame, keys, float(head[4]), head[5], extra)
