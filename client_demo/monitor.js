// monitor.js — a live view of the server's /metrics (Prometheus text format):
// the tick's time and overruns, connections and bandwidth, NPC decisions and
// dialogue, the inference pool's queues. Polls once a second; rates are the
// change of a counter over the last poll. Text goes in as text nodes only.
//
// The reload log (reload_log.js) needs the admin token, so it shows only when
// this page is opened on the admin port (which serves it too, see
// server/inspector.py); on the game port the section says where to find it.

import { Api } from "./admin_api.js";
import { ReloadLog } from "./reload_log.js";

const POLL_MS = 1000;
const HISTORY = 120; // points per plot (two minutes)

/** Parse Prometheus text: Map "name{labels}" -> number (HELP/TYPE lines skipped). */
export function parseMetrics(text) {
  const out = new Map();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const cut = line.lastIndexOf(" ");
    const value = Number(line.slice(cut + 1));
    if (cut > 0 && Number.isFinite(value)) out.set(line.slice(0, cut), value);
  }
  return out;
}

/** Sum of every series of `name` whose labels contain `match` (e.g. 'outcome="late"'). */
function total(m, name, match = "") {
  let sum = 0;
  for (const [key, v] of m) {
    const base = key.split("{")[0];
    if (base === name && key.includes(match)) sum += v;
  }
  return sum;
}

/** Quantile q of the histogram `name` over the change between two scrapes (upper bucket bound, seconds). */
function quantile(prev, cur, name, q) {
  const buckets = [];
  for (const [key, v] of cur) {
    if (!key.startsWith(`${name}_bucket{`)) continue;
    const le = key.match(/le="([^"]+)"/)[1];
    buckets.push([le === "+Inf" ? Infinity : Number(le), v - (prev.get(key) ?? 0)]);
  }
  buckets.sort((a, b) => a[0] - b[0]);
  const n = buckets.length ? buckets[buckets.length - 1][1] : 0;
  if (!n) return null;
  const bound = buckets.find(([, count]) => count >= q * n);
  return bound ? bound[0] : null;
}

// What the page shows: [id, label, value(prev, cur, dt) or null, unit, bad(value)].
const CARDS = [
  ["ticks", "ticks per second", (p, c, dt) => rate(p, c, "npcworld_ticks_total", dt), "/s"],
  ["tick_mean", "tick time, mean", (p, c) => ratio(p, c, "npcworld_tick_duration_seconds_sum",
    "npcworld_tick_duration_seconds_count", 1000), "ms", (v) => v > 25],
  ["tick_p99", "tick time, p99 (bucket bound)", (p, c) => ms(quantile(p, c, "npcworld_tick_duration_seconds", 0.99)),
    "ms", (v) => v > 50],
  ["overruns", "tick overruns (total)", (p, c) => total(c, "npcworld_tick_overruns_total"), "", (v) => v > 0],
  ["connections", "connections", (p, c) => total(c, "npcworld_connections"), ""],
  ["players", "players", (p, c) => total(c, "npcworld_entities", 'kind="player"'), ""],
  ["npcs", "NPCs", (p, c) => total(c, "npcworld_entities", 'kind="npc"'), ""],
  ["bytes_out", "sent", (p, c, dt) => kb(rate(p, c, "npcworld_bytes_out_total", dt)), "KB/s"],
  ["bytes_in", "received", (p, c, dt) => kb(rate(p, c, "npcworld_bytes_in_total", dt)), "KB/s"],
  ["msgs_out", "messages sent", (p, c, dt) => rate(p, c, "npcworld_messages_out_total", dt), "/s"],
  ["coalesced", "updates coalesced (slow clients)", (p, c, dt) => rate(p, c, "npcworld_updates_coalesced_total", dt),
    "/s", (v) => v > 0],
  ["decisions", "policy decisions on time", (p, c) => share(p, c, "npcworld_npc_policy_decisions_total",
    'outcome="on_time"'), "%", (v) => v < 90],
  ["queued", "inference queued", (p, c) => total(c, "npcworld_inference_queued"), ""],
  ["workers", "inference workers ready", (p, c) => total(c, "npcworld_inference_workers_ready"), ""],
  ["talking", "conversations now", (p, c) => total(c, "npcworld_dialogue_active"), ""],
  ["replies", "NPC replies (total)", (p, c) => total(c, "npcworld_dialogue_total", 'event="ok"'), ""],
  ["fallbacks", "fallback lines (total)", (p, c) => total(c, "npcworld_dialogue_total", 'event="fallback"'), "",
    (v) => v > 0],
  ["checkpoint_age", "last world checkpoint, age", (p, c) => c.get("npcworld_store_last_checkpoint_age_seconds") ?? null,
    "s", (v) => v > 60],
  ["store_failed", "store writes failed (total)", (p, c) => total(c, "npcworld_store_writes_failed_total"), "",
    (v) => v > 0],
];

function rate(p, c, name, dt) {
  return dt > 0 ? (total(c, name) - total(p, name)) / dt : null;
}
function ratio(p, c, num, den, scale) {
  const d = total(c, den) - total(p, den);
  return d > 0 ? ((total(c, num) - total(p, num)) / d) * scale : null;
}
function share(p, c, name, match) {
  const all = total(c, name) - total(p, name);
  return all > 0 ? (100 * (total(c, name, match) - total(p, name, match))) / all : null;
}
function ms(s) { return s == null ? null : s * 1000; }
function kb(b) { return b == null ? null : b / 1024; }

function format(v) {
  if (v == null) return "–";
  if (v === Infinity) return "> max bucket";
  return Math.abs(v) >= 100 || Number.isInteger(v) ? String(Math.round(v)) : v.toFixed(v < 10 ? 2 : 1);
}

function makeCard(label, unit) {
  const card = document.createElement("div");
  card.className = "card";
  const name = document.createElement("div");
  name.className = "name";
  name.textContent = unit ? `${label} (${unit})` : label;
  const value = document.createElement("div");
  value.className = "value";
  value.textContent = "–";
  const plot = document.createElement("canvas");
  plot.width = 220;
  plot.height = 40;
  card.append(name, value, plot);
  document.getElementById("cards").append(card);
  return { value, plot, history: [] };
}

function drawPlot(canvas, history) {
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, canvas.width, canvas.height);
  const xs = history.filter((v) => v != null && Number.isFinite(v));
  if (xs.length < 2) return;
  const top = Math.max(...xs) || 1;
  g.strokeStyle = "#8cf";
  g.beginPath();
  const offset = HISTORY - history.length; // the newest point at the right edge
  let drawing = false;
  history.forEach((v, i) => {
    if (v == null || !Number.isFinite(v)) return;
    const x = ((i + offset) / (HISTORY - 1)) * canvas.width;
    const y = canvas.height - 2 - (v / top) * (canvas.height - 4);
    drawing ? g.lineTo(x, y) : g.moveTo(x, y);
    drawing = true;
  });
  g.stroke();
}

const cards = new Map(CARDS.map(([id, label, , unit]) => [id, makeCard(label, unit)]));
const state = { prev: null, prevAt: 0, latest: {}, polls: 0, errors: 0 };
window.monitor = state; // for tests and the console

async function poll() {
  const status = document.getElementById("status");
  try {
    const res = await fetch("/metrics", { cache: "no-store" });
    if (!res.ok) throw new Error(`/metrics answered ${res.status}`);
    const text = await res.text();
    const cur = parseMetrics(text);
    const now = performance.now();
    const prev = state.prev || cur;
    const dt = state.prev ? (now - state.prevAt) / 1000 : 0;
    for (const [id, , value, , bad] of CARDS) {
      const v = value(prev, cur, dt);
      const card = cards.get(id);
      state.latest[id] = v;
      card.value.textContent = format(v);
      card.value.classList.toggle("bad", v != null && !!bad && bad(v));
      card.history.push(v);
      if (card.history.length > HISTORY) card.history.shift();
      drawPlot(card.plot, card.history);
    }
    document.getElementById("raw").textContent = text;
    state.prev = cur;
    state.prevAt = now;
    state.polls += 1;
    document.body.dataset.state = "live";
    status.textContent = `live · ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    state.errors += 1;
    document.body.dataset.state = "error";
    status.textContent = `cannot read /metrics: ${err.message}`;
  }
  setTimeout(poll, POLL_MS);
}

poll();

const TOKEN_KEY = "npcworld.admin-token"; // the inspector's too
const $ = (id) => document.getElementById(id);

/** The reload log, where this page can read it (the admin port, with the token). */
async function startLog() {
  const m = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname); // out of the address bar
  }
  const api = new Api(sessionStorage.getItem(TOKEN_KEY) || "", {
    onUnauthorised: () => {
      $("log-token").hidden = false;
      $("log-note").textContent = "the reload log needs the admin token (printed at start)";
    },
    onOk: () => { $("log-token").hidden = true; },
  });
  const log = new ReloadLog(api, $("log"), $("log-note"));
  state.log = log;
  $("log-token").addEventListener("submit", (ev) => {
    ev.preventDefault();
    api.token = $("log-token-input").value.trim();
    sessionStorage.setItem(TOKEN_KEY, api.token);
    if (log.state === "waiting") probe();
  });
  async function probe() {
    const r = await api.get("/log?after=0");
    if (r.status === 404 && !r.missing) { // not the admin server: the game port's static 404
      log.state = "elsewhere";
      $("log-note").textContent = "The reload log is on the admin port: open /monitor there (the address printed at "
        + "start as \"npcworld admin http://…\") and give it the admin token.";
    } else if (r.status !== 401) {
      log.poll();
    }
  }
  probe();
}

startLog();
