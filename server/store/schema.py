"""The store's schema: one SQLite file (WAL), a version, forward migrations.

`PRAGMA user_version` holds the schema version. `MIGRATIONS[v]` takes a file at version v-1 to
version v, in one transaction; opening a file runs the ones it lacks, in order. A file made by a
newer npcworld (user_version > VERSION) is refused, never written. Add a version by appending
to MIGRATIONS; never edit one that shipped.

Tables (units: world units for x/y, seconds for times; wall-clock times are Unix seconds):
  meta                key -> value (the token signing key: 'token_key')
  accounts            one row per player: name, where they stood, stats (JSON), the items NPCs
                      gave them (JSON list, oldest first), the token generation (a token older
                      than it was used and replaced), first and last seen
  checkpoint          one row (id = 1): tick, simulated seconds, generator state, when written,
                      how many entities, the stat names, the map it was taken on
  checkpoint_columns  one row per column of the last checkpoint (world/checkpoint.py COLUMNS plus
                      eid, kind, key, activity, stats): dtype, shape, raw bytes
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: dict[int, str] = {
    1: """
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, x REAL, y REAL, stats TEXT NOT NULL DEFAULT '{}',
    token_gen INTEGER NOT NULL DEFAULT 0, first_seen REAL NOT NULL, last_seen REAL NOT NULL);
CREATE TABLE checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1), tick INTEGER NOT NULL, time_s REAL NOT NULL, rng TEXT NOT NULL,
    written_at REAL NOT NULL, entities INTEGER NOT NULL, stat_names TEXT NOT NULL, map TEXT NOT NULL);
CREATE TABLE checkpoint_columns (name TEXT PRIMARY KEY, dtype TEXT NOT NULL, shape TEXT NOT NULL, data BLOB NOT NULL);
""",
    # version 2: players hold the items NPCs give them
    2: """
ALTER TABLE accounts ADD COLUMN items TEXT NOT NULL DEFAULT '[]';
""",
}
VERSION = max(MIGRATIONS)
BUSY_MS = 2000  # how long a write waits for a lock another process holds before it fails (counted)


class StoreError(Exception):
    """The store cannot be used; the message names the file, what is wrong and what to do."""


def connect(path: str, *, readonly: bool = False) -> sqlite3.Connection:
    """Open (creating unless readonly), check and migrate the store. StoreError saying why not."""
    try:
        if readonly:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        else:
            conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
        ok = conn.execute("PRAGMA quick_check").fetchone()[0]
        if ok != "ok":
            raise StoreError(
                f"store {path} is damaged ({ok}); restore a backup (npcworld store backup) "
                "or move the file away to start with an empty world"
            )
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > VERSION:
            raise StoreError(
                f"store {path} has schema version {version}, newer than this npcworld's {VERSION}; "
                "run a newer npcworld, or restore a backup made by this one"
            )
        if not readonly:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: a killed process loses nothing committed
            migrate(conn, version)
        return conn
    except sqlite3.Error as exc:
        hint = (
            "is not an SQLite database or is damaged; restore a backup or move it away"
            if isinstance(exc, sqlite3.DatabaseError) and "not a database" in str(exc)
            else str(exc)
        )
        raise StoreError(f"store {path}: {hint}") from None


def migrate(conn: sqlite3.Connection, version: int, upto: int = VERSION) -> int:
    """Run the migrations after `version` up to `upto`, each in its own transaction. Returns the new version."""
    for v in range(version + 1, upto + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in MIGRATIONS[v].split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.execute(f"PRAGMA user_version = {v}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return max(version, upto)


def version_of(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]
