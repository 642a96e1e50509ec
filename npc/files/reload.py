"""Hot reload: watch the NPC folder and swap changed NPC files in, off the tick.

An asyncio task polls the folder every `interval_s` (0.5 s): the mtime and
size of every *.toml and *.py in it, listed in a worker thread
(asyncio.to_thread) so that a slow disk never delays a tick. A file that
changed is taken once it has stayed unchanged for one more poll, so a file
caught half-written by an editor is never loaded. A changed NPC file, or a
changed hooks module it names, is then read, parsed and validated in a worker
thread too; `Cast.apply` swaps the result in on the event loop, between two
ticks. So a saved edit is live within 2 x interval_s (one second) plus a
tick; a broken edit leaves the running version in place and is reported.

Polling instead of inotify: no dependency, works on every file system
(network mounts and editors that replace files included); the cost is one
stat per file per interval.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from npc.minds.cast import Cast
from npc.files.loader import load_files, npc_files

log = logging.getLogger("npcworld.npc")

POLL_S = 0.5


def scan(folder: Path) -> dict[str, tuple[int, int]]:
    """path -> (mtime_ns, size) of the *.toml and *.py files of a folder (missing folder: none)."""
    out = {}
    try:
        with os.scandir(folder) as it:
            for e in it:
                if e.name.endswith((".toml", ".py")) and e.is_file():
                    st = e.stat()
                    out[str(Path(folder) / e.name)] = (st.st_mtime_ns, st.st_size)
    except OSError:
        pass
    return out


class Watcher:
    def __init__(self, cast: Cast, interval_s: float = POLL_S):
        self.cast = cast
        self.interval_s = interval_s
        self.seen: dict[str, tuple[int, int]] = {}
        self.pending: set[str] = set()   # changed at the last poll: taken if unchanged at this one
        self.lock = asyncio.Lock()    # one reload at a time (the poller and POST /reload)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set; errors are logged and polling goes on."""
        if self.cast.dir is None:
            return
        self.seen = await asyncio.to_thread(scan, self.cast.dir)
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.interval_s)
                return
            except TimeoutError:
                pass
            try:
                await self.poll()
            except Exception:
                log.exception("npc reload failed")

    async def poll(self) -> dict | None:
        """Reload the NPC files that changed since the last look; None when nothing did."""
        if self.cast.dir is None:
            return None  # no folder: nothing to reload
        async with self.lock:
            now = await asyncio.to_thread(scan, self.cast.dir)
            moving = {p for p in now.keys() | self.seen.keys() if now.get(p) != self.seen.get(p)}
            self.seen = now
            changed = self.pending - moving          # changed before, settled since
            self.pending = (self.pending | moving) - changed
            if not changed:
                return None
            tomls = {p for p in now if p.endswith(".toml")}
            # an NPC file is reloaded when it changed, or the hooks module it names did
            todo = sorted(p for p in tomls if (p in changed or self.cast.hooks_of.get(p) in changed)
                          and p not in self.pending)
            removed = [p for p in changed if p.endswith(".toml") and p not in now
                       and (p in self.cast.file_ids or p in self.cast.problems)]
            return await self._load(todo, removed)

    async def reload_all(self) -> dict:
        """Reload every NPC file now, changed or not (admin); re-enables disabled hooks."""
        async with self.lock:
            self.seen = await asyncio.to_thread(scan, self.cast.dir) if self.cast.dir else {}
            self.pending = set()
            files = [str(p) for p in await asyncio.to_thread(npc_files, self.cast.dir)] if self.cast.dir else []
            removed = [f for f in list(self.cast.file_ids) + list(self.cast.problems) if f not in files]
            return await self._load(files, sorted(set(removed)))

    async def _load(self, files: list[str], removed: list[str]) -> dict:
        cast = self.cast
        results = await asyncio.to_thread(load_files, [Path(f) for f in files], cast.places, cast.spawn_points,
                                          cast.free)
        # load_files only sees this batch: an id taken by a file outside it is caught by Cast.apply
        summary = cast.apply(results, removed)
        if files or removed:
            log.info("npc files reloaded: %d ok, %d with errors%s", len(summary["loaded"]), len(summary["failed"]),
                     f", {len(removed)} removed" if removed else "")
        return {**summary, "removed": removed}
