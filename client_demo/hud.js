// hud.js — the DOM around the canvas: your name, connection state, items,
// whom you talk to, the chat log and input, and short-lived error toasts.
// No game logic here.

const TOAST_MS = 4000; // an error message stays this long
const CHAT_LOG_LINES = 100; // older lines are removed from the log
const NAME_MAX = 24; // characters, as the protocol allows

const $ = (id) => document.getElementById(id);

export class Hud {
  constructor() {
    this.stateEl = $("conn-state");
    this.dotEl = $("conn-dot");
    this.panelEls = [$("panel"), $("chat")];
    this.talking = undefined;
    this.statsEl = $("stats");
    this.itemsEl = $("items");
    this.nameEl = $("name");
    this.logEl = $("chat-log");
    this.chatEl = $("chat-input");
    this.talkToEl = $("talk-to");
    this.talkTo = undefined;
    this.toastsEl = $("toasts");
    this.state = null;
    this.lastStats = "";
    this.nameEl.maxLength = NAME_MAX;
    // Refresh the "reconnecting in N s" countdown.
    setInterval(() => this.state && this.showState(this.state), 250);
  }

  name() {
    return this.nameEl.value.trim().slice(0, NAME_MAX) || "guest";
  }

  setName(name) {
    this.nameEl.value = name;
  }

  /** state: {phase, retryAt, closeCode, closeReason, note} from net.js */
  showState(state) {
    this.state = state;
    let text;
    switch (state.phase) {
      case "connecting":
        text = "connecting…";
        break;
      case "connected":
        text = "connected";
        break;
      case "reconnecting": {
        const s = Math.max(0, (state.retryAt - performance.now()) / 1000);
        text = `reconnecting in ${s.toFixed(1)} s`;
        break;
      }
      default:
        text = "disconnected";
    }
    if (state.phase !== "connected" && state.closeCode !== null) {
      text += ` — closed ${state.closeCode}${state.closeReason ? `: ${state.closeReason}` : ""}`;
      const last = state.lastClose;
      if (last && last.code !== state.closeCode) {
        text += ` (earlier: ${last.code}${last.reason ? `: ${last.reason}` : ""})`;
      }
    }
    if (state.note && !state.closeReason) text += ` — ${state.note}`;
    if (state.phase === "stopped") text += " (reload the page to play here)";
    this.stateEl.textContent = text;
    this.stateEl.className = `state-${state.phase}`;
    this.dotEl.className = `state-${state.phase}`;
  }

  /** Screen rectangles of the HUD panels (CSS px), which speech bubbles keep clear of. */
  panels() {
    return this.panelEls.map((el) => {
      const r = el.getBoundingClientRect();
      return { x: r.left, y: r.top, w: r.width, h: r.height };
    });
  }

  /** stats: {tick, rttMs, players, npcs, drawn}: the round trip, and who is around */
  showStats({ rttMs, players, npcs }) {
    const rtt = rttMs === null ? "" : `${Math.round(rttMs)} ms · `;
    const others = Math.max(0, players - 1);
    const text = `${rtt}${others} other player${others === 1 ? "" : "s"} · ${npcs} NPC${npcs === 1 ? "" : "s"} near`;
    if (text !== this.lastStats) {
      this.statsEl.textContent = text; // only touch the DOM when it changed
      this.lastStats = text;
    }
  }

  /** items: the names of what NPCs gave this player, oldest first (welcome.items, then each `items`) */
  showItems(items) {
    // "items: " then one chip per item (text nodes: no HTML from the wire)
    this.itemsEl.replaceChildren(document.createTextNode("items: "));
    if (!items.length) this.itemsEl.append(document.createTextNode("none"));
    for (const item of items) {
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.textContent = item;
      this.itemsEl.append(chip);
    }
  }

  /** The NPC you are talking to (highlighted on the map), or null. */
  showTalking(name) {
    if (name === this.talking) return;
    this.talking = name;
    this.talkToEl.classList.toggle("lit", !!name);
  }

  chatLine(name, text, color, mine) {
    const line = document.createElement("div");
    line.className = mine ? "line mine" : "line";
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = name;
    if (color) who.style.color = color;
    line.append(who, document.createTextNode(` ${text}`)); // text nodes: no HTML from the wire
    this.logEl.append(line);
    while (this.logEl.childElementCount > CHAT_LOG_LINES) this.logEl.firstElementChild.remove();
    this.logEl.scrollTop = this.logEl.scrollHeight;
  }

  /** Whom a typed line goes to (an NPC's name), or null: "no one here talks". */
  showTalkTo(name) {
    if (name === this.talkTo) return; // only touch the DOM when it changed
    this.talkTo = name;
    this.talkToEl.textContent = name ? `talking to ${name}` : "no one here talks";
    this.talkToEl.classList.toggle("none", !name);
    this.chatEl.placeholder = name ? `Enter: say to ${name}` : "Enter to chat";
  }

  /** A line of the client's own in the log (not from the wire), e.g. "no one here talks". */
  noteLine(text) {
    const line = document.createElement("div");
    line.className = "line note";
    line.textContent = text;
    this.logEl.append(line);
    while (this.logEl.childElementCount > CHAT_LOG_LINES) this.logEl.firstElementChild.remove();
    this.logEl.scrollTop = this.logEl.scrollHeight;
  }

  /** A chat-log line whose text changes (a streamed NPC reply): returns {set(text, thinking, reason)}. */
  liveLine(name, color) {
    const line = document.createElement("div");
    line.className = "line npc-say";
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = name;
    if (color) who.style.color = color;
    const body = document.createElement("span");
    line.append(who, document.createTextNode(" "), body);
    this.logEl.append(line);
    while (this.logEl.childElementCount > CHAT_LOG_LINES) this.logEl.firstElementChild.remove();
    const log = this.logEl;
    return {
      set(text, thinking, reason) {
        body.textContent = text; // a text node: no HTML from the wire
        body.className = thinking ? "thinking" : reason ? `said ${reason}` : "streaming";
        log.scrollTop = log.scrollHeight;
      },
    };
  }

  /** A short-lived message; kind "error" (red) or "info". */
  toast(message, kind = "error") {
    const el = document.createElement("div");
    el.className = `toast ${kind}`;
    el.textContent = message;
    this.toastsEl.append(el);
    setTimeout(() => el.remove(), TOAST_MS);
  }

  focusChat() {
    this.chatEl.focus();
  }

  onChatFocus(fn) {
    this.chatEl.addEventListener("focus", fn);
    this.nameEl.addEventListener("focus", fn);
  }

  /** fn(text) on Enter in the chat box; Enter sends and returns to the game, Escape leaves. */
  onChat(fn) {
    this.chatEl.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") {
        const text = this.chatEl.value.trim();
        if (text) fn(text.slice(0, 200));
        this.chatEl.value = "";
        this.chatEl.blur();
        ev.preventDefault();
      } else if (ev.key === "Escape") {
        this.chatEl.blur();
      }
    });
  }

  /** fn(name) when the name box is changed and confirmed with Enter. */
  onRename(fn) {
    this.nameEl.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") {
        ev.preventDefault();
        this.nameEl.blur();
        fn(this.name());
      } else if (ev.key === "Escape") {
        this.nameEl.blur();
      }
    });
  }
}
