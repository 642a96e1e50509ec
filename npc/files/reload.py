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

The places file beside the map (`<map>.places.toml`, world/tilemap.py) is
polled the same way: places added to it are added to the world
(`World.use_map`; their navigation is built in a worker thread), the NPC
files that failed to load are loaded again (one may have been waiting for
that place), and the reload log says so. A place moved or removed there
needs a restart (NPCs may be walking to it): the log and the reload log say so.

Polling instead of inotify: no dependency, works on every file system
(network mounts and editors that replace files included); the cost is one
stat per file per interval.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from world.navigation import navigation_for
from world.tilemap import MapError, add_places, places_path, read_places

from npc.minds.cast import Cast
from npc.files.loader import load_files, map_places, npc_files

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
        self.pending: set[str] = set()  # changed at the last poll: taken if unchanged at this one
        self.lock = asyncio.Lock()  # one reload at a time (the poller and POST /reload)
        self.places_file = str(places_path(cast.world.map.path))

    def _scan(self) -> dict[str, tuple[int, int]]:
        out = scan(self.cast.dir) if self.cast.dir is not None else {}
        try:
            st = os.stat(self.places_file)
            out[self.places_file] = (st.st_mtime_ns, st.st_size)
        except OSError:
            pass
        return out

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set; errors are logged and polling goes on."""
        if self.cast.dir is None:
            return
        self.seen = await asyncio.to_thread(self._scan)
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
            now = await asyncio.to_thread(self._scan)
            moving = {p for p in now.keys() | self.seen.keys() if now.get(p) != self.seen.get(p)}
            self.seen = now
            changed = self.pending - moving  # changed before, settled since
            self.pending = (self.pending | moving) - changed
            if not changed:
                return None
            if self.places_file in changed:
                changed.discard(self.places_file)
                waiting = await self._places()
                changed |= set(waiting)
            tomls = {p for p in now if p.endswith(".toml") and p != self.places_file}
            # an NPC file is reloaded when it changed, or the hooks module it names did
            todo = sorted(
                p for p in tomls if (p in changed or self.cast.hooks_of.get(p) in changed) and p not in self.pending
            )
            removed = [
                p
                for p in changed
                if p.endswith(".toml") and p not in now and (p in self.cast.file_ids or p in self.cast.problems)
            ]
            return await self._load(todo, removed)

    async def _places(self) -> list[str]:
        """The places file changed: add its new places to the world; the NPC files to load again."""
        cast, world = self.cast, self.cast.world
        try:
            read = await asyncio.to_thread(read_places, self.places_file, world.map)
        except MapError as e:
            log.error("%s", e)
            cast.journal.add("error", self.places_file, None, f"{e}; the places stay as they were")
            return []
        have = set(world.map.extra_places)
        gone = sorted(n for n in have if n not in read or read[n] != world.map.pois[n])
        if gone:
            msg = f"place(s) {', '.join(gone)} moved or removed: restart the server to apply that"
            log.warning("%s: %s", self.places_file, msg)
            cast.journal.add("error", self.places_file, None, msg)
        tm = add_places(world.map, read)
        if tm is world.map:
            return []
        cfg = world.config
        await asyncio.to_thread(navigation_for, tm, cfg.radius, cfg.poi_spread)  # the BFS, off the tick
        try:
            added = world.use_map(tm)
        except ValueError as e:  # e.g. a map whose only place was 'spawn': NPCs' places would shift
            msg = f"{e}; the places stay as they were (restart the server with the places file to apply it)"
            log.error("%s: %s", self.places_file, msg)
            cast.journal.add("error", self.places_file, None, msg)
            return []
        cast.places, cast.spawn_points = map_places(tm)
        log.info("%s: place(s) %s added", self.places_file, ", ".join(added))
        cast.journal.add("reload", self.places_file, None, f"place(s) {', '.join(added)} added")
        return sorted(cast.problems)  # files that failed may have named one of them

    async def reload_all(self) -> dict:
        """Reload every NPC file now, changed or not (admin); re-enables disabled hooks."""
        async with self.lock:
            self.seen = await asyncio.to_thread(self._scan)
            self.pending = set()
            files = [str(p) for p in await asyncio.to_thread(npc_files, self.cast.dir)] if self.cast.dir else []
            removed = [f for f in list(self.cast.file_ids) + list(self.cast.problems) if f not in files]
            return await self._load(files, sorted(set(removed)))

    async def _load(self, files: list[str], removed: list[str]) -> dict:
        cast = self.cast
        results = await asyncio.to_thread(
            load_files, [Path(f) for f in files], cast.places, cast.spawn_points, cast.free
        )
        # load_files only sees this batch: an id taken by a file outside it is caught by Cast.apply
        summary = cast.apply(results, removed)
        if files or removed:
            log.info(
                "npc files reloaded: %d ok, %d with errors%s",
                len(summary["loaded"]),
                len(summary["failed"]),
                f", {len(removed)} removed" if removed else "",
            )
        return {**summary, "removed": removed}
