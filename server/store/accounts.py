"""Players as accounts: who they are, where they stood, what they hold, which token is current.

The registry lives in memory (loaded once at start; thousands of rows are a few MB) so that a
join or a gift never reads the disk; every change hands the account's row to `save`, which
queues it for the store's writer thread (server/store/writer.py).

Invariants: ids are >= 1, never reused while the file keeps the row; `token_gen` only grows (a
token of an older generation was used and replaced); `items` holds at most MAX_ITEMS, oldest first.
Wall-clock times are Unix seconds; positions world units (None: never placed, spawn as new).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

MAX_ITEMS = 100  # items a player holds; the oldest is dropped for a new one beyond (a gift is never refused)
COLUMNS = ("id", "name", "x", "y", "stats", "items", "token_gen", "first_seen", "last_seen")


@dataclass(slots=True)
class Account:
    id: int
    name: str
    first_seen: float
    last_seen: float
    x: float | None = None
    y: float | None = None
    stats: dict[str, float] = field(default_factory=dict)
    items: list[str] = field(default_factory=list)
    token_gen: int = 0

    def row(self) -> tuple:
        return (
            self.id,
            self.name,
            self.x,
            self.y,
            json.dumps(self.stats),
            json.dumps(self.items),
            self.token_gen,
            self.first_seen,
            self.last_seen,
        )

    @classmethod
    def from_row(cls, row) -> "Account":
        id_, name, x, y, stats, items, gen, first, last = row
        return cls(
            int(id_),
            name,
            float(first),
            float(last),
            x,
            y,
            dict(json.loads(stats or "{}")),
            [str(i) for i in json.loads(items or "[]")][-MAX_ITEMS:],
            int(gen),
        )


class Accounts:
    def __init__(self, rows=(), save: Callable[[tuple], None] = lambda row: None):
        self.by_id: dict[int, Account] = {}
        for r in rows:
            a = Account.from_row(r)
            self.by_id[a.id] = a
        self.next_id = max(self.by_id, default=0) + 1
        self._save = save

    def __len__(self) -> int:
        return len(self.by_id)

    def get(self, account_id: int) -> Account | None:
        return self.by_id.get(account_id)

    def create(self, name: str, now: float) -> Account:
        a = Account(self.next_id, name, now, now)
        self.next_id += 1
        self.by_id[a.id] = a
        self.changed(a)
        return a

    def changed(self, a: Account) -> None:
        """Queue the account's current row for the store."""
        self._save(a.row())

    def give(self, a: Account, item: str) -> None:
        a.items.append(item)
        del a.items[:-MAX_ITEMS]
        self.changed(a)
