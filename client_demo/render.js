// render.js — draws one frame: the map picture, the figures (figures.js), their
// names, speech bubbles (bubbles.js) and the minimap (minimap.js), with the
// camera centred on a world point. World units for the world (1 unit = 1 CSS
// pixel); screen space in CSS pixels; the canvas itself is in device pixels
// (CSS px * devicePixelRatio).
//
// Who is labelled: players and NPCs that talk when near you (NAME_RANGE) or
// hovered; NPCs that do not talk (generic wanderers, a hen) only when hovered;
// the NPC you talk to always. Names sit under the feet, bubbles over the head,
// so a name never hides a line.

import { drawFigure, drawHighlight, headTop } from "./figures.js";
import { drawBubble, layoutBubbles, measureBubble } from "./bubbles.js";
import { drawMinimap, minimapRect } from "./minimap.js";

export const BACKGROUND = "#101418"; // outside the map
const NPC = 1; // entity kind (0 = player, 1 = NPC)
const NAME_RANGE = 160; // world units from you within which names show

export function resizeCanvas(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.floor(canvas.clientWidth * dpr || window.innerWidth * dpr);
  const h = Math.floor(canvas.clientHeight * dpr || window.innerHeight * dpr);
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
}

/** Whether an entity's name is drawn (see the top of this file). */
export function labelled(e, { me, hover, highlight }) {
  if (e.mine) return false; // your name is in the HUD
  if (e.id === hover || e.id === highlight) return true;
  if (e.kind === NPC && !e.talks) return false;
  return !!me && Math.hypot(e.x - me.x, e.y - me.y) <= NAME_RANGE;
}

/**
 * @param {CanvasRenderingContext2D} g
 * @param {object} v
 * @param {TileMap|null} v.map
 * @param {{x, y}} v.camera            world point at the centre of the view
 * @param {Array<{id, x, y, kind, name, color, talks, mine}>} v.entities
 * @param {Map<number, string[]>} v.bubbles  entity id -> recent lines, oldest first
 * @param {number} v.radius             entity radius, world units
 * @param {Motion} v.motion             facing and walking per id (figures.js)
 * @param {number} v.now                ms
 * @param {number|null} v.hover         id under the pointer
 * @param {number|null} v.highlight     id of the NPC you talk to
 * @param {Array<{x, y, w, h}>} v.avoid screen rectangles bubbles keep clear of (HUD panels), CSS px
 * @param {boolean} v.minimap           draw the minimap (default true)
 * @returns {{screen: Map<number, {x, y, variant, facing, frame, sprite}>, bubbles: Array<{id, x, y, w, h}>,
 *   minimap: object|null}} where this frame drew each entity (and as what: figures.js) and bubble (CSS px),
 *   for hovering, clicking and tests
 */
export function drawFrame(g, v) {
  const { map, camera, entities, bubbles, radius: r, motion, now } = v;
  const canvas = g.canvas;
  const dpr = window.devicePixelRatio || 1;
  const view = { w: canvas.width / dpr, h: canvas.height / dpr };
  const toScreen = (x, y) => ({ x: x - camera.x + view.w / 2, y: y - camera.y + view.h / 2 });
  g.setTransform(1, 0, 0, 1, 0, 0);
  g.fillStyle = BACKGROUND;
  g.fillRect(0, 0, canvas.width, canvas.height);
  // World -> screen: centre the camera, 1 world unit = 1 CSS pixel.
  g.setTransform(dpr, 0, 0, dpr, canvas.width / 2 - camera.x * dpr, canvas.height / 2 - camera.y * dpr);
  g.imageSmoothingEnabled = false;
  if (map?.picture) g.drawImage(map.picture, 0, 0, map.width, map.height);

  // Back to front by feet; your own figure last, so it is never hidden.
  const order = [...entities].sort((a, b) => (a.mine - b.mine) || (a.y - b.y));
  const me = entities.find((e) => e.mine) || null;
  const lit = order.find((e) => e.id === v.highlight);
  if (lit) drawHighlight(g, lit, r);
  const screen = new Map();
  for (const e of order) {
    const drawn = drawFigure(g, e, motion.of(e.id, now), r);
    screen.set(e.id, { ...toScreen(e.x, e.y), ...drawn });
  }
  const ctx = { me, hover: v.hover, highlight: v.highlight };
  for (const e of order) if (labelled(e, ctx)) drawName(g, e, r, e.id === v.highlight);

  // Screen space from here on.
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  const wanted = [];
  const texts = new Map();
  for (const e of order) {
    const lines = bubbles.get(e.id);
    if (!lines?.length) continue;
    const m = measureBubble(g, lines);
    texts.set(e.id, m.wrapped);
    const s = toScreen(e.x, e.y - headTop(r));
    wanted.push({ id: e.id, ax: s.x, ay: s.y, w: m.w, h: m.h });
  }
  const rect = v.minimap === false ? null : minimapRect(map, view);
  const avoid = [...(v.avoid || []), ...(rect ? [rect] : [])];
  const placed = layoutBubbles(wanted, view, avoid);
  for (const b of placed) drawBubble(g, b, texts.get(b.id), b.id === v.highlight);
  if (rect) {
    const world = { x: camera.x - view.w / 2, y: camera.y - view.h / 2, w: view.w, h: view.h };
    drawMinimap(g, rect, map, entities, world, v.highlight);
  }
  return { screen, bubbles: placed.map(({ id, x, y, w, h }) => ({ id, x, y, w, h })), minimap: rect };
}

function drawName(g, e, r, lit) {
  g.font = lit ? "bold 12px sans-serif" : "12px sans-serif";
  g.textAlign = "center";
  g.textBaseline = "top";
  const y = e.y + r * 0.9 + 5;
  g.lineWidth = 3;
  g.lineJoin = "round"; // mitred outlines spike at sharp glyph corners
  g.strokeStyle = "rgba(0,0,0,0.75)";
  g.strokeText(e.name, e.x, y);
  g.fillStyle = lit ? "#ffe27a" : e.kind === NPC ? "#d6ddff" : "#ffffff";
  g.fillText(e.name, e.x, y);
}

/** The entity drawn under screen point (px, py), CSS px, or null: the nearest figure within reach. */
export function entityAt(screen, px, py, r) {
  let best = null;
  let bestD = r * 1.6;
  for (const [id, s] of screen) {
    const d = Math.hypot(px - s.x, py - (s.y - r * 0.4)); // the figure's middle is above its position
    if (d < bestD) {
      best = id;
      bestD = d;
    }
  }
  return best;
}
