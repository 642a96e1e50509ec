// bubbles.js — speech bubbles in screen space (CSS pixels): each speaker's
// recent lines in one bubble above its head; bubbles never overlap each other
// or the HUD panels, and always lie wholly inside the view (a speaker at the
// top edge gets its bubble pushed down, with the tail still pointing at it).
// layoutBubbles is pure: boxes in, positions out.

const MARGIN = 6; // px kept free at the view's edges
const GAP = 4; // px between stacked bubbles
const MAX_WIDTH = 200; // px of text per line
const LINE_H = 15; // px
const PAD_X = 7;
const PAD_Y = 5;
const FONT = "12px sans-serif";

/**
 * Where each bubble goes.
 * @param {Array<{id, ax, ay, w, h}>} wanted  anchor (ax, ay) = the point over the speaker's head; w, h = size
 * @param {{w, h}} view  px
 * @param {Array<{x, y, w, h}>} avoid  screen rectangles taken already (HUD panels)
 * @returns {Array<{id, x, y, w, h, ax, ay}>} x, y = top-left; inside [MARGIN, view - MARGIN] when it fits
 */
export function layoutBubbles(wanted, view, avoid = []) {
  const placed = [];
  const taken = avoid.map((r) => ({ ...r }));
  // The lowest speaker first: bubbles further up stack above the ones below.
  const order = [...wanted].sort((a, b) => b.ay - a.ay);
  for (const b of order) {
    const w = Math.min(b.w, view.w - 2 * MARGIN);
    const h = Math.min(b.h, view.h - 2 * MARGIN);
    const clampX = (x) => Math.max(MARGIN, Math.min(view.w - MARGIN - w, x));
    const clampY = (y) => Math.max(MARGIN, Math.min(view.h - MARGIN - h, y));
    const x = clampX(b.ax - w / 2);
    // Try above the speaker, moving up past what is taken; if that leaves the
    // view, below the speaker, moving down; if neither fits, the first try.
    let box = fit(x, b.ay - 8 - h, w, h, taken, -1);
    if (box.y < MARGIN) {
      const down = fit(x, Math.max(MARGIN, b.ay - 8 - h), w, h, taken, 1);
      box = down.y + h <= view.h - MARGIN ? down : { x, y: clampY(b.ay - 8 - h), w, h };
    }
    box.y = clampY(box.y);
    const out = { id: b.id, x: box.x, y: box.y, w, h, ax: b.ax, ay: b.ay };
    placed.push(out);
    taken.push(out);
  }
  return placed;
}

/** Slide a box (dir -1 up, +1 down) until it overlaps nothing taken (at most taken.length moves). */
function fit(x, y, w, h, taken, dir) {
  const box = { x, y, w, h };
  for (let i = 0; i <= taken.length; i++) {
    const hit = taken.find((t) => overlaps(box, t));
    if (!hit) break;
    box.y = dir < 0 ? hit.y - GAP - h : hit.y + hit.h + GAP;
  }
  return box;
}

function overlaps(a, b) {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

/** Wrapped lines and the box size of a bubble for these lines (oldest first). */
export function measureBubble(g, lines) {
  g.font = FONT;
  const wrapped = lines.flatMap((line) => wrap(g, line, MAX_WIDTH));
  const w = Math.min(MAX_WIDTH, Math.max(...wrapped.map((l) => g.measureText(l).width))) + 2 * PAD_X;
  const h = wrapped.length * LINE_H + 2 * PAD_Y;
  return { wrapped, w, h };
}

/** Draw a placed bubble (screen space); the tail points at its anchor when the anchor is outside the box. */
export function drawBubble(g, box, wrapped, highlighted) {
  const { x, y, w, h, ax, ay } = box;
  g.beginPath();
  g.roundRect(x, y, w, h, 6);
  const tx = Math.max(x + 8, Math.min(x + w - 8, ax));
  if (ay > y + h) { // speaker below: tail from the bottom edge
    g.moveTo(tx - 5, y + h);
    g.lineTo(Math.max(x, Math.min(x + w, ax)), Math.min(ay, y + h + 8));
    g.lineTo(tx + 5, y + h);
  } else if (ay < y) { // pushed below its speaker: tail from the top edge
    g.moveTo(tx - 5, y);
    g.lineTo(Math.max(x, Math.min(x + w, ax)), Math.max(ay, y - 8));
    g.lineTo(tx + 5, y);
  }
  g.fillStyle = "rgba(255,255,255,0.95)";
  g.fill();
  g.lineWidth = highlighted ? 2 : 1;
  g.strokeStyle = highlighted ? "#d9a514" : "rgba(0,0,0,0.35)";
  g.stroke();
  g.fillStyle = "#111";
  g.font = FONT;
  g.textAlign = "left";
  g.textBaseline = "top";
  const lines = wrapped.slice(0, Math.floor((h - 2 * PAD_Y) / LINE_H));
  lines.forEach((l, i) => g.fillText(l, x + PAD_X, y + PAD_Y + i * LINE_H));
}

/** Split text into lines no wider than maxW pixels (long words are cut). */
function wrap(g, text, maxW) {
  const out = [];
  let line = "";
  for (const word of text.split(/\s+/)) {
    const next = line ? `${line} ${word}` : word;
    if (g.measureText(next).width <= maxW) {
      line = next;
      continue;
    }
    if (line) out.push(line);
    line = word;
    while (g.measureText(line).width > maxW && line.length > 1) {
      let cut = line.length - 1;
      while (cut > 1 && g.measureText(line.slice(0, cut)).width > maxW) cut--;
      out.push(line.slice(0, cut));
      line = line.slice(cut);
    }
  }
  if (line) out.push(line);
  return out;
}
