// inspector_panels.js — the inspector's side panels: the selected NPC's detail
// (GET /npcs/{id}), the talk box (POST /npcs/{id}/talk, an NDJSON stream), the
// game clock (GET/POST /clock) and the reload log (reload_log.js).
//
// A route this server does not have answers 404 "no such endpoint": its panel
// then says so and stops asking (the rest of the page goes on). Everything
// from the server is shown as text nodes, never as HTML.

const DETAIL_MS = 1000; // GET /npcs/{id} of the selected NPC this often
const CLOCK_MS = 1000; // GET /clock this often
const FIRST = ["name", "npc", "file", "number", "action", "activity", "decider", "decided_by", "reason", "needs",
  "schedule", "memory", "last_lines", "last_utterance", "errors"]; // listing fields in this order, then the rest

import { ReloadLog } from "./reload_log.js";
import { NeedHistory, detailView } from "./inspector_detail.js";

const $ = (id) => document.getElementById(id);

export class Panels {
  constructor(api, state) {
    this.api = api;
    this.state = state; // the inspector's: npcs (id -> listing entry), selected
    this.log = new ReloadLog(api, $("log"), $("log-note"));
    // per panel: "waiting" (not asked yet), "live", "unavailable" (route not on this server), "failed" (talk refused)
    this.status = { detail: "waiting", clock: "waiting", talk: "waiting" };
    this.talks = 0; // talks whose answer is over (its stream ended, or it was refused)
    this.clock = null;
    this.detail = null; // the last GET /npcs/{id} answer shown
    this.history = new NeedHistory();
    $("talk-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.talk();
    });
    $("clock-pause").addEventListener("click", () => this.setClock({ paused: !this.clock?.paused }));
    $("clock-set").addEventListener("click", () => $("clock-time").value && this.setClock({ time: $("clock-time").value }));
    $("clock-speed").addEventListener("change", (ev) => this.setClock({ speed: Number(ev.target.value) }));
  }

  states() {
    return { ...this.status, log: this.log.state };
  }

  start() {
    this.log.poll();
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
    if (!entry) return;
    if (this.status.detail === "live") {
      // the designer's views; GET /npcs alone (an older server) has too little for them: its fields as they are
      this.history.add(id, entry.needs);
      this.detail = entry;
      $("detail").replaceChildren(detailView(entry, this.history));
    } else {
      $("detail").replaceChildren(render(entry, true));
    }
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
    try {
      await this.talkTo(id, text, out);
    } finally {
      this.talks += 1;
    }
  }

  async talkTo(id, text, out) {
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
    const said = talkLine(ev, kind);
    if (typeof ev.text === "string" && /delta/.test(kind)) {
      reply.textContent += ev.text;
    } else if (kind === "say_end") {
      if (typeof ev.text === "string") reply.textContent = ev.text || "(nothing said)";
      out.append(line("event", said));
    } else if (said !== null) {
      out.append(line("event", said));
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
}

/** A talk event for a person, as `npcworld npc talk` prints it (server/talk_cli.py); null: not shown. */
function talkLine(ev, kind) {
  if (kind === "heard" || kind === "say_delta" || (kind === "say_start" && !ev.thinking)) return null;
  if (kind === "say_start") return `(${ev.thinking})`;
  if (kind === "hook") {
    if (!ev.called) return "[on_hear] none in this file: the model answers";
    const what = { answered: "answers", action: "adds an action after the reply",
      none: "decided nothing: the model answers" }[ev.result] || ev.result;
    return `[on_hear] ${what}${ev.intent ? `: ${JSON.stringify(ev.intent)}` : ""}`;
  }
  if (kind === "say_end") return `[reply] by ${ev.by}, ${ev.reason}`;
  if (kind === "action") {
    const done = ev.applied ? "done" : `not done (${ev.why || "refused"})`;
    const chose = "chosen" in ev ? ` chose '${ev.chosen}' of ${JSON.stringify(ev.options)}` : "";
    return `[action] ${ev.by}${chose}: ${ev.action || "none"} - ${done}`;
  }
  if (kind === "end") return ev.why ? `[end] ${ev.why}` : "[end]";
  const { event: _e, t: _t, type: _ty, kind: _k, ...rest } = ev;
  return `${kind || "event"} ${JSON.stringify(rest)}`;
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
