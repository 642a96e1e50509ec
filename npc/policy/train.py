"""`npcworld train-policy`: clone the built-in behaviour into the decision policy,
on the shipped NPC files and on many randomised ones, and measure how well it
follows files it never saw.

1. Roll out: a headless world (no server, no clock: stepped as fast as the
   CPU goes) with the shipped NPC files' NPCs (multiplied up to `--npcs`),
   `--random-files` randomised files (npc/policy/randomise.py) of
   `--random-npcs` NPCs each, `--held-out-files` more randomised files from
   another seed (never trained on), and `--players` stand-in players walking
   at random (some stand still, so NPCs see lingering, "suspicious"
   players; some walk up to an NPC). A `Recorder` in the cast notes every
   built-in think: the observation row (npc/policy/observe.py) and the
   built-in verdict as its label. A short game day (`--day-length`) makes
   the schedules and needs cycle.
   Then `--synthetic-files` more randomised files, each decided once on a
   random sight of `--synthetic-rows` NPCs (no world: cheap, and broad), so
   that the policy sees thousands of files' parameters, not hundreds.
2. Leave one file out (`--lofo`): for each shipped file F, a smaller model
   (`--lofo-hidden`, `--lofo-epochs`) trained on everything but F's NPCs and
   the held-out files, evaluated on F.
3. The shipped model: trained on every shipped, randomised and synthetic file
   by behaviour cloning (cross-entropy on the action and on its target slot;
   the target head sees the true action: teacher forcing), evaluated on the
   held-out randomised files.
4. Write the weights (safetensors), report.json, report.md and loss.svg
   (the loss curve, drawn by charts/svg.py).

Fixed seeds: the same command gives the same weights on the same machine.
On the defaults, about 2.5 min on 2 busy CPU cores (rollout 51 s, synthetic
16 s, the six leave-one-file-out models 38 s, the shipped model 32 s).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from charts import svg
from world.sim import NPC, PLAYER, World, WorldConfig
from world.tilemap import TileMap, load_map

from npc.files.schema import Definition
from npc.policy import observe
from npc.policy.observe import A, ACTIONS, OBS_DIM, SLOT_KIND, T

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MAP = ROOT / "assets" / "maps" / "default.tmj"
TRAIN_STREAM, HELD_OUT_STREAM, SYNTHETIC_STREAM = 1, 2, 3  # np.random.default_rng((seed, stream))
HELD_OUT_FIRST = 100_000  # held-out randomised files are "random-100000", ...
SYNTHETIC_FIRST = 200_000  # synthetic ones "random-200000", ...


# -- the recorder: a decider that decides nothing ---------------------------------------------------


class Recorder:
    """A decider (npc/policy/protocol.py) that follows no file and records every built-in think:
    its observation row, the verdict in the policy's terms (action, target slot) and the file."""

    def __init__(
        self,
        places: Sequence[str],
        place_xy: np.ndarray,
        world_size: tuple[float, float],
        npc_xy: Callable[[], np.ndarray] | None = None,
    ):
        self.places = list(places)
        self.place_xy = np.asarray(place_xy, np.float64).reshape(-1, 2)
        self.size = (float(world_size[0]), float(world_size[1]))
        self.npc_xy = npc_xy  # () -> (M, 2) every NPC (None: the rows' own)
        self.files: dict[str, int] = {}  # definition id -> index in `file`
        self._tick: list[tuple] = []
        self.parts: list[tuple] = []

    @classmethod
    def of_world(cls, world: World) -> "Recorder":
        return cls(world.places, world.place_positions(), world.map.world_size, lambda: world.of_kind(NPC)[1])

    def begin_tick(self, now_s: float) -> None:
        return None

    def follows(self, defn: Definition) -> bool:
        return False

    def ask(self, sight) -> None:  # never called: it follows no file
        raise AssertionError("the recorder decides nothing")

    def note(self, sight, verdict) -> None:
        self._tick.append((sight, verdict))

    def end_tick(self) -> None:
        if not self._tick:
            return
        noted, self._tick = self._tick, []
        sights = [s for s, _ in noted]
        r = observe.rows(sights, self.size, self.place_xy, self.npc_xy() if self.npc_xy else None, self.places)
        acts, slots, files, lo = [], [], [], 0
        for s, v in noted:
            hi = lo + len(s)
            a, t = observe.label(s, v, r.slots[lo:hi])
            acts.append(a)
            slots.append(t)
            files.append(np.full(len(s), self.files.setdefault(s.defn.id, len(self.files)), np.int32))
            lo = hi
        self.parts.append((r, np.concatenate(acts), np.concatenate(slots), np.concatenate(files)))

    def __len__(self) -> int:
        return sum(len(p[0]) for p in self.parts)

    def data(self) -> dict:
        """Every recorded row as arrays: obs, mask, tmask, slots, eid, finishing, action, target (the
        label's slot), file (index into `files`, a list of definition ids)."""
        if not self.parts:
            rows = observe.empty_rows()
            z = np.zeros(0, np.int64)
            parts = [(rows, z, z, z.astype(np.int32))]
        else:
            parts = self.parts
        cat = lambda i, name=None: np.concatenate([getattr(p[0], name) if name else p[i] for p in parts])  # noqa: E731
        return {
            "obs": cat(0, "obs"),
            "mask": cat(0, "mask"),
            "tmask": cat(0, "tmask"),
            "slots": cat(0, "slots"),
            "eid": cat(0, "eid"),
            "finishing": cat(0, "finishing"),
            "action": cat(1).astype(np.int64),
            "target": cat(2).astype(np.int64),
            "file": cat(3),
            "files": sorted(self.files, key=self.files.__getitem__),
        }


# -- rollouts ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rollout:
    players: int = 60  # stand-in players
    seconds: float = 240.0  # simulated seconds
    day_length: float = 120.0  # simulated seconds per game day
    tick_rate: int = 20  # ticks per simulated second (an NPC thinks every 0.5 s)
    seed: int = 0


def shipped(npc_dir: str | Path, tilemap: TileMap) -> list[Definition]:
    """The NPC files of a folder, as definitions (ValueError naming every problem)."""
    from npc.files.loader import free_at, load_files, map_places, npc_files

    places, spawn_points = map_places(tilemap)
    loaded = load_files(npc_files(npc_dir), places, spawn_points, free_at(tilemap))
    bad = [str(p) for r in loaded for p in r.problems]
    if bad:
        raise ValueError("the NPC files have problems:\n" + "\n".join(bad))
    return [r.definition for r in loaded if r.definition is not None]  # (all: no problems)


def randomised(n: int, seed: int, stream: int, places: Sequence[str], first: int = 0) -> list[Definition]:
    from npc.policy.randomise import random_definition

    rng = np.random.default_rng((seed, stream))
    return [random_definition(rng, places, first + i) for i in range(n)]


def rollout(
    cast_of: Sequence[tuple[Definition, int]],
    where: TileMap | World,
    s: Rollout,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Run the built-in behaviour on these (definition, NPCs) headless, recording every think.
    `where`: a map (a world is made with the setting's seed and day length) or a fresh World.

    All NPCs of one file get ids in the same think phase (id % think_every), so a file's NPCs
    think together, as one Sight: with many small randomised files this is what keeps the
    rollout's cost per decision low (one Sight per file and think, not per NPC)."""
    from npc.minds.cast import Cast

    world = where if isinstance(where, World) else World(where, WorldConfig(seed=s.seed, day_length_s=s.day_length))
    cast = Cast(world, None, tick_rate=s.tick_rate)
    rec = Recorder.of_world(world)
    k = cast.think_every
    places = world.places
    rng = np.random.default_rng(s.seed)
    most = max((n for _, n in cast_of), default=0)
    pads = (-len(cast_of)) % k  # ids to skip per round: a file's NPCs stay k apart
    for r in range(most):
        for defn, n in cast_of:
            if r >= n:
                world.despawn(world.spawn(NPC, "pad", "#000000", place=places[0]))
            elif r == 0:
                cast.install(replace(defn, count=1))
            else:
                cast.spawn(defn.id)
        for _ in range(pads):
            world.despawn(world.spawn(NPC, "pad", "#000000", place=places[0]))
    pids = [
        world.spawn(PLAYER, f"player {i}", "#ffffff", place=places[int(rng.integers(len(places)))])
        for i in range(s.players)
    ]
    cast.decider = rec
    dt = 1.0 / s.tick_rate
    ticks = int(s.seconds * s.tick_rate)
    for tick in range(ticks):
        if tick % s.tick_rate == 0:
            _walk(world, pids, rng)
            if progress and tick % (s.tick_rate * 30) == 0:
                progress(f"rollout: {tick * dt:.0f}/{s.seconds:.0f} simulated s, {len(rec)} decisions")
        cast.tick()
        world.step(dt)
    broken = [r for r in cast.reports if r.kind == "internal"]
    if broken:
        raise RuntimeError(f"the rollout failed: {broken[0].message}\n{broken[0].traceback}")
    out = rec.data()
    out.update(npcs=len(cast.minds), ticks=ticks)
    return out


def synthetic(
    defs: Sequence[Definition],
    rows_per_file: int,
    seed: int,
    places: Sequence[str],
    place_xy: np.ndarray,
    world_size: tuple[float, float],
) -> dict:
    """Thinks without a world: for each definition one random Sight of `rows_per_file` NPCs
    (randomise.random_sight: random surroundings, intents, needs), decided by the built-in. Cheap
    (no simulation) and broad (states a short rollout rarely reaches), so it carries the many
    randomised files that teach the policy to read a file's parameters."""
    from npc.minds import builtin
    from npc.policy.randomise import random_sight

    rng = np.random.default_rng((seed, SYNTHETIC_STREAM))
    rec = Recorder(places, place_xy, world_size)
    for i, d in enumerate(defs):
        s = random_sight(rng, d, rows_per_file, places)
        rec.note(s, builtin.decide(s, places))
        if i % 64 == 63:
            rec.end_tick()
    rec.end_tick()
    return rec.data()


def merge(*parts: dict) -> dict:
    """One data dict of several (rows in order; file indices renumbered into one `files` list)."""
    files: list[str] = []
    index: dict[str, int] = {}
    out: dict = {}
    for p in parts:
        remap = np.asarray([index.setdefault(f, len(index)) for f in p["files"]], np.int32)
        files = sorted(index, key=index.__getitem__)
        for k, v in p.items():
            if isinstance(v, np.ndarray):
                out.setdefault(k, []).append(remap[v] if k == "file" and len(remap) else v)
    merged: dict[str, Any] = {k: np.concatenate(v) for k, v in out.items()}
    merged["files"] = files
    return merged


def _walk(world: World, pids: list[int], rng: np.random.Generator) -> None:
    """Once a simulated second: a quarter of the players change course: stand (and linger), walk up
    to a random NPC, or walk in a random direction."""
    ids, pos = world.of_kind(NPC)
    for pid in pids:
        if rng.random() >= 0.25:
            continue
        u = rng.random()
        if u < 0.4:
            world.set_direction(pid, 0.0, 0.0)
        elif u < 0.7 and len(ids):
            x, y = world.position(pid)
            tx, ty = pos[int(rng.integers(len(ids)))]
            world.set_direction(pid, tx - x, ty - y)
        else:
            ang = rng.uniform(0, 2 * math.pi)
            world.set_direction(pid, math.cos(ang), math.sin(ang))


# -- agreement --------------------------------------------------------------------------------------


def score(data: dict, idx: np.ndarray, action: np.ndarray, target: np.ndarray) -> dict:
    """How often answers (action, target slot) for rows `idx` agree with the labels: top-1 on the
    action, and on action and target (the same entity or place, whichever slot names it)."""
    ya, yt = data["action"][idx], data["target"][idx]
    slots = data["slots"][idx]
    r = np.arange(len(idx))
    same_a = action == ya
    t = np.clip(target, 0, T - 1)
    got, want = slots[r, t], slots[r, yt]
    same_t = (t == yt) | ((SLOT_KIND[t] == SLOT_KIND[yt]) & (got == want) & (want >= 0))
    per = {}
    for k in np.unique(ya).tolist():
        sel = ya == k
        per[ACTIONS[k]] = {"n": int(sel.sum()), "top1": float(same_a[sel].mean())}
    n = len(idx)
    return {
        "decisions": n,
        "action_top1": float(same_a.mean()) if n else float("nan"),
        "action_and_target": float((same_a & same_t).mean()) if n else float("nan"),
        "finishing": int(data["finishing"][idx].sum()),
        "per_action": per,
    }


# -- training ---------------------------------------------------------------------------------------


def train(
    data: dict,
    train_idx: np.ndarray,
    watch_idx: np.ndarray,
    epochs: int,
    seed: int,
    hidden: int,
    batch: int = 512,
    lr: float = 3e-3,
    progress=None,
    routes: bool = True,
):
    """Behaviour cloning on rows `train_idx`; the loss on `watch_idx` is followed per epoch.
    `routes`: the policy's shape (npc/policy/model.py; False: the plain MLP, for comparison).
    Returns (model, [(train loss, watched loss) per epoch])."""
    import torch
    import torch.nn.functional as F

    from npc.policy.model import Policy

    torch.manual_seed(seed)
    t = {k: torch.from_numpy(np.ascontiguousarray(data[k])) for k in ("obs", "mask", "tmask", "action", "target")}
    tr = torch.from_numpy(np.asarray(train_idx, np.int64))
    te = torch.from_numpy(np.asarray(watch_idx, np.int64))
    model = Policy(hidden=hidden, routes=routes)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = max(1, epochs * math.ceil(len(tr) / batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    g = torch.Generator().manual_seed(seed)

    def loss_on(idx):
        obs, mask, tmask = t["obs"][idx], t["mask"][idx], t["tmask"][idx]
        a_y, t_y = t["action"][idx], t["target"][idx]
        a, tl = model(obs, mask, tmask, action=a_y)  # teacher forcing
        return F.cross_entropy(a, a_y) + F.cross_entropy(tl, t_y)

    curve = []
    for epoch in range(epochs):
        model.train()
        perm = tr[torch.randperm(len(tr), generator=g)]
        total, n = 0.0, 0
        for i in range(0, len(perm), batch):
            idx = perm[i : i + batch]
            loss = loss_on(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            n += len(idx)
        model.eval()
        with torch.no_grad():
            watched = loss_on(te).item() if len(te) else float("nan")
        curve.append((total / max(1, n), watched))
        if progress:
            progress(f"epoch {epoch + 1}/{epochs}: train loss {curve[-1][0]:.4f}, held-out loss {watched:.4f}")
    return model.eval(), curve


def predict(model, data: dict, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The model's (action, target slot) for rows idx, as the runner answers (argmax, masks re-checked)."""
    import torch

    with torch.no_grad():
        a, t = model(*(torch.from_numpy(np.ascontiguousarray(data[k][idx])) for k in ("obs", "mask", "tmask")))
    action, target = a.argmax(-1).numpy(), t.argmax(-1).numpy()
    assert data["mask"][idx][np.arange(len(idx)), action].all(), "the policy chose an action outside the mask"
    return action, target


def usable(data: dict) -> np.ndarray:
    """(N,) rows whose label is inside the masks (all of them, unless the mask is wrong)."""
    r = np.arange(len(data["action"]))
    return data["mask"][r, data["action"]] & data["tmask"][r, data["target"]]


# -- the loss curve --------------------------------------------------------------------------------


def loss_svg(curve: Sequence[Sequence[float]]) -> str:
    """The loss per epoch, train and held-out, as an SVG chart (charts/svg.py: a browser draws
    it, and a markdown viewer shows it inline in report.md). `curve`: (train, held) per epoch."""

    def points(k: int) -> list[tuple[float, float | None]]:  # a NaN (no held-out rows) breaks the line
        return [(i + 1.0, c[k] if math.isfinite(c[k]) else None) for i, c in enumerate(curve)]

    return svg.line_chart(
        "Loss per epoch (action + target cross-entropy)",
        [("train", points(0)), ("held-out randomised files", points(1))],
        x_label="epoch",
        y_label="cross-entropy",
    )


# -- the command -----------------------------------------------------------------------------------


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train-policy",
        help="clone the built-in NPC behaviour into the decision policy",
        description="Roll out the built-in behaviour headless on the shipped and on randomised "
        "NPC files, train the policy by behaviour cloning, write weights (safetensors) and a "
        "report (agreement on files left out of training, loss curve).",
    )
    p.add_argument("--out", default=str(ROOT / "assets" / "policy"), help="output folder (default: assets/policy)")
    p.add_argument("--npc-dir", default=str(ROOT / "assets" / "npcs"), help="the shipped NPC files")
    p.add_argument("--map", default=str(DEFAULT_MAP), help="the map of the rollout")
    p.add_argument("--npcs", type=int, default=120, help="NPCs of the shipped files (files multiplied up to this)")
    p.add_argument("--random-files", type=int, default=100, help="randomised NPC files in the rollout, trained on")
    p.add_argument("--random-npcs", type=int, default=4, help="NPCs of each randomised file in the rollout")
    p.add_argument(
        "--held-out-files",
        type=int,
        default=40,
        help="randomised files from another seed in the rollout, never trained on: the held-out set",
    )
    p.add_argument(
        "--synthetic-files",
        type=int,
        default=20000,
        help="randomised files decided on random sights without a world (trained on)",
    )
    p.add_argument("--synthetic-rows", type=int, default=16, help="NPCs of each synthetic file's sight")
    p.add_argument("--players", type=int, default=60, help="stand-in players walking at random")
    p.add_argument("--seconds", type=float, default=240.0, help="simulated seconds of rollout")
    p.add_argument("--day-length", type=float, default=120.0, help="simulated seconds per game day in the rollout")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument(
        "--hidden",
        type=int,
        default=128,
        help="hidden units of the policy MLP (the server reads the width from the weights)",
    )
    p.add_argument(
        "--routes",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the policy scores each action by its routes, as the built-in does (npc/policy/model.py); "
        "--no-routes: the plain MLP of before (95.8%% on unseen files, for comparison)",
    )
    p.add_argument(
        "--lofo",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="leave one shipped file out: train without it, evaluate on it (once per file)",
    )
    p.add_argument("--lofo-epochs", type=int, default=3, help="epochs of each leave-one-file-out model")
    p.add_argument("--lofo-hidden", type=int, default=64, help="hidden units of each leave-one-file-out model")
    p.add_argument(
        "--lofo-rows",
        type=int,
        default=400_000,
        help="training rows of each leave-one-file-out model at most (a random subset)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: on 2 busy cores, 2 threads made a step 10x slower, 13 ms vs 1.4 ms)",
    )
    p.add_argument("--seed", type=int, default=0)
    return p


def _plan(defs: list[Definition], total: int) -> list[tuple[Definition, int]]:
    """Each definition's NPC count multiplied up until the sum reaches `total` (at least its count)."""
    counts = [d.count for d in defs]
    i = 0
    while defs and sum(counts) < total:
        counts[i % len(defs)] += 1
        i += 1
    return list(zip(defs, counts))


@dataclass
class _Collected:
    data: dict  # every row (merge of the rollout and the synthetic thinks)
    of: np.ndarray  # (N,) object: the definition id of each row
    files: list[Definition]  # the shipped files
    held: list[Definition]  # the held-out randomised files
    random_files: int
    synthetic_files: int
    rollout_decisions: int
    times: dict  # seconds per stage


def _collect(args, say) -> _Collected:
    """The rollout (shipped, randomised and held-out files) and the synthetic thinks, as one data dict."""
    t0 = time.perf_counter()
    tilemap = load_map(str(args.map))
    world = World(tilemap)
    places = world.places
    files = shipped(args.npc_dir, tilemap)
    rand = randomised(args.random_files, args.seed, TRAIN_STREAM, places)
    held = randomised(args.held_out_files, args.seed, HELD_OUT_STREAM, places, HELD_OUT_FIRST)
    plan = _plan(files, args.npcs) + [(d, args.random_npcs) for d in rand] + [(d, args.random_npcs) for d in held]
    setting = Rollout(args.players, args.seconds, args.day_length, seed=args.seed)
    rolled = rollout(plan, tilemap, setting, progress=say)
    t1 = time.perf_counter()
    say(
        f"rollout: {len(rolled['action'])} decisions from {rolled['npcs']} NPCs over {rolled['ticks']} ticks "
        f"in {t1 - t0:.1f} s ({rolled['ticks'] / setting.tick_rate / (t1 - t0):.0f}x real time)"
    )
    syn_defs = randomised(args.synthetic_files, args.seed, SYNTHETIC_STREAM, places, SYNTHETIC_FIRST)
    syn = synthetic(syn_defs, args.synthetic_rows, args.seed, places, world.place_positions(), tilemap.world_size)
    data = merge(rolled, syn)
    data["npcs"], data["ticks"] = rolled["npcs"], rolled["ticks"]
    t2 = time.perf_counter()
    say(f"synthetic: {len(syn['action'])} decisions of {len(syn_defs)} randomised files in {t2 - t1:.1f} s")
    ids = np.asarray(data["files"], object)
    of = ids[data["file"]] if len(ids) else np.zeros(0, object)
    return _Collected(
        data,
        of,
        files,
        held,
        len(rand),
        len(syn_defs),
        len(rolled["action"]),
        {"rollout_s": round(t1 - t0, 1), "synthetic_s": round(t2 - t1, 1)},
    )


def _leave_one_out(args, c: _Collected, ok: np.ndarray, is_held: np.ndarray, say) -> dict:
    """Per shipped file: a model trained on everything else (not the held-out files), scored on it."""
    pick = np.random.default_rng((args.seed, 9))
    out = {}
    for d in c.files:
        mine = c.of == d.id
        if not mine.any():
            continue
        t0 = time.perf_counter()
        rows = np.flatnonzero(~is_held & ~mine & ok)
        if len(rows) > args.lofo_rows:
            rows = np.sort(pick.choice(rows, args.lofo_rows, replace=False))
        m, _ = train(
            c.data, rows, np.zeros(0, np.int64), args.lofo_epochs, args.seed, args.lofo_hidden, routes=args.routes
        )
        idx = np.flatnonzero(mine)
        out[d.id] = score(c.data, idx, *predict(m, c.data, idx))
        out[d.id]["train_s"] = round(time.perf_counter() - t0, 1)
        say(
            f"left out {d.id}: action {out[d.id]['action_top1']:.2%}, action and target "
            f"{out[d.id]['action_and_target']:.2%} of {len(idx)} decisions"
        )
    return out


def main(args) -> int:
    import torch

    from npc.policy.model import save

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def say(msg: str) -> None:
        print(f"train-policy: {msg}", flush=True)

    t0 = time.perf_counter()
    c = _collect(args, say)
    data, of = c.data, c.of
    ok = usable(data)
    outside = int((~ok).sum())
    if outside:
        say(f"warning: {outside} labels outside the masks (left out of training and counted as misses)")
    is_held = np.isin(of, [d.id for d in c.held])
    train_rows = np.flatnonzero(~is_held & ok)
    held_rows = np.flatnonzero(is_held)
    watch = np.random.default_rng(args.seed).permutation(held_rows)[:20_000]  # the loss curve's held-out rows
    t1 = time.perf_counter()
    lofo = _leave_one_out(args, c, ok, is_held, say) if args.lofo else {}
    t2 = time.perf_counter()
    model, curve = train(data, train_rows, watch, args.epochs, args.seed, args.hidden, progress=say, routes=args.routes)
    t3 = time.perf_counter()
    held_score = score(data, held_rows, *predict(model, data, held_rows))
    train_score = score(data, train_rows, *predict(model, data, train_rows))
    per_file = {}
    for d in c.files:
        idx = np.flatnonzero(of == d.id)
        if len(idx):
            s = score(data, idx, *predict(model, data, idx))
            per_file[d.id] = {k: s[k] for k in ("decisions", "action_top1", "action_and_target")}
    save(model, out / "policy.safetensors")
    (out / "loss.svg").write_text(loss_svg(curve))
    counts = np.bincount(data["action"], minlength=A)
    mean = lambda key: float(np.mean([v[key] for v in lofo.values()])) if lofo else float("nan")  # noqa: E731
    report = {
        "command": " ".join(["npcworld train-policy", *sys.argv[2:]]) if sys.argv[1:2] == ["train-policy"] else "",
        "seed": args.seed,
        "npcs": data["npcs"],
        "players": args.players,
        "simulated_s": args.seconds,
        "day_length_s": args.day_length,
        "obs_dim": OBS_DIM,
        "targets": T,
        "shipped_files": [d.id for d in c.files],
        "random_files": c.random_files,
        "random_npcs": args.random_npcs,
        "held_out_files": len(c.held),
        "synthetic_files": c.synthetic_files,
        "synthetic_rows": args.synthetic_rows,
        "decisions": int(len(data["action"])),
        "rollout_decisions": c.rollout_decisions,
        "labels_outside_mask": outside,
        "labels": {ACTIONS[k]: int(n) for k, n in enumerate(counts) if n},
        "model": {
            "hidden": args.hidden,
            "epochs": args.epochs,
            "routes": args.routes,
            "train_decisions": int(len(train_rows)),
            "train": {k: train_score[k] for k in ("action_top1", "action_and_target")},
            "shipped_files": per_file,
        },
        "held_out_randomised": held_score,
        "lofo": (
            {
                "hidden": args.lofo_hidden,
                "epochs": args.lofo_epochs,
                "rows": args.lofo_rows,
                "files": lofo,
                "mean_action_top1": mean("action_top1"),
                "mean_action_and_target": mean("action_and_target"),
                "min_action_top1": min((v["action_top1"] for v in lofo.values()), default=float("nan")),
            }
            if args.lofo
            else None
        ),
        "loss": [{"epoch": i + 1, "train": c_[0], "held_out": c_[1]} for i, c_ in enumerate(curve)],
        **c.times,
        "lofo_s": round(t2 - t1, 1),
        "train_s": round(t3 - t2, 1),
        "total_s": round(time.perf_counter() - t0, 1),
        "weights_bytes": (out / "policy.safetensors").stat().st_size,
    }
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "report.md").write_text(_markdown(report))
    say(
        f"held-out agreement (randomised files never trained on): action {held_score['action_top1']:.2%}, "
        f"action and target {held_score['action_and_target']:.2%}"
        + (f"; leave-one-file-out mean action {report['lofo']['mean_action_top1']:.2%}" if lofo else "")
        + f"; wrote {out}/policy.safetensors, report.json, report.md, loss.svg in {t3 - t0:.0f} s"
    )
    return 0


def _markdown(r: dict) -> str:
    h = r["held_out_randomised"]
    lines = [
        "# Decision policy: behaviour cloning report",
        "",
        f"Produced by `{r['command'] or 'npcworld train-policy'}` (seed {r['seed']}). A rollout of "
        f"{r['simulated_s']:.0f} simulated s: {r['rollout_decisions']} decisions of {r['npcs']} NPCs, with "
        f"{r['players']} stand-in players: the shipped files ({', '.join(r['shipped_files'])}), "
        f"{r['random_files']} randomised files of {r['random_npcs']} NPCs each (trained on) and "
        f"{r['held_out_files']} randomised files from another seed (never trained on); and "
        f"{r['synthetic_files']} more randomised files, {r['synthetic_rows']} NPCs each, decided on random "
        f"sights without a world (trained on). {r['decisions']} decisions in all.",
        "",
        "## Files never seen in training",
        "",
        "| held out | decisions | action top-1 | action and target |",
        "|---|---|---|---|",
    ]
    if r["lofo"]:
        for fid, v in r["lofo"]["files"].items():
            lines.append(
                f"| {fid} (leave one file out) | {v['decisions']} | {v['action_top1']:.2%} | "
                f"{v['action_and_target']:.2%} |"
            )
    lines.append(
        f"| {r['held_out_files']} randomised files | {h['decisions']} | {h['action_top1']:.2%} | "
        f"{h['action_and_target']:.2%} |"
    )
    if r["lofo"]:
        lines += [
            "",
            f"Leave one file out: each shipped file's decisions, by a model (hidden "
            f"{r['lofo']['hidden']}, {r['lofo']['epochs']} epochs, at most {r['lofo']['rows']} rows: "
            f"smaller and shorter than the shipped one) trained on everything else but the held-out "
            f"randomised files. The randomised row is the shipped model (hidden {r['model']['hidden']}, "
            f"{r['model']['epochs']} epochs).",
        ]
    per = "\n".join(f"| {a} | {v['n']} | {v['top1']:.1%} |" for a, v in h["per_action"].items())
    fin = f" ({h['finishing']} of them finishing a talk or gift: kept, the mask allows nothing else)"
    files = "\n".join(
        f"| {fid} | {v['decisions']} | {v['action_top1']:.2%} | {v['action_and_target']:.2%} |"
        for fid, v in r["model"]["shipped_files"].items()
    )
    lines += [
        "",
        f"Held-out randomised files, per action (n, top-1){fin}:",
        "",
        "| action | n | top-1 |",
        "|---|---|---|",
        per,
        "",
        "## The shipped model on the files it was trained on",
        "",
        "| file | decisions | action top-1 | action and target |",
        "|---|---|---|---|",
        files,
        "",
        f"All training rows: action {r['model']['train']['action_top1']:.2%}, action and target "
        f"{r['model']['train']['action_and_target']:.2%}. Labels outside the structural mask: "
        f"{r['labels_outside_mask']}.",
        "",
        "Loss (action + target cross-entropy) per epoch, train (blue) and held-out randomised files (red): "
        "![loss](loss.svg)",
        "",
        f"Rollout {r['rollout_s']} s, synthetic decisions {r['synthetic_s']} s, leave-one-file-out models "
        f"{r['lofo_s']} s, the shipped model {r['train_s']} s ({r['total_s']} s in all); weights {r['weights_bytes']} bytes; observation {r['obs_dim']} numbers "
        f"(npc/policy/observe.py LAYOUT).",
        "",
    ]
    return "\n".join(lines)
