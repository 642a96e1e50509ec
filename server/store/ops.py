"""`npcworld store`: the operator's view of the store, safe while the server runs.

  info            schema version, counts, the last checkpoint (when, which tick, how many entities)
  backup PATH     a consistent copy through SQLite's online backup API (a page batch at a time,
                  so a running server's writer waits at most one batch)
  players         every account: id, name, where, items, first and last seen
  forget PLAYER   delete an account (by id, or by name when one account has it); best while the
                  server is stopped: a running one still knows the account until it restarts, and
                  writes it again if that player comes back meanwhile

Reads open the file read-only and never migrate it; `forget` opens it as the server does.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from pathlib import Path

from ..config import ServerConfig
from . import schema
from .schema import StoreError

BACKUP_PAGES = 1024  # pages copied per step (4 MiB at the default page size)


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "store",
        help="the store: info, backup, players, forget",
        description="Look after the store (SQLite, var/world.sqlite by default): players' accounts "
        "and the last world checkpoint. Safe while the server runs.",
    )
    p.add_argument(
        "--store", default=ServerConfig().store.path, metavar="FILE", help="the store file (default: %(default)s)"
    )
    s = p.add_subparsers(dest="store_command", metavar="STORE_COMMAND")
    i = s.add_parser("info", help="schema version, counts, last checkpoint")
    b = s.add_parser("backup", help="a consistent copy (SQLite online backup), safe while serving")
    b.add_argument("path", metavar="PATH", help="where to write the copy (must not exist)")
    pl = s.add_parser("players", help="list the players' accounts")
    f = s.add_parser("forget", help="delete a player's account")
    f.add_argument("player", metavar="PLAYER", help="account id, or a name only one account has")
    for one in (i, b, pl, f):  # `npcworld store info --store FILE` works as well as `store --store FILE info`
        one.add_argument("--store", default=argparse.SUPPRESS, metavar="FILE", help="the store file")
    return p


def main(args, parser: argparse.ArgumentParser) -> int:
    if args.store_command is None:
        parser.print_help()
        return 2
    try:
        return {"info": info, "backup": backup, "players": players, "forget": forget}[args.store_command](args)
    except StoreError as exc:
        print(f"npcworld store: {exc}", file=sys.stderr)
        return 1
    except sqlite3.Error as exc:
        print(f"npcworld store: {args.store}: {exc}", file=sys.stderr)
        return 1


def _open(path: str, readonly: bool = True) -> sqlite3.Connection:
    if not Path(path).is_file():
        raise StoreError(f"no store at {path} (the server creates it on its first start; --store FILE names another)")
    return schema.connect(path, readonly=readonly)


def _ago(t: float) -> str:
    s = max(0.0, time.time() - t)
    return f"{s:.1f} s ago" if s < 120 else f"{s / 60:.1f} min ago" if s < 7200 else f"{s / 3600:.1f} h ago"


def info(args) -> int:
    conn = _open(args.store)
    v = schema.version_of(conn)
    note = "" if v == schema.VERSION else f" (migrated to {schema.VERSION} at the next start)"
    print(f"store      {args.store}")
    print(f"schema     version {v}{note}")
    if v == 0:
        print("empty: no tables yet")
        return 0
    n = conn.execute("SELECT COUNT(*) FROM accounts").fetchone()[0]
    print(f"players    {n}")
    head = conn.execute("SELECT tick, time_s, written_at, entities FROM checkpoint WHERE id = 1").fetchone()
    if head is None:
        print("checkpoint none yet")
    else:
        tick, time_s, at, entities = head
        print(
            f"checkpoint tick {tick} ({time_s:.1f} s of game), {entities} entities, written "
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(at))} ({_ago(at)})"
        )
    size = sum(p.stat().st_size for p in (Path(args.store), Path(args.store + "-wal")) if p.exists())
    print(f"size       {size / 1e6:.2f} MB (file and write-ahead log)")
    return 0


def backup(args) -> int:
    dst = Path(args.path)
    if dst.exists():
        raise StoreError(f"{dst} exists; name a new file")
    src = _open(args.store)
    out = sqlite3.connect(dst)
    try:
        src.backup(out, pages=BACKUP_PAGES)
    finally:
        out.close()
    print(f"backed up {args.store} to {dst} ({dst.stat().st_size / 1e6:.2f} MB); start from it with --store {dst}")
    return 0


def players(args) -> int:
    conn = _open(args.store)
    rows = (
        conn.execute("SELECT id, name, x, y, items, first_seen, last_seen FROM accounts ORDER BY id").fetchall()
        if schema.version_of(conn) >= 2
        else [
            (*r[:4], "[]", *r[4:])
            for r in conn.execute("SELECT id, name, x, y, first_seen, last_seen FROM accounts ORDER BY id").fetchall()
        ]
    )
    print(f"{'id':>6}  {'name':<24} {'x':>8} {'y':>8}  {'items':>5}  {'first seen':<19}  last seen")
    for id_, name, x, y, items, first, last in rows:
        where = f"{x:8.1f} {y:8.1f}" if x is not None else f"{'-':>8} {'-':>8}"
        print(
            f"{id_:>6}  {name[:24]:<24} {where}  {len(json.loads(items)):>5}  "
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(first))}  {_ago(last)}"
        )
    print(f"{len(rows)} players")
    return 0


def forget(args) -> int:
    conn = _open(args.store, readonly=False)
    who = args.player
    if who.isdigit():
        rows = conn.execute("SELECT id, name FROM accounts WHERE id = ?", (int(who),)).fetchall()
    else:
        rows = conn.execute("SELECT id, name FROM accounts WHERE name = ?", (who,)).fetchall()
    if not rows:
        raise StoreError(f"no player {who!r} in {args.store} (npcworld store players lists them)")
    if len(rows) > 1:
        raise StoreError(
            f"{len(rows)} players are called {who!r} (ids {', '.join(str(r[0]) for r in rows)}); name one by id"
        )
    conn.execute("DELETE FROM accounts WHERE id = ?", (rows[0][0],))
    print(f"forgot player {rows[0][0]} ({rows[0][1]})")
    return 0
