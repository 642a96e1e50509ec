// inspector_detail.js — the selected NPC as a designer reads it, from one
// answer of GET /npcs/{id} (docs/designers.md, "One NPC"): its file, what it
// does and who decided (with the built-in's top scores as bars), its needs
// with their trend, its schedule block now and next, the nearest player and
// what it remembers of them, its last lines, its errors with file:line, and
// its hooks. Every view is a <section data-view=NAME>, so tests and the
// console can find it; everything from the server goes in as text nodes.
//
// Trends: the sign of `per_game_hour` (the server's own rate now) gives the
// arrow; the sparkline is the values this page saw, one per answer (about one
// a second), the last SPARK of them per NPC and need.

const SPARK = 60; // samples kept per need
const SVG = "http://www.w3.org/2000/svg";

/** Per NPC id and need name: the values seen, oldest first. */
export class NeedHistory {
  constructor() {
    this.seen = new Map(); // id -> Map(need -> number[])
  }

  add(id, needs) {
    let per = this.seen.get(id);
    if (!per) this.seen.set(id, (per = new Map()));
    for (const n of needs || []) {
      const xs = per.get(n.name) || [];
      xs.push(n.value);
      if (xs.length > SPARK) xs.shift();
      per.set(n.name, xs);
    }
  }

  of(id, name) {
    return this.seen.get(id)?.get(name) || [];
  }
}

/** The detail of one NPC as DOM (a fragment of sections). */
export function detailView(d, history) {
  const out = document.createDocumentFragment();
  out.append(
    fileView(d),
    decisionView(d),
    needsView(d, history),
    scheduleView(d.schedule),
    playerView(d.nearest_player),
    linesView(d.lines || []),
    errorsView(d.errors || []),
    hooksView(d),
  );
  return out;
}

function fileView(d) {
  const s = section("file", "file");
  const path = el("div", "path", d.file);
  path.title = "the NPC file (on the server's disk)";
  const tags = [`id ${d.npc}`, `version ${d.version ?? "?"}`, `#${d.number} of this file`];
  if (d.extra) tags.push("spawned extra");
  s.append(path, el("div", "dim", tags.join(" · ")));
  if (d.hooks_file) s.append(el("div", "path dim", `hooks: ${d.hooks_file}`));
  return s;
}

const DECIDERS = { policy: "policy", builtin: "built-in", "built-in": "built-in", hook: "hook" };

function decisionView(d) {
  const s = section("decision", "doing");
  const where = d.place ? ` at ${d.place}` : d.target_name ? ` → ${d.target_name}` : "";
  const now = el("div", "doing", `${d.action}${d.activity ? ` (${d.activity})` : ""}${where}`);
  if (d.arrived === false) now.append(el("span", "dim", " on the way"));
  const by = el("span", `badge by-${(d.decided_by || "none").replace(/[^a-z]/g, "")}`,
    DECIDERS[d.decided_by] || d.decided_by || "?");
  by.dataset.by = d.decided_by || "";
  const why = el("div", "why");
  why.append("decided by ", by, `: ${d.reason || "–"}`);
  s.append(now, why);
  if (d.decider?.why) s.append(el("div", "dim", d.decider.why));
  const b = d.builtin;
  if (b) {
    const would = b.would || {};
    s.append(el("div", "sub", `the built-in would: ${would.action}${would.place ? ` at ${would.place}` : ""}`
      + `${would.reason ? ` (${would.reason})` : ""}`));
    const top = b.top || [];
    const max = Math.max(1e-9, ...top.map((c) => (c.score === "kept" ? 0 : c.score)));
    const bars = el("div", "bars");
    for (const c of top) {
      const row = el("div", "bar-row");
      row.dataset.candidate = c.candidate;
      const bar = el("span", "bar");
      const fill = el("span", "fill");
      fill.style.width = `${c.score === "kept" ? 100 : Math.max(2, (100 * c.score) / max)}%`;
      bar.append(fill);
      row.append(el("span", "label", c.candidate), bar, el("span", "num", fmt(c.score)));
      bars.append(row);
    }
    s.append(bars);
  }
  return s;
}

function needsView(d, history) {
  const s = section("needs", "needs");
  const needs = d.needs || [];
  if (!needs.length) s.append(el("div", "dim", "none in the file"));
  for (const n of needs) {
    const row = el("div", "need");
    row.dataset.need = n.name;
    const rate = n.per_game_hour;
    const arrow = el("span", rate > 0 ? "up" : rate < 0 ? "down" : "flat", rate > 0 ? "↑" : rate < 0 ? "↓" : "→");
    arrow.title = `${fmt(rate)} per game hour`;
    const meter = el("span", "meter");
    const fill = el("span", `fill${n.value < n.low ? " low" : ""}`);
    fill.style.width = `${Math.max(0, Math.min(100, n.value))}%`;
    const low = el("span", "mark");
    low.style.left = `${n.low}%`;
    low.title = `low ${n.low}`;
    meter.append(fill, low);
    row.append(el("span", "label", n.name), meter, el("span", "num value", fmt(n.value)), arrow,
      el("span", "num rate dim", `${rate > 0 ? "+" : ""}${fmt(rate)}/h`), sparkline(history.of(d.id, n.name)));
    s.append(row);
    s.append(el("div", "dim need-note", `low below ${n.low}, full at ${n.full}; relief: ${n.relief ?? "–"}`));
  }
  return s;
}

function sparkline(values) {
  const w = 60;
  const h = 16;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", w);
  svg.setAttribute("height", h);
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  if (values.length >= 2) {
    const lo = Math.min(...values);
    const hi = Math.max(...values);
    const span = hi - lo || 1;
    const pts = values.map((v, i) => `${((i / (values.length - 1)) * (w - 2) + 1).toFixed(1)},`
      + `${(h - 2 - ((v - lo) / span) * (h - 4) - (hi === lo ? (h - 4) / 2 : 0)).toFixed(1)}`);
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", pts.join(" "));
    svg.append(line);
  }
  svg.dataset.samples = String(values.length);
  return svg;
}

function blockText(b) {
  if (!b) return null;
  const where = b.at ? ` at ${b.at}` : b.route?.length ? ` along ${b.route.join(", ")}` : "";
  return `${b.from}–${b.to} ${b.do}${where}${b.activity ? ` (${b.activity})` : ""}`;
}

function scheduleView(sch) {
  const s = section("schedule", `schedule${sch ? ` · now ${sch.now}` : ""}`);
  if (!sch || !sch.blocks) {
    s.append(el("div", "dim", "no schedule in the file"));
    return s;
  }
  for (const [which, b] of [["now", sch.block], ["next", sch.next]]) {
    const row = el("div", "block");
    row.dataset.block = which;
    row.append(el("span", "label", which), el("span", "", blockText(b) ?? "no block: needs and the rest decide"));
    if (b?.line) row.append(el("span", "dim", ` line ${b.line}`));
    s.append(row);
  }
  return s;
}

function playerView(p) {
  const s = section("player", "nearest player");
  if (!p) {
    s.append(el("div", "dim", "no player within notice"));
    return s;
  }
  s.append(el("div", "who", `${p.name} (#${p.id}), ${fmt(p.distance)} world units away, near for ${fmt(p.near_s)} s`));
  const m = p.memory;
  if (!m) {
    s.append(el("div", "dim memory-note", p.memory_note || "nothing remembered"));
    return s;
  }
  const facts = m.facts || [];
  const turns = m.turns || [];
  if (!facts.length && !turns.length) s.append(el("div", "dim", `remembers nothing of ${p.name} yet`));
  for (const f of facts) s.append(el("div", "fact", `• ${f}`));
  for (const [who, text] of turns.slice(-6)) s.append(el("div", "turn", `${who}: ${text}`));
  return s;
}

function linesView(lines) {
  const s = section("lines", "last lines");
  if (!lines.length) s.append(el("div", "dim", "has said nothing yet"));
  for (const l of lines.slice(-8)) {
    const row = el("div", "line");
    row.append(el("span", "dim", `${fmt(l.at_s)} s `), l.text);
    s.append(row);
  }
  return s;
}

function errorsView(errors) {
  const s = section("errors", `errors${errors.length ? ` (${errors.length})` : ""}`);
  if (!errors.length) s.append(el("div", "dim", "none in the running version"));
  for (const e of errors) {
    const row = el("details", "err");
    const where = e.file ? `${basename(e.file)}${e.line ? `:${e.line}` : ""}` : "";
    const sum = el("summary");
    sum.append(el("span", "where", where), ` ${e.kind}${e.hook ? ` in ${e.hook}` : ""}: ${e.message}`);
    sum.title = e.file || "";
    row.append(sum);
    if (e.traceback) row.append(el("pre", "tb", e.traceback));
    s.append(row);
  }
  return s;
}

function hooksView(d) {
  const s = section("hooks", "hooks");
  const h = d.hooks || {};
  if (h.state === "none" || !h.state) {
    s.append(el("div", "dim", "no hooks module"));
  } else {
    s.append(el("div", h.state === "ok" ? "" : "error",
      `${h.state}: ${(h.hooks || []).join(", ")} · ${h.calls} calls, ${h.errors} errors, ${h.overruns} overruns, `
      + `mean ${fmt(h.mean_ms)} ms, max ${fmt(h.max_ms)} ms (budget ${fmt(h.budget_ms)} ms)`));
  }
  const mem = Object.entries(d.hook_memory || {});
  if (mem.length) {
    const dl = el("dl");
    for (const [k, v] of mem) dl.append(el("dt", "", k), el("dd", "", String(v)));
    s.append(el("div", "sub", "npc.memory"), dl);
  }
  return s;
}

function section(view, title) {
  const s = el("section", "view");
  s.dataset.view = view;
  s.append(el("h3", "", title));
  return s;
}

function el(tag, cls = "", text = null) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== null && text !== undefined) e.textContent = String(text);
  return e;
}

function basename(path) {
  return String(path).split(/[\\/]/).pop();
}

export function fmt(x) {
  return typeof x === "number" && !Number.isInteger(x) ? String(Math.round(x * 100) / 100) : String(x ?? "–");
}
