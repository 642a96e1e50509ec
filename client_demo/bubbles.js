// bubbles.js — speech bubbles in screen space (CSS pixels): each speaker's
// recent lines in one bubble above its head. Every bubble lies wholly inside
// the view (a speaker at or past an edge gets its bubble moved in, the tail
// still pointing its way); where the view has room, bubbles overlap neither
// each other nor the HUD panels, and where it has not, a bubble takes the
// place least covered. layoutBubbles is pure: boxes in, positions out.
// Cost: O(n^3) small steps for n bubbles and panels (about 50,000 for 20
// bubbles), once a frame; only speakers within the server's hearing range
// have bubbles, so n stays small.

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
 * @returns {Array<{id, x, y, w, h, ax, ay}>} x, y = top-left; always inside [MARGIN, view - MARGIN]
 *   (a box larger than the view is cut to it); over nothing taken where the view has room
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
    const want = { x: clampX(b.ax - w / 2), y: clampY(b.ay - 8 - h) }; // centred above the head
    // Candidates: the wanted column and the columns beside each taken box; in each, slide up, then
    // down, past what is taken, and stay inside the view. The one that covers the least of what
    // is taken wins (nothing, where the view has room), then the one nearest to the wanted place.
    const xs = [want.x, ...taken.flatMap((t) => [t.x - GAP - w, t.x + t.w + GAP])].map(clampX);
    let box = null;
    let best = [Infinity, Infinity];
    for (const x of xs) {
      for (const dir of [-1, 1]) {
        for (const c of slide(x, want.y, w, h, taken, dir)) {
          c.y = clampY(c.y);
          const cost = [taken.reduce((sum, t) => sum + overlapArea(c, t), 0), Math.hypot(c.x - want.x, c.y - want.y)];
          if (cost[0] < best[0] || (cost[0] === best[0] && cost[1] < best[1])) {
            box = c;
            best = cost;
          }
        }
      }
    }
    const out = { id: b.id, x: box.x, y: box.y, w, h, ax: b.ax, ay: b.ay };
    placed.push(out);
    taken.push(out);
  }
  return placed;
}

/** The places a box passes sliding (dir -1 up, +1 down) past what it overlaps: the first free one last. */
function slide(x, y, w, h, taken, dir) {
  const out = [{ x, y, w, h }];
  for (let i = 0; i < taken.length; i++) {
    const box = out[out.length - 1];
    const hit = taken.find((t) => overlaps(box, t));
    if (!hit) break;
    out.push({ x, y: dir < 0 ? hit.y - GAP - h : hit.y + hit.h + GAP, w, h });
  }
  return out;
}

function overlapArea(a, b) {
  const w = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y);
  return w > 0 && h > 0 ? w * h : 0;
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
