// client.js — the npcworld browser client: wires the session (net.js), the map
// (map.js), snapshots and interpolation (snapshot.js), prediction (predict.js)
// and drawing (render.js) to the page. Times in ms unless a name says ticks.

import { Session } from "./net.js";
import { loadMap } from "./map.js";
import { applyCells, applyCells3, positionsOf, SnapshotBuffer, TickClock } from "./snapshot.js";
import { Predictor, normalise } from "./predict.js";
import { drawFrame, entityAt, resizeCanvas } from "./render.js";
import { Motion } from "./figures.js";
import { Hud } from "./hud.js";
import { Dialogue } from "./dialogue.js";

const STORE_NAME = "npcworld.name";
const STORE_TOKEN = "npcworld.token";
const BUBBLE_MS = 6000; // a chat line stays over its speaker this long
const BUBBLE_LINES = 3; // at most this many lines per speaker
const MAX_CATCHUP_TICKS = 5; // client ticks run at once after a stall, at most

// Movement keys by KeyboardEvent.code (layout independent): [dx, dy].
const MOVE_KEYS = {
  ArrowUp: [0, -1], KeyW: [0, -1],
  ArrowDown: [0, 1], KeyS: [0, 1],
  ArrowLeft: [-1, 0], KeyA: [-1, 0],
  ArrowRight: [1, 0], KeyD: [1, 0],
};

const game = {
  welcome: null, // the last welcome message
  myId: null,
  map: null, // TileMap, once loaded
  mapUrl: null,
  records: new Map(), // id -> {id, kind, name, color, talks}: entities in view
  snapshots: new SnapshotBuffer(),
  clock: null, // TickClock
  predictor: null, // Predictor
  lastTick: -1,
  updates: 0, // updates received on this connection
  firstDrawn: false, // a frame with this connection's first update was drawn
  seq: 0, // last input seq sent on this connection
  moving: false, // the last input sent had a non-zero direction
  held: new Set(), // movement key codes held down
  bubbles: new Map(), // id -> [{text, until}]
  positions: new Map(), // id -> {x, y}: the newest update's positions (who is near, for talk)
  cells: new Map(), // cell -> {ids, pos}: what the updates so far left (deltas apply to it)
  clientTickAt: 0, // performance.now() of the last client tick
  errors: 0,
  motion: new Motion(), // facing and walking of each figure drawn
  pointer: null, // {x, y}: the mouse over the canvas, CSS px
  hover: null, // id of the entity under the pointer
  highlight: null, // id of the NPC you talk to (drawn with a ring)
  drawn: { screen: new Map(), bubbles: [], minimap: null }, // what the last frame drew where (render.js)
};

const canvas = document.getElementById("world");
const g = canvas.getContext("2d");
const hud = new Hud();
const dialogue = new Dialogue(game, hud, BUBBLE_MS);

// ---- session --------------------------------------------------------------

const wsUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;

const session = new Session({
  url: wsUrl,
  hello: () => {
    const hello = { name: hud.name() };
    const token = localStorage.getItem(STORE_TOKEN);
    if (token) hello.token = token;
    return hello;
  },
  onMessage: (msg) => HANDLERS[msg.t]?.(msg),
  onState: (state) => {
    if (state.phase !== "connected") {
      game.firstDrawn = false;
      document.body.dataset.state = state.phase;
    }
    hud.showState(state);
  },
});

const HANDLERS = {
  welcome: onWelcome,
  update: onUpdate,
  pong: () => {},
  items: (msg) => {
    hud.showItems(msg.items);
    hud.toast(`you got: ${msg.got}`, "info");
  },
  ...dialogue.handlers(),
  error: (msg) => {
    game.errors += 1;
    if (msg.ref === "talk" && msg.code === "bad_target") return; // the nearest NPC does not talk: chat only
    const where = msg.field ? ` (${msg.ref || "?"}.${msg.field})` : msg.ref ? ` (${msg.ref})` : "";
    hud.toast(`server error ${msg.code}${where}: ${msg.message}`);
  },
};

async function onWelcome(msg) {
  game.welcome = msg;
  game.myId = msg.id;
  game.predictor = null; // until the map is there to predict against
  localStorage.setItem(STORE_TOKEN, msg.token);
  hud.setName(msg.name);
  hud.showItems(msg.items ?? []);
  // A new connection: view, seq and ack start over (the first update enters everything).
  game.records.clear();
  game.snapshots.clear();
  game.cells = new Map();
  game.clock = new TickClock(msg.tick_rate);
  game.lastTick = -1;
  game.updates = 0;
  game.seq = 0;
  game.moving = false;
  game.firstDrawn = false;
  if (msg.resumed) hud.toast(`resumed ${msg.name}`, "info");
  if (game.mapUrl !== msg.map) {
    game.mapUrl = msg.map;
    game.map = null;
    try {
      game.map = await loadMap(msg.map);
    } catch (err) {
      hud.toast(`could not load the map: ${err.message}`);
      return;
    }
  }
  game.predictor = new Predictor(msg, game.map);
  startClientTicks(msg.tick_rate);
}

function onUpdate(msg) {
  if (!game.welcome) return;
  const now = performance.now();
  for (const id of msg.leave) {
    game.records.delete(id);
    game.bubbles.delete(id);
  }
  // talks: an NPC that answers a line said to it (a 5th field; absent from older servers: false)
  for (const [id, kind, name, color, talks] of msg.enter) game.records.set(id, { id, kind, name, color, talks: !!talks });
  // every update is applied to the cells the last one left (a keyframe replaces them all)
  game.cells = msg.v === 3 ? applyCells3(game.cells, msg.cells, msg.moves) : applyCells(game.cells, msg.cells, msg.moves ?? []);
  const positions = positionsOf(game.cells, game.welcome.quant);
  game.positions = positions;
  game.snapshots.push(msg.tick, positions);
  game.clock.observe(msg.tick, now);
  game.lastTick = msg.tick;
  game.updates += 1;
  const mine = positions.get(game.myId);
  if (mine && game.predictor) game.predictor.reconcile(mine, msg.ack);
  for (const record of msg.chat) heard(record, now);
}

/** A chat record [from, name, text, tick]: into the log and over the speaker. */
function heard([from, name, text], now) {
  hud.chatLine(name, text, game.records.get(from)?.color, from === game.myId);
  const lines = game.bubbles.get(from) || [];
  lines.push({ text, until: now + BUBBLE_MS });
  game.bubbles.set(from, lines.slice(-BUBBLE_LINES));
}

// ---- input and prediction (client ticks) -----------------------------------

let tickTimer = null;

function startClientTicks(tickRate) {
  const tickMs = 1000 / tickRate;
  clearInterval(tickTimer);
  game.clientTickAt = performance.now();
  // setInterval drifts and is throttled in background tabs; run as many ticks
  // as the elapsed time calls for, a few at most.
  tickTimer = setInterval(() => {
    const now = performance.now();
    let due = Math.min(MAX_CATCHUP_TICKS, Math.floor((now - game.clientTickAt) / tickMs));
    if (now - game.clientTickAt > MAX_CATCHUP_TICKS * tickMs) game.clientTickAt = now - tickMs;
    while (due-- > 0) {
      game.clientTickAt += tickMs;
      clientTick();
    }
  }, tickMs / 2);
}

function heldDirection() {
  let dx = 0;
  let dy = 0;
  for (const code of game.held) {
    dx += MOVE_KEYS[code][0];
    dy += MOVE_KEYS[code][1];
  }
  return normalise(Math.sign(dx), Math.sign(dy));
}

/** Every 1/tick_rate s: send the held direction (or one stop) and predict it. */
function clientTick() {
  const p = game.predictor;
  if (!p || p.pos === null || !session.open) return; // nothing to predict from yet
  const { dx, dy } = heldDirection();
  const moving = dx !== 0 || dy !== 0;
  if (moving || game.moving) {
    game.seq += 1;
    session.sendInput(game.seq, dx, dy);
    p.tick(game.seq, dx, dy);
  } else {
    p.idle();
  }
  game.moving = moving;
}

function isTyping(target) {
  return target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement || target?.isContentEditable;
}

window.addEventListener("keydown", (ev) => {
  if (isTyping(ev.target)) return; // keys typed in the chat or name box never move the player
  if (ev.code in MOVE_KEYS) {
    game.held.add(ev.code);
    ev.preventDefault();
  } else if (ev.code === "Enter") {
    hud.focusChat();
    ev.preventDefault();
  }
});
window.addEventListener("keyup", (ev) => game.held.delete(ev.code));
window.addEventListener("blur", () => game.held.clear());

hud.onChatFocus(() => game.held.clear());
// A line is public chat; typed next to an NPC, it is also said to that NPC (talk), which answers.
hud.onChat((text) => {
  session.send({ t: "chat", text });
  const talk = dialogue.talkMessage(text);
  if (talk) session.send(talk);
  else if (dialogue.nearestSilent()) hud.noteLine(dialogue.silentNote());
});
hud.onRename((name) => {
  // A resumed character keeps its name, so a new name means a new character.
  localStorage.setItem(STORE_NAME, name);
  localStorage.removeItem(STORE_TOKEN);
  session.restart();
});

// ---- drawing ---------------------------------------------------------------

let lastFrameAt = performance.now();

function frame(now) {
  const frameMs = now - lastFrameAt;
  lastFrameAt = now;
  resizeCanvas(canvas);
  const entities = visibleEntities(now, frameMs);
  const me = entities.find((e) => e.mine);
  const camera = me || (game.map ? { x: game.map.width / 2, y: game.map.height / 2 } : { x: 0, y: 0 });
  expireBubbles(now);
  game.motion.update(entities, now);
  const radius = game.welcome?.radius ?? 12;
  game.hover = game.pointer ? entityAt(game.drawn.screen, game.pointer.x, game.pointer.y, radius) : null;
  game.highlight = dialogue.partner();
  game.drawn = drawFrame(g, {
    map: game.map,
    camera,
    entities,
    bubbles: bubbleTexts(),
    radius,
    motion: game.motion,
    now,
    hover: game.hover,
    highlight: game.highlight,
    avoid: hud.panels(),
  });
  canvas.style.cursor = game.hover !== null ? "pointer" : "";
  if (!game.firstDrawn && game.map && game.updates > 0 && session.state.phase === "connected") {
    game.firstDrawn = true;
    document.body.dataset.state = "connected";
  }
  hud.showStats(stats(entities));
  hud.showTalkTo(dialogue.nearestNpc()?.name ?? null);
  hud.showTalking(game.highlight === null ? null : game.records.get(game.highlight)?.name ?? null);
  requestAnimationFrame(frame);
}

/** Entities to draw: others interpolated ~2 ticks back, yourself predicted. */
function visibleEntities(now, frameMs) {
  const out = [];
  if (!game.clock) return out;
  const renderTick = SnapshotBuffer.renderTick(game.clock, now);
  const tickMs = 1000 / game.welcome.tick_rate;
  for (const rec of game.records.values()) {
    let pos;
    const mine = rec.id === game.myId;
    if (mine) {
      const alpha = Math.min(1, Math.max(0, (now - game.clientTickAt) / tickMs));
      pos = game.predictor?.drawPos(alpha, frameMs) || game.snapshots.latest()?.positions.get(rec.id);
    } else {
      pos = game.snapshots.positionAt(rec.id, renderTick);
    }
    if (pos) out.push({ ...rec, x: pos.x, y: pos.y, mine });
  }
  return out;
}

function expireBubbles(now) {
  for (const [id, lines] of game.bubbles) {
    const kept = lines.filter((l) => l.until > now);
    if (kept.length) game.bubbles.set(id, kept);
    else game.bubbles.delete(id);
  }
}

function bubbleTexts() {
  const out = new Map();
  for (const [id, lines] of game.bubbles) out.set(id, lines.map((l) => l.text));
  return out;
}

function stats(entities) {
  let players = 0;
  let npcs = 0;
  for (const rec of game.records.values()) {
    if (rec.kind === 1) npcs += 1;
    else players += 1;
  }
  return { tick: game.lastTick, rttMs: session.rttMs, players, npcs, drawn: entities.length };
}

canvas.addEventListener("mousemove", (ev) => { game.pointer = { x: ev.offsetX, y: ev.offsetY }; });
canvas.addEventListener("mouseleave", () => { game.pointer = null; });

// ---- for tests and the console ----------------------------------------------

window.npcworld = {
  get state() { return session.state.phase; },
  get connected() { return session.state.phase === "connected"; },
  get myId() { return game.myId; },
  get lastTick() { return game.lastTick; },
  get entities() { return game.records.size; },
  get rttMs() { return session.rttMs; },
  get errors() { return game.errors; },
  get welcome() { return game.welcome; },
  /** Largest prediction correction on this connection, world units (0 = prediction was exact). */
  get largestCorrection() { return game.predictor?.largestJump ?? 0; },
  /** Where interpolation renders others: {renderTick, oldest, newest} buffered ticks. */
  interpolation() {
    const snaps = game.snapshots.snaps;
    if (!game.clock || !snaps.length) return null;
    return {
      renderTick: SnapshotBuffer.renderTick(game.clock, performance.now()),
      oldest: snaps[0].tick,
      newest: snaps[snaps.length - 1].tick,
    };
  },
  /** The id of the NPC a typed line would be said to (the nearest within talking range), or null. */
  get nearNpc() { return dialogue.nearestNpc()?.id ?? null; },
  /** What the chat box says a typed line goes to: "talking to <name>" or "no one here talks". */
  get talkTo() { return document.getElementById("talk-to").textContent; },
  /** Speech bubbles now shown: {entity id: [lines, oldest first]}. */
  bubbles() { return Object.fromEntries(bubbleTexts()); },
  /** Where the last frame drew each entity: {id: {x, y}} in CSS px of the view (its feet are r * 0.9 lower). */
  /** Where the last frame drew each entity (CSS px) and as what: {id: {x, y, variant, facing, frame, sprite}}. */
  screen() { return Object.fromEntries([...game.drawn.screen].map(([id, p]) => [id, { ...p }])); },
  /** The bubbles the last frame drew: [{id, x, y, w, h}], CSS px. */
  bubbleBoxes() { return game.drawn.bubbles.map((b) => ({ ...b })); },
  /** The minimap's rectangle {x, y, w, h} (CSS px) in the last frame, or null. */
  minimap() {
    const m = game.drawn.minimap;
    return m ? { x: m.x, y: m.y, w: m.w, h: m.h } : null;
  },
  /** The id of the NPC drawn as the one you talk to, or null. */
  get highlighted() { return game.highlight; },
  /** The id of the entity under the mouse pointer, or null (its name is shown). */
  get hovered() { return game.hover; },
  /** Predicted position of your own entity (world units), or null. */
  myPos() {
    const p = game.predictor?.pos;
    return p ? { x: p.x, y: p.y } : null;
  },
  /** Last position of your own entity the server sent (world units), or null. */
  serverPos() {
    const p = game.predictor?.server;
    return p ? { x: p.x, y: p.y } : null;
  },
};

// ---- start -----------------------------------------------------------------

hud.setName(localStorage.getItem(STORE_NAME) || randomName());
localStorage.setItem(STORE_NAME, hud.name());
document.body.dataset.state = "connecting";
session.connect();
requestAnimationFrame(frame);

function randomName() {
  const first = ["brave", "quiet", "lucky", "swift", "merry", "sly", "tall", "wise"];
  const second = ["otter", "heron", "fox", "badger", "lynx", "crow", "hare", "wren"];
  const pick = (a) => a[Math.floor(Math.random() * a.length)];
  return `${pick(first)} ${pick(second)}`;
}
