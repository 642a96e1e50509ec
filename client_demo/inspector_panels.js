// inspector_panels.js — the inspector's side panels: the selected NPC's detail
// (GET /npcs/{id}), the talk box (POST /npcs/{id}/talk, an NDJSON stream), the
// game clock (GET/POST /clock) and the reload log (GET /log?after=SEQ); and
// Api, the admin API's client (bearer token, JSON).
//
// A route this server does not have answers 404 "no such endpoint": its panel
// then says so and stops asking (the rest of the page goes on). Everything
// from the server is shown as text nodes, never as HTML.

const DETAIL_MS = 1000; // GET /npcs/{id} of the selected NPC this often
const LOG_MS = 1000; // GET /log this often
const CLOCK_MS = 1000; // GET /clock this often
const LOG_KEEP = 300; // log lines kept on the page
const FIRST = ["name", "npc", "file", "number", "action", "activity", "decider", "decided_by", "reason", "needs",
  "schedule", "memory", "last_lines", "last_utterance", "errors"]; // detail fields in this order, then the rest

const $ = (id) => document.getElementById(id);

export class Api {
  constructor(token, { onUnauthorised, onOk }) {
    this.token = token;
    this.onUnauthorised = onUnauthorised;
    this.onOk = onOk;
    this.errors = 0; // requests that failed for another reason than a missing route
  }

  /** fetch with the token: {ok, status, json, missing (the route is not on this server), res}. */
  async request(path, opts = {}) {
    let res;
    try {
      res = await fetch(path, {
        ...opts,
        headers: { Authorization: `Bearer ${this.token}`, ...(opts.body ? { "Content-Type": "application/json" } : {}) },
        cache: "no-store",
      });
    } catch (err) {
      this.errors += 1;
      return { ok: false, status: 0, json: { error: `cannot reach the admin server: ${err.message}` } };
    }
    if (res.status === 401) this.onUnauthorised();
    else this.onOk();
    if (opts.stream && res.ok) return { ok: true, status: res.status, res };
    let json = null;
    try {
      json = await res.json();
    } catch {
      json = { error: `HTTP ${res.status}, not JSON` };
    }
    const missing = res.status === 404 && /no such endpoint/.test(json?.error || "");
    if (!res.ok && !missing && res.status !== 401 && res.status !== 404) this.errors += 1;
    return { ok: res.ok, status: res.status, json, missing };
  }

  get(path) {
    return this.request(path);
  }

  post(path, body, stream = false) {
    return this.request(path, { method: "POST", body: JSON.stringify(body), stream });
  }
}

export class Panels {
  constructor(api, state) {
    this.api = api;
    this.state = state; // the inspector's: npcs (id -> listing entry), selected
    this.logAfter = 0;
    // per panel: "waiting" (not asked yet), "live", "unavailable" (route not on this server), "failed" (talk refused)
    this.status = { detail: "waiting", log: "waiting", clock: "waiting", talk: "waiting" };
    this.clock = null;
    $("talk-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.talk();
    });
    $("clock-pause").addEventListener("click", () => this.setClock({ paused: !this.clock?.paused }));
    $("clock-set").addEventListener("click", () => $("clock-time").value && this.setClock({ time: $("clock-time").value }));
    $("clock-speed").addEventListener("change", (ev) => this.setClock({ speed: Number(ev.target.value) }));
  }

  states() {
    return { ...this.status };
  }

  start() {
    this.pollLog();
    this.pollClock();
    setInterval(() => this.showDetail(), DETAIL_MS);
  }

  /** A new GET /npcs arrived: the game time for a clock without its own route. */
  listed(body) {
    if (this.status.clock === "unavailable" && body.time) {
      $("clock-state").textContent = `day ${body.time.day}, ${body.time.clock} (from GET /npcs; no clock controls here)`;
    }
  }

  /** Another NPC was selected: its detail now, an empty talk box. */
  select() {
    $("talk-out").replaceChildren();
    $("talk-note").textContent = "";
    this.showDetail();
  }

  // ---- detail ----

  async showDetail() {
    const id = this.state.selected;
    if (id === null) return;
    const listed = this.state.npcs.get(id);
    $("detail-title").textContent = listed ? `${listed.name} #${id}` : `#${id}`;
    let entry = null;
    let note = "";
    if (this.status.detail !== "unavailable") {
      const r = await this.api.get(`/npcs/${id}`);
      if (id !== this.state.selected) return; // another one was picked meanwhile
      if (r.ok) {
        entry = r.json;
        this.status.detail = "live";
      } else if (r.missing) {
        this.status.detail = "unavailable";
      } else if (r.status === 404) {
        note = "this NPC is gone (removed, or respawned with a new id): pick it again from the list";
      } else {
        note = `GET /npcs/${id}: ${r.json?.error || r.status}`;
      }
    }
    if (!entry && this.status.detail === "unavailable" && listed) {
      entry = withoutDrawing(listed);
      note = `GET /npcs/${id} is not on this server (404): showing what GET /npcs says`;
    }
    $("detail-note").textContent = note;
    if (entry) $("detail").replaceChildren(render(entry, true));
  }

  // ---- talk ----

  async talk() {
    const id = this.state.selected;
    const text = $("talk-text").value.trim();
    if (id === null) return void ($("talk-note").textContent = "select an NPC first");
    if (!text) return;
    $("talk-text").value = "";
    const out = $("talk-out");
    out.append(line("event", `${$("talk-name").value || "designer"}: ${text}`));
    const r = await this.api.post(`/npcs/${id}/talk`, { name: $("talk-name").value || "designer", text }, true);
    if (!r.ok) {
      this.status.talk = r.missing ? "unavailable" : "failed";
      if (r.missing) $("talk-note").textContent = "talking from here is not on this server (POST /npcs/{id}/talk: 404)";
      else out.append(line("event", `refused (${r.status}): ${r.json?.error || ""}`));
      return;
    }
    this.status.talk = "live";
    $("talk-note").textContent = "";
    const reply = line("reply", "");
    out.append(reply);
    const reader = r.res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (value) buf += value;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const raw = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (raw) this.talkEvent(raw, reply, out);
      }
      if (done) break;
    }
    if (buf.trim()) this.talkEvent(buf.trim(), reply, out);
  }

  /** One NDJSON event of a talk: streamed text goes into the reply line, the rest is listed. */
  talkEvent(raw, reply, out) {
    let ev;
    try {
      ev = JSON.parse(raw);
    } catch {
      out.append(line("event", raw));
      return;
    }
    const kind = ev.event ?? ev.t ?? ev.type ?? ev.kind ?? "";
    if (typeof ev.text === "string" && /delta/.test(kind)) {
      reply.textContent += ev.text;
    } else if (typeof ev.text === "string" && /end|said|reply/.test(kind)) {
      reply.textContent = ev.text;
    } else {
      const { event: _e, t: _t, type: _ty, kind: _k, ...rest } = ev;
      out.append(line("event", `${kind || "event"} ${JSON.stringify(rest)}`));
    }
    out.scrollTop = out.scrollHeight;
  }

  // ---- clock ----

  async pollClock() {
    const r = await this.api.get("/clock");
    if (r.missing) {
      this.status.clock = "unavailable";
      $("clock-note").textContent = "clock controls are not on this server (GET /clock: 404)";
      $("clock-controls").hidden = true;
      return; // stop asking
    }
    if (r.ok) this.showClock(r.json);
    setTimeout(() => this.pollClock(), CLOCK_MS);
  }

  async setClock(change) {
    const r = await this.api.post("/clock", change);
    if (r.ok) this.showClock(r.json);
    else $("clock-note").textContent = `POST /clock: ${r.json?.error || r.status}`;
  }

  showClock(c) {
    this.status.clock = "live";
    this.clock = c;
    $("clock-note").textContent = "";
    const time = c.time ?? c.clock ?? "?";
    $("clock-state").textContent = `day ${c.day ?? "?"}, ${time}${c.paused ? " (paused)" : ""}`
      + (c.speed !== undefined ? ` · ${c.speed}×` : "");
    $("clock-pause").textContent = c.paused ? "resume" : "pause";
    if (c.speed !== undefined && document.activeElement !== $("clock-speed")) $("clock-speed").value = String(c.speed);
  }

  // ---- reload log ----

  async pollLog() {
    const r = await this.api.get(`/log?after=${this.logAfter}`);
    if (r.missing) {
      this.status.log = "unavailable";
      $("log-note").textContent = "the reload log is not on this server (GET /log: 404); see GET /errors";
      return;
    }
    if (r.ok) {
      this.status.log = "live";
      const ol = $("log");
      for (const e of r.json.entries || []) {
        const li = document.createElement("li");
        li.className = e.kind;
        const where = e.file ? ` ${e.file}${e.line ? `:${e.line}` : ""}` : "";
        li.textContent = `${clockOf(e.t)} ${e.kind}${where} ${e.message ?? ""}`;
        ol.append(li);
      }
      while (ol.childElementCount > LOG_KEEP) ol.firstElementChild.remove();
      if (r.json.entries?.length) ol.scrollTop = ol.scrollHeight;
      if (Number.isInteger(r.json.next)) this.logAfter = r.json.next;
    }
    setTimeout(() => this.pollLog(), LOG_MS);
  }
}

/** A log entry's time: a Unix time in seconds as local HH:MM:SS, anything else as it is. */
export function clockOf(t) {
  if (typeof t !== "number") return String(t ?? "");
  return new Date(t * 1000).toTimeString().slice(0, 8);
}

function withoutDrawing(n) {
  const { drawn: _d, aim: _a, ...rest } = n;
  return rest;
}

function line(cls, text) {
  const div = document.createElement("div");
  div.className = cls;
  div.textContent = text;
  return div;
}

/** Any JSON value as DOM: objects as definition lists (FIRST keys first), lists one item per line. */
export function render(v, top = false) {
  if (v === null || v === undefined) return document.createTextNode("–");
  if (typeof v !== "object") return document.createTextNode(typeof v === "number" ? fmt(v) : String(v));
  if (Array.isArray(v)) {
    if (!v.length) return document.createTextNode("none");
    if (v.every((x) => x === null || typeof x !== "object")) return document.createTextNode(v.map(fmt).join(", "));
    const div = document.createElement("div");
    for (const x of v) {
      const row = document.createElement("div");
      row.append(render(x));
      div.append(row);
    }
    return div;
  }
  const dl = document.createElement("dl");
  const keys = Object.keys(v);
  const ordered = top ? [...FIRST.filter((k) => k in v), ...keys.filter((k) => !FIRST.includes(k))] : keys;
  for (const k of ordered) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    if (k === "trend" && typeof v[k] === "number") dd.append(trend(v[k]));
    else dd.append(render(v[k]));
    dl.append(dt, dd);
  }
  return dl;
}

function trend(x) {
  const span = document.createElement("span");
  span.className = x > 0 ? "up" : x < 0 ? "down" : "";
  span.textContent = `${x > 0 ? "↑" : x < 0 ? "↓" : "→"} ${fmt(x)}`;
  return span;
}

function fmt(x) {
  return typeof x === "number" && !Number.isInteger(x) ? String(Math.round(x * 1000) / 1000) : String(x);
}
