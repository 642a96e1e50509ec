"""`npcworld train-policy`: clone the built-in behaviour into the decision policy.

1. Roll out: a headless world (no server, no clock: stepped as fast as the
   CPU goes) with the NPC files' NPCs, each file's NPCs multiplied up to
   `--npcs`, and `--players` stand-in players walking at random (some stand
   still, so NPCs see lingering, "suspicious" players). Every think records
   the observation row (npc/policy/observe.py) and the built-in choice as its label.
   A short game day (`--day-length`) makes the schedules and needs cycle.
2. Train by behaviour cloning: cross-entropy on the action and on its target
   slot (the target head sees the true action: teacher forcing). NPCs whose
   entity id is a multiple of 5 are held out.
3. Write the weights (safetensors), report.json, report.md and loss.png
   (the loss curve, drawn by a small rasteriser below: no plotting library).

Fixed seed: the same command gives the same weights on the same machine.
"""

from __future__ import annotations

import argparse
import json
import math
import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np

from world.sim import NPC, PLAYER, World, WorldConfig
from world.tilemap import load_map

from npc.minds.builtin import Decision
from npc.minds.cast import Cast
from npc.policy.observe import A, ACTIONS, OBS_DIM, T, Observations, label

ROOT = Path(__file__).resolve().parents[2]
HOLDOUT = 5     # NPCs with eid % HOLDOUT == 0 are held out


class Recorder:
    """Sits in `Cast.policy` during a rollout: records (row, built-in label) for every think."""

    def __init__(self, obs: Observations):
        self.obs = obs
        self.parts: list[tuple] = []
        self.labels: list[tuple[int, int]] = []

    def begin_tick(self, cast) -> None:
        pass

    def note(self, m, p, choice) -> None:
        self.obs.add(p, m.state, m.defn, choice)
        d = choice.decision
        if d.keep:      # finishing a talk or gift: the answer is "go on with the current one"
            d = Decision(p.intent.action, target=p.intent.target)
        self.labels.append(label(self.obs.rows[-1], d))

    def end_tick(self) -> None:
        if len(self.obs):
            eids = np.asarray([r.eid for r in self.obs.rows])
            try:
                self.parts.append((*self.obs.build(), eids))
            finally:
                self.obs.clear()


def rollout(npc_dir: str, npcs: int, players: int, seconds: float, seed: int, day_length: float,
            tick_rate: int = 20, progress=None) -> dict:
    tilemap = load_map(str(ROOT / "assets" / "maps" / "default.tmj"))
    world = World(tilemap, WorldConfig(seed=seed, day_length_s=day_length))
    cast = Cast(world, npc_dir, tick_rate=tick_rate)
    cast.load_all()
    ids = sorted(cast.defs)
    i = 0
    while len(cast.minds) < npcs and ids:
        cast.spawn(ids[i % len(ids)])
        i += 1
    rng = np.random.default_rng(seed)
    places = world.places
    pids = [world.spawn(PLAYER, f"player {k}", "#ffffff", place=places[int(rng.integers(len(places)))])
            for k in range(players)]
    places_xy = {name: world.place_position(name) for name in places}
    rec = Recorder(Observations(tuple(tilemap.world_size), places_xy, lambda: world.of_kind(NPC)[1]))
    cast.policy = rec
    dt = 1.0 / tick_rate
    ticks = int(seconds * tick_rate)
    for tick in range(ticks):
        if tick % tick_rate == 0:       # once a simulated second, a quarter of the players change course
            for pid in pids:
                if rng.random() < 0.25:
                    if rng.random() < 0.4:
                        world.set_direction(pid, 0.0, 0.0)      # stand and linger
                    else:
                        ang = rng.uniform(0, 2 * math.pi)
                        world.set_direction(pid, math.cos(ang), math.sin(ang))
            if progress and tick % (tick_rate * 30) == 0:
                progress(f"rollout: {tick * dt:.0f}/{seconds:.0f} simulated s, {len(rec.labels)} decisions")
        cast.tick()
        world.step(dt)
    rec.end_tick()
    obs = np.concatenate([p[0] for p in rec.parts])
    return {"obs": obs, "mask": np.concatenate([p[1] for p in rec.parts]),
            "tmask": np.concatenate([p[2] for p in rec.parts]), "eid": np.concatenate([p[3] for p in rec.parts]),
            "action": np.asarray([lb[0] for lb in rec.labels]), "target": np.asarray([lb[1] for lb in rec.labels]),
            "npcs": len(cast.minds), "ticks": ticks}


def train(data: dict, epochs: int, seed: int, hidden: int, batch: int = 512, lr: float = 3e-3, progress=None):
    import torch
    import torch.nn.functional as F

    from npc.policy.model import Policy

    torch.manual_seed(seed)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    held = data["eid"] % HOLDOUT == 0
    t = {k: torch.from_numpy(np.ascontiguousarray(data[k])) for k in ("obs", "mask", "tmask", "action", "target")}
    tr = torch.from_numpy(np.flatnonzero(~held))
    te = torch.from_numpy(np.flatnonzero(held))
    model = Policy(hidden=hidden)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs))
    g = torch.Generator().manual_seed(seed)

    def loss_on(idx, train_mode: bool):
        obs, mask, tmask = t["obs"][idx], t["mask"][idx], t["tmask"][idx]
        a_y, t_y = t["action"][idx].long(), t["target"][idx].long()
        h = model.body(obs)                                                       # (B, H)
        a = model.action(h).masked_fill(~mask, float("-inf"))                     # (B, A)
        tl = model.targets(h, F.one_hot(a_y, A).float(), tmask)                   # (B, T) teacher forcing
        loss = F.cross_entropy(a, a_y) + F.cross_entropy(tl, t_y)
        return loss, a, tl

    curve = []
    for epoch in range(epochs):
        model.train()
        perm = tr[torch.randperm(len(tr), generator=g)]
        total, n = 0.0, 0
        for i in range(0, len(perm), batch):
            idx = perm[i:i + batch]
            loss, _, _ = loss_on(idx, True)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            n += len(idx)
        sched.step()
        model.eval()
        with torch.no_grad():
            held_loss = loss_on(te, False)[0].item() if len(te) else float("nan")
        curve.append((total / max(1, n), held_loss))
        if progress:
            progress(f"epoch {epoch + 1}/{epochs}: train loss {curve[-1][0]:.4f}, held-out loss {held_loss:.4f}")

    model.eval()
    with torch.no_grad():
        def agree(idx):
            if not len(idx):
                return float("nan"), float("nan"), float("nan"), []
            a, tl = model(t["obs"][idx], t["mask"][idx], t["tmask"][idx])
            pa, pt = a.argmax(-1), tl.argmax(-1)
            ya, yt = t["action"][idx].long(), t["target"][idx].long()
            ok_a = pa == ya
            per = []
            for k in range(A):
                sel = ya == k
                if sel.any():
                    per.append((ACTIONS[k], int(sel.sum()), float(ok_a[sel].float().mean())))
            allowed = bool(t["mask"][idx].gather(1, pa[:, None]).all())
            assert allowed, "the policy chose a disallowed action"
            return (float(ok_a.float().mean()), float((ok_a & (pt == yt)).float().mean()),
                    float((pt == yt)[ok_a].float().mean()) if ok_a.any() else float("nan"), per)
        train_a = agree(tr)
        held_a = agree(te)
    return model, curve, train_a, held_a


# -- a tiny PNG line chart (no plotting library) -------------------------------------------------

_FONT = {  # 3x5 digits and a few letters, rows top to bottom, 3 bits each
    "0": (7, 5, 5, 5, 7), "1": (2, 6, 2, 2, 7), "2": (7, 1, 7, 4, 7), "3": (7, 1, 7, 1, 7), "4": (5, 5, 7, 1, 1),
    "5": (7, 4, 7, 1, 7), "6": (7, 4, 7, 5, 7), "7": (7, 1, 1, 1, 1), "8": (7, 5, 7, 5, 7), "9": (7, 5, 7, 1, 7),
    ".": (0, 0, 0, 0, 2), " ": (0, 0, 0, 0, 0), "-": (0, 0, 7, 0, 0),
}


def _text(img, x, y, s, color, scale=2):
    for ch in s:
        for r, bits in enumerate(_FONT.get(ch, _FONT[" "])):
            for c in range(3):
                if bits >> (2 - c) & 1:
                    img[y + r * scale:y + (r + 1) * scale, x + c * scale:x + (c + 1) * scale] = color
        x += 4 * scale


def _line(img, x0, y0, x1, y1, color):
    n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    xs = np.linspace(x0, x1, n).round().astype(int)
    ys = np.linspace(y0, y1, n).round().astype(int)
    for dx in (0, 1):
        for dy in (0, 1):
            img[np.clip(ys + dy, 0, img.shape[0] - 1), np.clip(xs + dx, 0, img.shape[1] - 1)] = color


def loss_png(curves: list[list[float]], colors: list[tuple], path: Path, w: int = 640, h: int = 360) -> None:
    """Lines (one per curve, x = epoch) on white, with the y range labelled; written as an RGB PNG."""
    img = np.full((h, w, 3), 255, np.uint8)
    left, right, top, bottom = 60, w - 20, 20, h - 40
    vals = [v for c in curves for v in c if math.isfinite(v)]
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
    hi = hi if hi > lo else lo + 1.0
    _line(img, left, top, left, bottom, (0, 0, 0))
    _line(img, left, bottom, right, bottom, (0, 0, 0))
    for frac in (0.0, 0.5, 1.0):
        y = bottom - frac * (bottom - top)
        _line(img, left - 5, y, left, y, (0, 0, 0))
        _text(img, 4, int(y) - 5, f"{lo + frac * (hi - lo):.2f}", (0, 0, 0))
    for curve, color in zip(curves, colors):
        n = len(curve)
        pts = [(left + (i / max(1, n - 1)) * (right - left), bottom - (v - lo) / (hi - lo) * (bottom - top))
               for i, v in enumerate(curve) if math.isfinite(v)]
        for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
            _line(img, x0, y0, x1, y1, color)
    _text(img, right - 40, bottom + 12, str(max(len(c) for c in curves)), (0, 0, 0))
    _text(img, left, bottom + 12, "1", (0, 0, 0))
    raw = b"".join(b"\0" + img[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
    path.write_bytes(png)


# -- the command -----------------------------------------------------------------------------------

def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("train-policy", help="clone the built-in NPC behaviour into the decision policy",
                       description="Roll out the built-in behaviour headless, train the policy by behaviour "
                       "cloning, write weights (safetensors) and a report (agreement, loss curve).")
    p.add_argument("--out", default=str(ROOT / "assets" / "policy"), help="output folder (default: assets/policy)")
    p.add_argument("--npc-dir", default=str(ROOT / "assets" / "npcs"), help="NPC files to clone")
    p.add_argument("--npcs", type=int, default=300, help="NPCs in the rollout (files multiplied up to this)")
    p.add_argument("--players", type=int, default=60, help="stand-in players walking at random")
    p.add_argument("--seconds", type=float, default=240.0, help="simulated seconds of rollout")
    p.add_argument("--day-length", type=float, default=120.0, help="simulated seconds per game day in the rollout")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--hidden", type=int, default=128, help="hidden units of the policy MLP")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(args) -> int:
    import torch

    from npc.policy.model import save

    torch.set_num_threads(max(1, torch.get_num_threads()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def say(msg: str) -> None:
        print(f"train-policy: {msg}", flush=True)

    t0 = time.perf_counter()
    data = rollout(args.npc_dir, args.npcs, args.players, args.seconds, args.seed, args.day_length, progress=say)
    t1 = time.perf_counter()
    say(f"rollout: {len(data['action'])} decisions from {data['npcs']} NPCs over {data['ticks']} ticks "
        f"in {t1 - t0:.1f} s ({data['ticks'] / 20 / (t1 - t0):.0f}x real time)")
    model, curve, tr, te = train(data, args.epochs, args.seed, args.hidden, progress=say)
    t2 = time.perf_counter()
    save(model, out / "policy.safetensors")
    loss_png([[c[0] for c in curve], [c[1] for c in curve]], [(31, 119, 180), (214, 39, 40)], out / "loss.png")
    counts = np.bincount(data["action"], minlength=A)
    report = {
        "command": "npcworld train-policy " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["train-policy"] else "",
        "seed": args.seed, "npcs": data["npcs"], "players": args.players, "simulated_s": args.seconds,
        "day_length_s": args.day_length, "epochs": args.epochs, "hidden": args.hidden, "obs_dim": OBS_DIM,
        "targets": T, "decisions": int(len(data["action"])),
        "held_out_decisions": int((data["eid"] % HOLDOUT == 0).sum()),
        "labels": {ACTIONS[k]: int(c) for k, c in enumerate(counts) if c},
        "train": {"action_top1": tr[0], "action_and_target_top1": tr[1]},
        "held_out": {"action_top1": te[0], "action_and_target_top1": te[1], "target_given_action": te[2],
                     "per_action": {a: {"n": n, "top1": acc} for a, n, acc in te[3]}},
        "loss": [{"epoch": i + 1, "train": c[0], "held_out": c[1]} for i, c in enumerate(curve)],
        "rollout_s": round(t1 - t0, 1), "train_s": round(t2 - t1, 1),
        "weights_bytes": (out / "policy.safetensors").stat().st_size,
    }
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    per = "\n".join(f"| {a} | {v['n']} | {v['top1']:.1%} |" for a, v in report["held_out"]["per_action"].items())
    (out / "report.md").write_text(
        f"# Decision policy: behaviour cloning report\n\n"
        f"Produced by `npcworld train-policy` (seed {args.seed}): {report['decisions']} decisions of "
        f"{data['npcs']} NPCs over {args.seconds:.0f} simulated s with {args.players} stand-in players; "
        f"held out: the NPCs with id % {HOLDOUT} == 0 ({report['held_out_decisions']} decisions).\n\n"
        f"| | train | held out |\n|---|---|---|\n"
        f"| action top-1 agreement | {tr[0]:.2%} | {te[0]:.2%} |\n"
        f"| action and target | {tr[1]:.2%} | {te[1]:.2%} |\n\n"
        f"Held out, per action (n, top-1):\n\n| action | n | top-1 |\n|---|---|---|\n{per}\n\n"
        f"Loss (action + target cross-entropy) per epoch, train (blue) and held out (red): ![loss](loss.png)\n\n"
        f"Rollout {report['rollout_s']} s, training {report['train_s']} s; weights "
        f"{report['weights_bytes']} bytes.\n")
    say(f"held-out agreement: action {te[0]:.2%}, action and target {te[1]:.2%} "
        f"(train {tr[0]:.2%}); wrote {out}/policy.safetensors, report.json, report.md, loss.png "
        f"in {t2 - t0:.0f} s")
    return 0
