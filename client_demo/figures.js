// figures.js — characters drawn on the canvas from the sprite sheet
// client_demo/sprites.png (made by scripts/make_sprites.py, which documents its
// layout): a player, an NPC that talks (hat) and one that does not (hood),
// each in 4 facings x 4 walking frames, their clothes in the entity's colour
// (the sheet's grey clothes mask multiplied by it, one tinted copy per
// colour). Each figure faces its direction of motion and steps through its
// frames by distance walked. Until the sheet has loaded (or if it cannot be),
// figures are drawn procedurally, with the same facing and swing.
// World units throughout (1 unit = 1 CSS pixel at the default zoom); the
// figure stands with its feet at the entity's position + radius * 0.9.
//
// Motion is derived from the positions drawn frame by frame (the protocol
// sends positions only), so it works for interpolated others and for your
// predicted self alike.

// The sheet's layout: must match scripts/make_sprites.py (tests/client_demo/test_sprites.py checks the sheet).
const FRAME_W = 16; // px
const FRAME_H = 24; // px
const FRAMES = 4; // 0 standing, 1 one leg forward, 2 passing, 3 the other leg forward
const VARIANTS = ["player", "npc", "wanderer"];
const FACINGS = ["down", "left", "right", "up"];
const HALF = VARIANTS.length * FACINGS.length * FRAME_H; // px: the clothes mask starts this far down
const WALK = [1, 2, 3, 2]; // frames of a walking cycle, a quarter of the legs' phase each
const FEET_ROW = 23; // the sheet's row on which a figure stands (the outline under its shoes)

const sheet = { img: null, ready: false, failed: false, tinted: new Map() };
if (typeof Image !== "undefined") {
  sheet.img = new Image();
  sheet.img.onload = () => { sheet.ready = true; };
  sheet.img.onerror = () => { sheet.failed = true; };
  sheet.img.src = new URL("./sprites.png", import.meta.url).href;
}

/** "loading", "ready" or "failed": whether figures come from the sheet (else they are drawn procedurally). */
export function spriteState() {
  return sheet.ready ? "ready" : sheet.failed ? "failed" : "loading";
}

/** Which variant of the sheet an entity wears: players, NPCs that talk (of a file), the rest. */
export function variantOf(e) {
  if (e.kind !== NPC) return "player";
  return e.talks ? "npc" : "wanderer";
}

/** The walking frame of a pose: 0 when standing, else by the legs' phase (distance walked). */
export function frameOf(pose) {
  if (!pose.walking) return 0;
  const q = Math.floor((pose.phase / (2 * Math.PI)) * 4) % 4;
  return WALK[(q + 4) % 4];
}

/** The sheet with its clothes in `color` (cached per colour): HALF px high, the mask's alpha kept. */
function tinted(color) {
  let c = sheet.tinted.get(color);
  if (c) return c;
  const w = FRAMES * FRAME_W;
  c = document.createElement("canvas");
  c.width = w;
  c.height = HALF;
  const t = c.getContext("2d");
  t.drawImage(sheet.img, 0, HALF, w, HALF, 0, 0, w, HALF);
  t.globalCompositeOperation = "multiply";
  t.fillStyle = color;
  t.fillRect(0, 0, w, HALF);
  t.globalCompositeOperation = "destination-in";
  t.drawImage(sheet.img, 0, HALF, w, HALF, 0, 0, w, HALF);
  t.globalCompositeOperation = "source-over";
  t.drawImage(sheet.img, 0, 0, w, HALF, 0, 0, w, HALF);
  if (sheet.tinted.size > 256) sheet.tinted.clear(); // bounded: colours are per entity, rarely many
  sheet.tinted.set(color, c);
  return c;
}

const NPC = 1; // entity kind
const STEP_UNITS = 7; // world units walked per half leg swing
const MOVING_MS = 150; // a figure that has not moved for this long stands still
const MIN_STEP = 0.05; // world units: smaller moves between frames are jitter, not walking
const SCALE = 1.3; // a figure is drawn this much larger than the collision radius, so it reads as a person

/** Per entity id: {facing, phase, x, y, movedAt}. Call update() once a frame with what is drawn. */
export class Motion {
  constructor() {
    this.state = new Map();
  }

  /** @param {Array<{id, x, y}>} entities  @param {number} now  ms */
  update(entities, now) {
    const seen = new Set();
    for (const e of entities) {
      seen.add(e.id);
      const s = this.state.get(e.id);
      if (!s) {
        this.state.set(e.id, { facing: "down", phase: 0, x: e.x, y: e.y, movedAt: -Infinity });
        continue;
      }
      const dx = e.x - s.x;
      const dy = e.y - s.y;
      const d = Math.hypot(dx, dy);
      if (d > MIN_STEP && d < 200) { // a jump (respawn, resume) is not a step
        s.facing = Math.abs(dx) > Math.abs(dy) ? (dx < 0 ? "left" : "right") : dy < 0 ? "up" : "down";
        s.phase = (s.phase + (d / STEP_UNITS) * Math.PI) % (2 * Math.PI);
        s.movedAt = now;
      }
      s.x = e.x;
      s.y = e.y;
    }
    for (const id of this.state.keys()) if (!seen.has(id)) this.state.delete(id);
  }

  /** {facing, walking, phase} of an entity (standing, facing down, when unknown). */
  of(id, now) {
    const s = this.state.get(id);
    if (!s) return { facing: "down", walking: false, phase: 0 };
    return { facing: s.facing, walking: now - s.movedAt < MOVING_MS, phase: s.phase };
  }
}

/** A CSS hex colour darkened (f < 1) or lightened (f > 1); other colours pass through. */
export function shade(color, f) {
  const m = /^#([0-9a-f]{6})$/i.exec(color || "");
  if (!m) return color || "#999999";
  const n = parseInt(m[1], 16);
  const ch = (v) => Math.max(0, Math.min(255, Math.round(f > 1 ? v + (255 - v) * (f - 1) : v * f)));
  const r = ch(n >> 16);
  const g = ch((n >> 8) & 0xff);
  const b = ch(n & 0xff);
  return `#${((1 << 24) | (r << 16) | (g << 8) | b).toString(16).slice(1)}`;
}

/** Height of a figure above its position: where a bubble or a name may start (world units). */
export function headTop(r) {
  return r * 2.1;
}

/**
 * Draw one figure: from the sheet once it has loaded, else procedurally.
 * @param {CanvasRenderingContext2D} g  in world units
 * @param {{x, y, kind, color, talks, mine}} e
 * @param {{facing, walking, phase}} pose
 * @param {number} radius  entity radius, world units
 * @returns {{variant, facing, frame, sprite: boolean}} what was drawn
 */
export function drawFigure(g, e, pose, radius) {
  const drawn = { variant: variantOf(e), facing: pose.facing, frame: frameOf(pose), sprite: sheet.ready };
  if (!sheet.ready) {
    drawShapes(g, e, pose, radius);
    return drawn;
  }
  const s = radius / 8; // world units per sheet pixel: a figure is 2 radii wide, 3 high
  const feet = e.y + radius * 0.9;
  g.beginPath();
  g.ellipse(e.x, feet, radius * 0.85, radius * 0.32, 0, 0, Math.PI * 2);
  g.fillStyle = "rgba(0,0,0,0.28)";
  g.fill();
  if (e.mine) { // yours: a thin white ring at the feet (the gold one is the NPC you talk to)
    g.lineWidth = 1.5;
    g.strokeStyle = "rgba(255,255,255,0.85)";
    g.stroke();
  }
  const row = (VARIANTS.indexOf(drawn.variant) * FACINGS.length + Math.max(0, FACINGS.indexOf(pose.facing))) * FRAME_H;
  const smooth = g.imageSmoothingEnabled;
  g.imageSmoothingEnabled = false;
  g.drawImage(tinted(e.color || "#cccccc"), drawn.frame * FRAME_W, row, FRAME_W, FRAME_H,
    e.x - (FRAME_W / 2) * s, feet - FEET_ROW * s, FRAME_W * s, FRAME_H * s);
  g.imageSmoothingEnabled = smooth;
  return drawn;
}

/** The procedural figure (while the sheet loads): legs, torso in the entity's colour, head. */
function drawShapes(g, e, pose, radius) {
  const r = radius * SCALE;
  const { x } = e;
  const y = e.y + radius - r; // the feet stay where the collision circle's bottom is
  const body = e.color || "#cccccc";
  const dark = shade(body, 0.55);
  const feet = y + r * 0.9;
  const swing = pose.walking ? Math.sin(pose.phase) : 0;
  const bob = pose.walking ? Math.abs(Math.cos(pose.phase)) * r * 0.08 : 0;
  const side = pose.facing === "left" || pose.facing === "right";

  // shadow
  g.beginPath();
  g.ellipse(x, feet, r * 0.8, r * 0.28, 0, 0, Math.PI * 2);
  g.fillStyle = "rgba(0,0,0,0.28)";
  g.fill();

  // legs: two strokes that swing opposite ways (front/back when seen from the side)
  g.lineCap = "round";
  g.lineWidth = r * 0.28;
  g.strokeStyle = "#2b2b33";
  const hip = y + r * 0.25 - bob;
  for (const sign of [-1, 1]) {
    const off = side ? 0 : sign * r * 0.22;
    const reach = swing * sign * r * 0.35;
    g.beginPath();
    g.moveTo(x + off, hip);
    if (side) g.lineTo(x + reach, feet - r * 0.1);
    else g.lineTo(x + off, feet - r * 0.1 - Math.max(0, reach) * 0.5);
    g.stroke();
  }

  // torso in the entity's colour
  const tw = side ? r * 0.9 : r * 1.15;
  g.beginPath();
  g.roundRect(x - tw / 2, y - r * 0.55 - bob, tw, r * 0.95, r * 0.3);
  g.fillStyle = body;
  g.fill();
  g.lineWidth = e.mine ? 2 : 1;
  g.strokeStyle = e.mine ? "#ffffff" : "rgba(0,0,0,0.55)";
  g.stroke();

  // arms swing against the legs
  g.lineWidth = r * 0.2;
  g.strokeStyle = dark;
  for (const sign of [-1, 1]) {
    const ax = side ? x : x + sign * tw * 0.5;
    g.beginPath();
    g.moveTo(ax, y - r * 0.4 - bob);
    g.lineTo(ax - swing * sign * r * (side ? 0.3 : 0.05), y + r * 0.2 - bob);
    g.stroke();
  }

  // head, and what shows which way it faces
  const hx = x;
  const hy = y - r * 1.05 - bob;
  const hr = r * 0.5;
  g.beginPath();
  g.arc(hx, hy, hr, 0, Math.PI * 2);
  g.fillStyle = "#f0c8a0";
  g.fill();
  g.lineWidth = 1;
  g.strokeStyle = "rgba(0,0,0,0.5)";
  g.stroke();
  drawHeadTop(g, e.kind === NPC, pose.facing, hx, hy, hr, dark);
  drawEyes(g, pose.facing, hx, hy, hr);
}

/** Players have hair, NPCs a hat; from behind the hair/hat covers the head. */
function drawHeadTop(g, isNpc, facing, hx, hy, hr, color) {
  g.fillStyle = color;
  g.beginPath();
  if (isNpc) {
    g.ellipse(hx, hy - hr * 0.45, hr * 1.35, hr * 0.32, 0, 0, Math.PI * 2); // brim
    g.fill();
    g.beginPath();
    g.roundRect(hx - hr * 0.7, hy - hr * 1.35, hr * 1.4, hr * 0.95, hr * 0.25); // crown
    g.fill();
    return;
  }
  if (facing === "up") {
    g.arc(hx, hy, hr, 0, Math.PI * 2);
  } else {
    g.arc(hx, hy, hr, Math.PI, 0); // the top half
    g.closePath();
  }
  g.fill();
}

function drawEyes(g, facing, hx, hy, hr) {
  if (facing === "up") return;
  g.fillStyle = "#1a1a1a";
  const eye = (ex) => {
    g.beginPath();
    g.arc(ex, hy + hr * 0.15, Math.max(1, hr * 0.15), 0, Math.PI * 2);
    g.fill();
  };
  if (facing === "down") {
    eye(hx - hr * 0.38);
    eye(hx + hr * 0.38);
  } else {
    eye(hx + (facing === "left" ? -hr * 0.5 : hr * 0.5));
  }
}

/** The ring under the NPC you are talking to (drawn before the figure). */
export const HIGHLIGHT = "#ffd24a";

export function drawHighlight(g, e, r) {
  const feet = e.y + r * 0.9;
  g.beginPath();
  g.ellipse(e.x, feet, r * 1.35, r * 0.55, 0, 0, Math.PI * 2);
  g.lineWidth = 3;
  g.strokeStyle = HIGHLIGHT;
  g.stroke();
}
