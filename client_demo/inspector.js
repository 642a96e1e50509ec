// inspector.js — the designers' inspector (served by the admin server at
// /inspector, see server/inspector.py): a map of the NPCs of the NPC files,
// a list of them, and for the one selected its detail, a talk box, the game
// clock and the reload log (inspector_panels.js). Everything comes from the
// admin endpoints on this same origin, with the admin token; nothing is
// cached on disk but the token, in sessionStorage (this tab only).
//
// Positions come from GET /npcs every LIST_MS; figures glide towards the
// newest position so that following one with the camera is smooth.
// World units on the map; CSS px on screen (zoom = px per world unit).

import { loadMap } from "./map.js";
import { Motion, drawFigure, drawHighlight } from "./figures.js";
import { Panels } from "./inspector_panels.js";
import { Api } from "./admin_api.js";

const LIST_MS = 500; // GET /npcs this often
const GLIDE_MS = 250; // a figure covers most of the way to its newest position in about this long
const RADIUS = 12; // world units: the game's default entity radius (GET /npcs does not say)
const TOKEN_KEY = "npcworld.admin-token";

const $ = (id) => document.getElementById(id);
const canvas = $("map");
const g = canvas.getContext("2d");

const state = {
  map: null,
  npcs: new Map(), // id -> listing entry of GET /npcs (plus drawn: {x, y})
  wanderers: 0,
  selected: null, // id
  follow: false,
  camera: { x: 0, y: 0 }, // world point at the centre of the map view
  zoom: 1, // CSS px per world unit
  screen: new Map(), // id -> {x, y}: where the last frame drew each NPC, CSS px
  motion: new Motion(),
  lastFrame: performance.now(),
  errors: 0, // failed requests (not 404s of routes this server lacks)
  listed: false, // a GET /npcs has answered
  mapLoads: 0, // times /map.json was fetched
};

const api = new Api(tokenFromPage(), {
  onUnauthorised: () => askToken("the server refused this token (401): type the one printed at start"),
  onOk: () => { document.body.dataset.state = "live"; },
});
const panels = new Panels(api, state);
// A places file reloaded (its places are added to /map.json at once): draw the map again with them.
panels.log.onEntries = (entries) => {
  if (entries.some((e) => e.kind === "reload" && /\.places\.toml$/.test(e.file || ""))) refetchMap();
};

async function refetchMap() {
  try {
    state.map = await loadMap("/map.json");
    state.mapLoads += 1;
  } catch (err) {
    $("map-note").textContent = `no map: ${err.message}`;
  }
}

function tokenFromPage() {
  const m = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname); // out of the address bar and the history
  }
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

function askToken(why) {
  document.body.dataset.state = "token";
  $("token-box").hidden = false;
  $("token-error").textContent = why || "";
}

$("token-box").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const token = $("token").value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  api.token = token;
  $("token-error").textContent = "";
  refreshList();
});

// ---- the list (GET /npcs) ---------------------------------------------------

async function refreshList() {
  if (!api.token) return askToken("");
  const res = await api.get("/npcs");
  if (res.status === 404 && !res.missing) { // the game port's static 404: not the admin server
    $("map-note").textContent = "This page works on the admin port: open /inspector there (the address printed "
      + "at start as \"npcworld admin http://…\").";
    return;
  }
  if (!res.ok) return;
  $("token-box").hidden = true;
  const body = res.json;
  const seen = new Set();
  for (const n of body.npcs || []) {
    seen.add(n.id);
    const old = state.npcs.get(n.id);
    const [x, y] = n.position || [0, 0];
    state.npcs.set(n.id, { ...n, drawn: old?.drawn || { x, y }, aim: { x, y } }); // (not `target`: a listing field)
  }
  for (const id of state.npcs.keys()) if (!seen.has(id)) state.npcs.delete(id);
  state.wanderers = body.wanderers ?? 0;
  if (!state.listed && state.map) {
    state.camera = { x: state.map.width / 2, y: state.map.height / 2 };
  }
  state.listed = true;
  showList();
  panels.listed(body);
}

function showList() {
  const filter = $("filter").value.trim().toLowerCase();
  const ul = $("npc-list");
  const items = [...state.npcs.values()]
    .filter((n) => !filter || `${n.name} ${n.npc} ${n.file}`.toLowerCase().includes(filter))
    .sort((a, b) => a.name.localeCompare(b.name) || a.id - b.id);
  const key = items.map((n) => `${n.id}:${n.name}`).join(",");
  if (key === ul.dataset.key) {
    // The same NPCs: update in place, so that a click is never lost to a list rebuilt under the pointer.
    items.forEach((n, i) => {
      const li = ul.children[i];
      li.className = n.id === state.selected ? "selected" : "";
      li.querySelector(".action").textContent = n.action;
    });
  } else {
    ul.dataset.key = key;
    ul.replaceChildren(...items.map(listItem));
  }
  $("npc-count").textContent = `${state.npcs.size}`;
  $("wanderers").textContent = state.wanderers ? `and ${state.wanderers} generic wanderers (no file; not listed)` : "";
}

/** One row of the list: colour, name, file id, action; a click selects. */
function listItem(n) {
  const li = document.createElement("li");
  li.dataset.id = n.id;
  li.className = n.id === state.selected ? "selected" : "";
  const sw = document.createElement("span");
  sw.className = "swatch";
  sw.style.background = n.color || colourOf(n);
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = n.name;
  const file = document.createElement("span");
  file.className = "dim";
  file.textContent = n.npc;
  const action = document.createElement("span");
  action.className = "action";
  action.textContent = n.action;
  li.append(sw, name, file, action);
  li.addEventListener("click", () => select(n.id));
  return li;
}

$("filter").addEventListener("input", showList);

function colourOf(n) {
  // GET /npcs carries no colour: a stable one per file id, so a file's NPCs look alike on the map
  let h = 0;
  for (const c of n.npc || "") h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `hsl(${h % 360} 55% 55%)`;
}

function select(id) {
  state.selected = id;
  showList();
  panels.select(id);
}

$("follow").addEventListener("change", (ev) => { state.follow = ev.target.checked; });

// ---- the map ----------------------------------------------------------------

function frame(now) {
  const dt = Math.min(200, now - state.lastFrame);
  state.lastFrame = now;
  const dpr = window.devicePixelRatio || 1;
  const w = Math.floor(canvas.clientWidth * dpr);
  const h = Math.floor(canvas.clientHeight * dpr);
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  const glide = 1 - Math.exp(-dt / GLIDE_MS * 3);
  for (const n of state.npcs.values()) {
    n.drawn.x += (n.aim.x - n.drawn.x) * glide;
    n.drawn.y += (n.aim.y - n.drawn.y) * glide;
  }
  const sel = state.npcs.get(state.selected);
  if (state.follow && sel) state.camera = { x: sel.drawn.x, y: sel.drawn.y };
  const z = state.zoom * dpr;
  g.setTransform(1, 0, 0, 1, 0, 0);
  g.fillStyle = "#101418";
  g.fillRect(0, 0, w, h);
  g.setTransform(z, 0, 0, z, w / 2 - state.camera.x * z, h / 2 - state.camera.y * z);
  g.imageSmoothingEnabled = false;
  if (state.map?.picture) g.drawImage(state.map.picture, 0, 0, state.map.width, state.map.height);
  const figures = [...state.npcs.values()].map((n) => ({
    id: n.id, x: n.drawn.x, y: n.drawn.y, kind: 1, talks: true, color: n.color || colourOf(n), name: n.name,
  })).sort((a, b) => a.y - b.y);
  state.motion.update(figures, now);
  if (sel) drawHighlight(g, sel.drawn, RADIUS);
  state.screen = new Map();
  for (const f of figures) {
    drawFigure(g, f, state.motion.of(f.id, now), RADIUS);
    state.screen.set(f.id, {
      x: (f.x - state.camera.x) * state.zoom + canvas.clientWidth / 2,
      y: (f.y - state.camera.y) * state.zoom + canvas.clientHeight / 2,
    });
  }
  g.font = "11px sans-serif";
  g.textAlign = "center";
  g.textBaseline = "top";
  g.lineWidth = 3;
  g.lineJoin = "round";
  for (const f of figures) {
    g.strokeStyle = "rgba(0,0,0,0.75)";
    g.strokeText(f.name, f.x, f.y + RADIUS + 4);
    g.fillStyle = f.id === state.selected ? "#ffe27a" : "#ffffff";
    g.fillText(f.name, f.x, f.y + RADIUS + 4);
  }
  requestAnimationFrame(frame);
}

/** The NPC drawn nearest to a screen point (CSS px), within reach of its figure, or null. */
function npcAt(px, py) {
  let best = null;
  let bestD = RADIUS * 1.8 * state.zoom;
  for (const [id, s] of state.screen) {
    const d = Math.hypot(px - s.x, py - (s.y - RADIUS * 0.4 * state.zoom));
    if (d < bestD) {
      best = id;
      bestD = d;
    }
  }
  return best;
}

let drag = null; // {x, y, camera, moved}
canvas.addEventListener("mousedown", (ev) => {
  drag = { x: ev.offsetX, y: ev.offsetY, camera: { ...state.camera }, moved: false };
});
window.addEventListener("mousemove", (ev) => {
  if (!drag) return;
  const dx = ev.offsetX - drag.x;
  const dy = ev.offsetY - drag.y;
  if (Math.hypot(dx, dy) > 4) drag.moved = true;
  if (!drag.moved || ev.target !== canvas) return;
  state.follow = false;
  $("follow").checked = false;
  state.camera = { x: drag.camera.x - dx / state.zoom, y: drag.camera.y - dy / state.zoom };
});
window.addEventListener("mouseup", (ev) => {
  if (drag && !drag.moved && ev.target === canvas) {
    const id = npcAt(ev.offsetX, ev.offsetY);
    if (id !== null) select(id);
  }
  drag = null;
});
canvas.addEventListener("wheel", (ev) => {
  ev.preventDefault();
  state.zoom = Math.max(0.25, Math.min(3, state.zoom * (ev.deltaY < 0 ? 1.15 : 1 / 1.15)));
}, { passive: false });

// ---- for tests and the console -----------------------------------------------

window.inspector = {
  get selected() { return state.selected; },
  get following() { return state.follow; },
  get listed() { return state.listed; },
  get camera() { return { ...state.camera }; },
  get zoom() { return state.zoom; },
  /** Where the last frame drew each NPC: {id: {x, y}}, CSS px of the map canvas. */
  screen() { return Object.fromEntries(state.screen); },
  /** What each panel shows: "live", "unavailable" (the route is not on this server) or "waiting". */
  get panels() { return panels.states(); },
  get errors() { return state.errors + api.errors; },
  /** How many talks from the talk box are over (answered to the end, or refused). */
  get talks() { return panels.talks; },
  /** The last GET /npcs/{id} answer the detail shows (null before one). */
  get detail() { return panels.detail; },
  /** The map's places as this page has them (names), and how often it fetched /map.json. */
  get places() { return (state.map?.pois || []).map((p) => p.name); },
  get mapLoads() { return state.mapLoads; },
};

// ---- start ------------------------------------------------------------------

(async () => {
  try {
    state.map = await loadMap("/map.json");
    state.mapLoads += 1;
    state.camera = { x: state.map.width / 2, y: state.map.height / 2 };
  } catch (err) {
    $("map-note").textContent = `no map: ${err.message}`;
  }
  await refreshList();
  setInterval(refreshList, LIST_MS);
  panels.start();
})();
requestAnimationFrame(frame);
