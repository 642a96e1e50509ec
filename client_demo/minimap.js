// minimap.js — the whole map in a corner of the view (screen space, CSS px):
// the map's picture, a dot per entity you can see (yourself white and larger,
// the NPC you talk to in the highlight colour) and the rectangle of the view.

import { HIGHLIGHT } from "./figures.js";

const SIDE = 150; // px: the longer side of the minimap
const MARGIN = 10; // px from the view's top-right corner

/** The minimap's rectangle on screen for a map and a view {w, h} (px), or null without a map. */
export function minimapRect(map, view) {
  if (!map) return null;
  const scale = SIDE / Math.max(map.width, map.height);
  const w = Math.round(map.width * scale);
  const h = Math.round(map.height * scale);
  return { x: view.w - MARGIN - w, y: MARGIN, w, h, scale };
}

/**
 * @param {CanvasRenderingContext2D} g  in CSS px
 * @param {object} rect  from minimapRect
 * @param {TileMap} map
 * @param {Array<{id, x, y, mine, color}>} entities
 * @param {{x, y, w, h}} viewWorld  the world rectangle the main view shows
 * @param {number|null} highlightId
 */
export function drawMinimap(g, rect, map, entities, viewWorld, highlightId) {
  const { x, y, w, h, scale } = rect;
  g.save();
  g.fillStyle = "rgba(10,14,18,0.8)";
  g.fillRect(x - 3, y - 3, w + 6, h + 6);
  g.globalAlpha = 0.9;
  if (map.picture) g.drawImage(map.picture, x, y, w, h);
  g.globalAlpha = 1;
  g.beginPath();
  g.rect(x, y, w, h);
  g.clip();
  g.strokeStyle = "rgba(255,255,255,0.8)";
  g.lineWidth = 1;
  g.strokeRect(x + viewWorld.x * scale, y + viewWorld.y * scale, viewWorld.w * scale, viewWorld.h * scale);
  for (const e of entities) {
    const mine = e.mine;
    const lit = e.id === highlightId;
    g.beginPath();
    g.arc(x + e.x * scale, y + e.y * scale, mine ? 3 : 2, 0, Math.PI * 2);
    g.fillStyle = mine ? "#ffffff" : lit ? HIGHLIGHT : e.color || "#cccccc";
    g.fill();
  }
  g.restore();
  g.strokeStyle = "rgba(255,255,255,0.35)";
  g.strokeRect(x - 0.5, y - 0.5, w + 1, h + 1);
}
