// snapshot.js — turning `update` messages (whole cells and deltas) into positions, and interpolating
// other entities between two buffered snapshots ~2 ticks in the past.

const INTERP_DELAY_TICKS = 2; // render others this many ticks behind the server (100 ms at 20 Hz)
const KEEP_SNAPSHOTS = 40; // ~2 s at 20 Hz; older ones are never needed

/** A msgpack bin as a DataView (msgpack hands out Uint8Array views into its own buffer: honour byteOffset). */
function view(bin) {
  return new DataView(bin.buffer, bin.byteOffset, bin.byteLength);
}

/**
 * The cells you see after an update (docs/protocol.md, "update"), from what the previous
 * update left (`held`) and this update's `cells` (whole blocks) and `moves` (deltas).
 * A cell block is [cell, ids, pos]: ids = n uint32 LE, pos = 2n uint16 LE (x, y
 * interleaved), each round(coordinate * quant). A move block is [cell, d, fix] or
 * [cell, d, fix, gone, ids, pos]: d = 2n int8 (dx, dy per entity of that cell in `held`, same
 * order; empty: nobody moved), fix = records of 3 uint16 LE (index, x, y) setting those
 * entities' positions outright; then the entities at indices `gone` (uint16 LE) leave the cell
 * and those of `ids`/`pos` (as in a cell block) join it, and the cell is back in id order.
 * Cells in neither list are no longer in view (or empty): dropped.
 * @returns {Map<number, {ids: Uint32Array, pos: Uint16Array}>} cell -> quantised positions
 */
export function applyCells(held, cells, moves) {
  const out = new Map();
  for (const [cell, ids, pos] of cells) {
    const idView = view(ids);
    const posView = view(pos);
    const n = Math.min(ids.byteLength >> 2, pos.byteLength >> 2);
    const block = { ids: new Uint32Array(n), pos: new Uint16Array(2 * n) };
    for (let i = 0; i < n; i++) {
      block.ids[i] = idView.getUint32(i * 4, true);
      block.pos[2 * i] = posView.getUint16(i * 4, true);
      block.pos[2 * i + 1] = posView.getUint16(i * 4 + 2, true);
    }
    out.set(cell, block);
  }
  for (const [cell, d, fix, gone, newIds, newPos] of moves) {
    const before = held.get(cell);
    if (!before) throw new Error(`a move for cell ${cell}, which the previous update did not have`);
    const pos = Uint16Array.from(before.pos);
    const dView = view(d);
    for (let k = 0; k < Math.min(d.byteLength, pos.length); k++) pos[k] += dView.getInt8(k);
    const fixView = view(fix);
    for (let k = 0; k + 6 <= fix.byteLength; k += 6) {
      const i = fixView.getUint16(k, true);
      pos[2 * i] = fixView.getUint16(k + 2, true);
      pos[2 * i + 1] = fixView.getUint16(k + 4, true);
    }
    out.set(cell, gone === undefined ? { ids: before.ids, pos } : regroup(before.ids, pos, gone, newIds, newPos));
  }
  return out;
}

/** A cell's entities less those at indices `gone`, plus those of `newIds`/`newPos`, in id order. */
function regroup(ids, pos, gone, newIds, newPos) {
  const goneView = view(gone);
  const left = new Set();
  for (let k = 0; k + 2 <= gone.byteLength; k += 2) left.add(goneView.getUint16(k, true));
  const all = [];
  for (let i = 0; i < ids.length; i++) if (!left.has(i)) all.push([ids[i], pos[2 * i], pos[2 * i + 1]]);
  const idView = view(newIds);
  const posView = view(newPos);
  for (let i = 0; i < newIds.byteLength >> 2; i++) {
    all.push([idView.getUint32(i * 4, true), posView.getUint16(i * 4, true), posView.getUint16(i * 4 + 2, true)]);
  }
  all.sort((a, b) => a[0] - b[0]);
  const block = { ids: new Uint32Array(all.length), pos: new Uint16Array(2 * all.length) };
  all.forEach(([id, x, y], i) => {
    block.ids[i] = id;
    block.pos[2 * i] = x;
    block.pos[2 * i + 1] = y;
  });
  return block;
}

const STEP_MAX = 32767; // a step beyond this on either coordinate (a jump over half the map) counts as (0, 0)

/**
 * A version-3 `changes` bin as each entity's change of step: Int32Array(2n), x then y. Entity i's
 * nibble is the low (even i) or high (odd i) half of byte i >> 1 of the first ceil(n / 2) bytes; its
 * bits 0-1 code x, 2-3 y: 0 no change, 1 +1, 3 -1, 2 wide (the next int8 after the nibbles, in order).
 */
function changesOf(changes, n) {
  const out = new Int32Array(2 * n);
  if (changes.byteLength === 0) return out;
  let wide = (n + 1) >> 1;
  for (let i = 0; i < n; i++) {
    const nib = (changes[i >> 1] >> ((i & 1) * 4)) & 15;
    for (let j = 0; j < 2; j++) {
      const code = (nib >> (2 * j)) & 3;
      out[2 * i + j] = code === 3 ? -1 : code === 2 ? (changes[wide++] << 24) >> 24 : code;
    }
  }
  return out;
}

/**
 * applyCells for a version-3 update (docs/protocol.md, "update, version 3"). A cell block is
 * [cell, ids, pos, steps]: steps = 2n int16 LE, each entity's last step (quantised units a tick). A move
 * block is [cell, changes], [cell, changes, fix] or [cell, changes, fix, gone, came]: entity i's step
 * changes by what `changes` says (changesOf; empty: nothing), then it moves by its step; a fix sets
 * a position outright; every entity's step is then where it is less where it was ((0, 0) beyond
 * +-32767). Then those at `gone` leave, those of `came` (records of id u32, x u16, y u16, sx i16,
 * sy i16, LE) join, and the cell is back in id order.
 * @returns {Map<number, {ids: Uint32Array, pos: Uint16Array, steps: Int16Array}>}
 */
export function applyCells3(held, cells, moves) {
  const out = new Map();
  for (const [cell, ids, pos, steps] of cells) {
    const idView = view(ids);
    const posView = view(pos);
    const n = Math.min(ids.byteLength >> 2, pos.byteLength >> 2, steps.byteLength >> 2);
    const block = { ids: new Uint32Array(n), pos: new Uint16Array(2 * n), steps: new Int16Array(2 * n) };
    const stepView = view(steps);
    for (let i = 0; i < n; i++) {
      block.ids[i] = idView.getUint32(i * 4, true);
      block.pos[2 * i] = posView.getUint16(i * 4, true);
      block.pos[2 * i + 1] = posView.getUint16(i * 4 + 2, true);
      block.steps[2 * i] = stepView.getInt16(i * 4, true);
      block.steps[2 * i + 1] = stepView.getInt16(i * 4 + 2, true);
    }
    out.set(cell, block);
  }
  for (const [cell, changes, fix, gone, came] of moves) {
    const before = held.get(cell);
    if (!before) throw new Error(`a move for cell ${cell}, which the previous update did not have`);
    const n = before.ids.length;
    const now = changesOf(changes, n);
    for (let k = 0; k < 2 * n; k++) now[k] += before.pos[k] + before.steps[k];
    if (fix) {
      const fixView = view(fix);
      for (let k = 0; k + 6 <= fix.byteLength; k += 6) {
        const i = fixView.getUint16(k, true);
        now[2 * i] = fixView.getUint16(k + 2, true);
        now[2 * i + 1] = fixView.getUint16(k + 4, true);
      }
    }
    const pos = new Uint16Array(2 * n);
    const steps = new Int16Array(2 * n);
    for (let i = 0; i < n; i++) {
      const sx = now[2 * i] - before.pos[2 * i];
      const sy = now[2 * i + 1] - before.pos[2 * i + 1];
      const far = Math.abs(sx) > STEP_MAX || Math.abs(sy) > STEP_MAX;
      pos[2 * i] = now[2 * i];
      pos[2 * i + 1] = now[2 * i + 1];
      steps[2 * i] = far ? 0 : sx;
      steps[2 * i + 1] = far ? 0 : sy;
    }
    out.set(cell, gone === undefined ? { ids: before.ids, pos, steps } : regroup3(before.ids, pos, steps, gone, came));
  }
  return out;
}

/** regroup with each entity's step. */
function regroup3(ids, pos, steps, gone, came) {
  const goneView = view(gone);
  const left = new Set();
  for (let k = 0; k + 2 <= gone.byteLength; k += 2) left.add(goneView.getUint16(k, true));
  const all = [];
  for (let i = 0; i < ids.length; i++) {
    if (!left.has(i)) all.push([ids[i], pos[2 * i], pos[2 * i + 1], steps[2 * i], steps[2 * i + 1]]);
  }
  const cameView = view(came);
  for (let k = 0; k + 12 <= came.byteLength; k += 12) {
    all.push([
      cameView.getUint32(k, true),
      cameView.getUint16(k + 4, true),
      cameView.getUint16(k + 6, true),
      cameView.getInt16(k + 8, true),
      cameView.getInt16(k + 10, true),
    ]);
  }
  all.sort((a, b) => a[0] - b[0]);
  const block = { ids: new Uint32Array(all.length), pos: new Uint16Array(2 * all.length), steps: new Int16Array(2 * all.length) };
  all.forEach(([id, x, y, sx, sy], i) => {
    block.ids[i] = id;
    block.pos[2 * i] = x;
    block.pos[2 * i + 1] = y;
    block.steps[2 * i] = sx;
    block.steps[2 * i + 1] = sy;
  });
  return block;
}

/**
 * Positions of every entity in the cells held (applyCells), in world units.
 * @returns {Map<number, {x: number, y: number}>} id -> world units
 */
export function positionsOf(held, quant) {
  const out = new Map();
  for (const { ids, pos } of held.values()) {
    for (let i = 0; i < ids.length; i++) out.set(ids[i], { x: pos[2 * i] / quant, y: pos[2 * i + 1] / quant });
  }
  return out;
}

/**
 * Estimates which server tick "now" is, from the ticks of arriving updates.
 * Each arrival gives a sample tick - now * rate = offset - lateness * rate;
 * the estimate is the median of the last CLOCK_SAMPLES samples, i.e. "when an
 * update typically arrives". A median ignores the odd early or late message
 * (a browser stall, a GC pause) and still follows a server that slows down.
 */
const CLOCK_SAMPLES = 40; // 2 s at 20 Hz

export class TickClock {
  constructor(tickRate) {
    this.rate = tickRate / 1000; // ticks per ms
    this.samples = []; // ticks, newest last
    this.offset = null; // ticks
  }

  observe(tick, nowMs) {
    const sample = tick - nowMs * this.rate;
    // A jump of many ticks (server restarted or paused): start over.
    if (this.offset !== null && Math.abs(sample - this.offset) > 20) this.samples = [];
    this.samples.push(sample);
    if (this.samples.length > CLOCK_SAMPLES) this.samples.shift();
    const sorted = [...this.samples].sort((a, b) => a - b);
    this.offset = sorted[sorted.length >> 1];
  }

  /** Fractional server tick at nowMs (ms, performance.now()). */
  tickAt(nowMs) {
    return this.offset === null ? 0 : this.offset + nowMs * this.rate;
  }
}

/** The last few snapshots, {tick, positions}, in tick order. */
export class SnapshotBuffer {
  constructor() {
    this.snaps = [];
  }

  push(tick, positions) {
    const last = this.snaps[this.snaps.length - 1];
    if (last && tick <= last.tick) {
      if (tick < last.tick - 100) this.snaps = []; // server restarted: its ticks start over
      else return; // duplicate or out of order: keep what we have
    }
    this.snaps.push({ tick, positions });
    if (this.snaps.length > KEEP_SNAPSHOTS) this.snaps.shift();
  }

  clear() {
    this.snaps = [];
  }

  latest() {
    return this.snaps[this.snaps.length - 1] || null;
  }

  /**
   * Position of `id` at fractional tick `t`, interpolated between the two
   * snapshots around it. Before the oldest or after the newest snapshot, the
   * nearest one is used (no extrapolation). null when the id is in neither.
   */
  positionAt(id, t) {
    const snaps = this.snaps;
    if (snaps.length === 0) return null;
    let i = snaps.length - 1;
    while (i > 0 && snaps[i].tick > t) i--;
    const a = snaps[i];
    const b = snaps[i + 1];
    const pa = a.positions.get(id);
    if (!b || a.tick >= t) return pa || (b && b.positions.get(id)) || null;
    const pb = b.positions.get(id);
    if (!pa || !pb) return pb || pa || null;
    const f = (t - a.tick) / (b.tick - a.tick);
    return { x: pa.x + (pb.x - pa.x) * f, y: pa.y + (pb.y - pa.y) * f };
  }

  /** Render time for other entities: the server tick now, minus the delay. */
  static renderTick(clock, nowMs) {
    return clock.tickAt(nowMs) - INTERP_DELAY_TICKS;
  }
}
