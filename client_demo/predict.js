// predict.js — client-side prediction of your own entity (docs/protocol.md,
// "input"): move locally by the server's rule each client tick, and when an
// update arrives, restart from the server's position and replay the inputs the
// server has not applied yet (seq > ack), one tick each.

const SNAP_DISTANCE = 96; // world units; a bigger correction is a teleport, not smoothed
const SMOOTH_MS = 100; // a visual correction decays by 1/e in this many ms
const MAX_PENDING = 200; // inputs kept for replay (10 s at 20 Hz); older are dropped

/**
 * Move a circle of `radius` at (x, y) by (stepX, stepY), all in world units,
 * by the server's rule (world/movement.py): the move is split into substeps of
 * at most half a tile; each substep moves along x, then along y, and stops
 * exactly touching the nearest blocked tile ahead (the map's outside counts as
 * blocked). A diagonal move into a wall thus keeps its part along the wall and
 * slides, and circles glide round corners instead of catching on them.
 * @param {TileMap} map
 * @returns {{x: number, y: number}}
 */
export function moveCircle(map, x, y, stepX, stepY, radius) {
  const longest = Math.max(Math.abs(stepX), Math.abs(stepY));
  if (longest === 0) return { x, y };
  const substeps = Math.max(1, Math.ceil(longest / (map.tileW / 2)));
  const ddx = stepX / substeps;
  const ddy = stepY / substeps;
  for (let i = 0; i < substeps; i++) {
    x = sweep(map, x, y, ddx, radius, true);
    y = sweep(map, y, x, ddy, radius, false);
  }
  return { x, y };
}

/**
 * One axis of one substep: the coordinate `a` along the motion moves by `d`
 * (|d| <= half a tile) with the other coordinate `b` fixed; returns the new `a`.
 * A blocked tile at distance db across the motion (db < radius) stops the
 * centre at face - sqrt(radius^2 - db^2) from the tile's near face.
 */
function sweep(map, a, b, d, radius, alongX) {
  if (d === 0) return a;
  const ts = map.tileW; // square tiles
  const s = Math.sign(d);
  const na = a + d;
  const a0 = Math.floor(a / ts); // tile of the centre before
  const lead = Math.floor((na + s * radius) / ts); // tile of the leading edge after
  const ahead = Math.abs(lead - a0); // tiles ahead to check
  const bLo = Math.floor((b - radius) / ts);
  const bHi = Math.floor((b + radius) / ts);
  const nearFace = s < 0 ? ts : 0; // tiles behind us face us with their far side
  let best = s * na; // want s * new_a <= every bound
  for (let k = 1; k <= ahead; k++) {
    const ai = a0 + s * k;
    const face = ai * ts + nearFace;
    for (let bj = bLo; bj <= bHi; bj++) {
      const lo = bj * ts;
      const db = Math.max(lo - b, b - (lo + ts), 0);
      if (db >= radius) continue;
      const blocked = alongX ? map.isBlockedTile(ai, bj) : map.isBlockedTile(bj, ai);
      if (blocked) best = Math.min(best, s * face - Math.sqrt(Math.max(radius * radius - db * db, 0)));
    }
  }
  return s * best;
}

/** A direction from held keys, scaled to length <= 1 as the server does. */
export function normalise(dx, dy) {
  const len = Math.hypot(dx, dy);
  return len > 1 ? { dx: dx / len, dy: dy / len } : { dx, dy };
}

export class Predictor {
  /**
   * @param {object} welcome  the welcome message (speed, radius, tick_rate)
   * @param {TileMap} map
   */
  constructor(welcome, map) {
    this.map = map;
    // World units per tick at full speed, computed as the server does (speed * dt).
    this.stepLength = welcome.speed * (1 / welcome.tick_rate);
    this.radius = welcome.radius;
    this.pending = []; // inputs sent and not yet acknowledged: {seq, dx, dy}
    this.pos = null; // predicted position now, world units
    this.prevPos = null; // predicted position one client tick ago (for drawing between ticks)
    this.server = null; // last server position of own entity
    this.correction = { x: 0, y: 0 }; // visual offset still to be smoothed away, world units
    this.largestJump = 0; // largest reconciliation correction so far, world units (diagnostics)
  }

  /** One client tick with direction (dx, dy) sent as input `seq`. */
  tick(seq, dx, dy) {
    if (this.pos === null) return;
    this.pending.push({ seq, dx, dy });
    if (this.pending.length > MAX_PENDING) this.pending.shift();
    this.prevPos = this.pos;
    this.pos = this.step(this.pos, dx, dy);
  }

  /** A client tick where nothing was sent: the entity stands still. */
  idle() {
    this.prevPos = this.pos;
  }

  step(p, dx, dy) {
    return moveCircle(this.map, p.x, p.y, dx * this.stepLength, dy * this.stepLength, this.radius);
  }

  /** An update arrived: own server position `server` ({x, y}) and `ack`. */
  reconcile(server, ack) {
    this.server = server;
    this.pending = this.pending.filter((inp) => inp.seq > ack);
    let p = { x: server.x, y: server.y };
    for (const inp of this.pending) p = this.step(p, inp.dx, inp.dy);
    if (this.pos !== null) {
      const jumpX = this.pos.x - p.x;
      const jumpY = this.pos.y - p.y;
      this.largestJump = Math.max(this.largestJump, Math.hypot(jumpX, jumpY));
      if (Math.hypot(jumpX, jumpY) < SNAP_DISTANCE) {
        this.correction.x += jumpX;
        this.correction.y += jumpY;
        this.prevPos = { x: this.prevPos.x - jumpX, y: this.prevPos.y - jumpY };
      } else {
        this.correction = { x: 0, y: 0 };
        this.prevPos = p;
      }
    } else {
      this.prevPos = p;
    }
    this.pos = p;
  }

  /** Forget everything (new connection: seq and ack start over). */
  reset() {
    this.pending = [];
    this.pos = this.prevPos = this.server = null;
    this.correction = { x: 0, y: 0 };
  }

  /**
   * Where to draw own entity: between the last two predicted positions by
   * `alpha` (0..1, fraction of the client tick elapsed), plus what is left of
   * recent corrections, which decay over SMOOTH_MS.
   */
  drawPos(alpha, frameMs) {
    if (this.pos === null) return null;
    const decay = Math.exp(-frameMs / SMOOTH_MS);
    this.correction.x *= decay;
    this.correction.y *= decay;
    const a = this.prevPos || this.pos;
    return {
      x: a.x + (this.pos.x - a.x) * alpha + this.correction.x,
      y: a.y + (this.pos.y - a.y) * alpha + this.correction.y,
    };
  }
}
