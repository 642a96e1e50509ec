// render.js — draws one frame: the map picture, entities, names and speech
// bubbles, with the camera centred on your own entity. World units throughout;
// the canvas is in CSS pixels scaled by devicePixelRatio.

const BACKGROUND = "#101418"; // outside the map
const NPC = 1; // entity kind (0 = player, 1 = NPC)

export function resizeCanvas(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.floor(window.innerWidth * dpr);
  const h = Math.floor(window.innerHeight * dpr);
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
}

/**
 * @param {CanvasRenderingContext2D} g
 * @param {object} view
 * @param {TileMap} view.map
 * @param {{x, y}} view.camera            world point at the centre of the screen
 * @param {Array<{id, x, y, kind, name, color, mine}>} view.entities
 * @param {Map<number, string[]>} view.bubbles  entity id -> recent lines, oldest first
 * @param {number} view.radius             entity radius, world units
 */
export function drawFrame(g, { map, camera, entities, bubbles, radius }) {
  const canvas = g.canvas;
  const dpr = window.devicePixelRatio || 1;
  g.setTransform(1, 0, 0, 1, 0, 0);
  g.fillStyle = BACKGROUND;
  g.fillRect(0, 0, canvas.width, canvas.height);
  // World -> screen: centre the camera, 1 world unit = 1 CSS pixel.
  g.setTransform(dpr, 0, 0, dpr, canvas.width / 2 - camera.x * dpr, canvas.height / 2 - camera.y * dpr);
  g.imageSmoothingEnabled = false;
  if (map?.picture) g.drawImage(map.picture, 0, 0, map.width, map.height);
  // Own entity last, so it is never hidden under others.
  const order = [...entities].sort((a, b) => (a.mine ? 1 : 0) - (b.mine ? 1 : 0));
  for (const e of order) drawEntity(g, e, radius);
  for (const e of order) drawName(g, e, radius);
  for (const e of order) {
    const lines = bubbles.get(e.id);
    if (lines && lines.length) drawBubble(g, e, lines, radius);
  }
}

function drawEntity(g, e, r) {
  g.beginPath();
  if (e.kind === NPC) {
    // NPCs: a diamond-ish rounded square, so they read apart from players.
    g.roundRect(e.x - r, e.y - r, 2 * r, 2 * r, r * 0.35);
  } else {
    g.arc(e.x, e.y, r, 0, Math.PI * 2);
  }
  g.fillStyle = e.color || "#cccccc";
  g.fill();
  g.lineWidth = e.mine ? 3 : 1.5;
  g.strokeStyle = e.mine ? "#ffffff" : "rgba(0,0,0,0.6)";
  g.stroke();
  if (e.mine) {
    // A halo around yourself.
    g.beginPath();
    g.arc(e.x, e.y, r + 6, 0, Math.PI * 2);
    g.strokeStyle = "rgba(255,255,255,0.45)";
    g.lineWidth = 2;
    g.stroke();
  }
}

function drawName(g, e, r) {
  g.font = e.mine ? "bold 12px sans-serif" : "12px sans-serif";
  g.textAlign = "center";
  g.textBaseline = "bottom";
  const label = e.name;
  g.lineWidth = 3;
  g.lineJoin = "round"; // mitred outlines spike at sharp glyph corners
  g.strokeStyle = "rgba(0,0,0,0.75)";
  g.strokeText(label, e.x, e.y - r - 4);
  g.fillStyle = e.kind === NPC ? "#c9d4ff" : "#ffffff";
  g.fillText(label, e.x, e.y - r - 4);
}

const BUBBLE_MAX_WIDTH = 180; // world units (= CSS px)

function drawBubble(g, e, lines, r) {
  g.font = "12px sans-serif";
  const wrapped = lines.flatMap((line) => wrap(g, line, BUBBLE_MAX_WIDTH));
  const lineH = 15;
  const w = Math.min(BUBBLE_MAX_WIDTH, Math.max(...wrapped.map((l) => g.measureText(l).width))) + 12;
  const h = wrapped.length * lineH + 8;
  const x = e.x - w / 2;
  const y = e.y - r - 22 - h;
  g.beginPath();
  g.roundRect(x, y, w, h, 6);
  g.moveTo(e.x - 5, y + h);
  g.lineTo(e.x, y + h + 6);
  g.lineTo(e.x + 5, y + h);
  g.fillStyle = "rgba(255,255,255,0.92)";
  g.fill();
  g.fillStyle = "#111";
  g.textAlign = "left";
  g.textBaseline = "top";
  wrapped.forEach((l, i) => g.fillText(l, x + 6, y + 4 + i * lineH));
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
