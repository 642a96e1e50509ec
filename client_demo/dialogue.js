// dialogue.js — talking to NPCs: a line typed while an NPC that talks is near
// goes to it as `talk` (NPCs that do not talk, a chicken, are skipped: their
// entity record's `talks` is false); its reply streams back (say_start, say_delta, say_end; see
// docs/protocol.md) into the chat log and a speech bubble over the NPC.
// Text is only ever inserted as text nodes / canvas text, never as HTML.

const NPC = 1; // entity kind
const TALK_RANGE = 150; // world units: nearer than the server's hearing radius (192 by default)
const MAX_TALK = 200; // characters, as the server checks

export class Dialogue {
  /**
   * @param {object} game   the client's state: records, positions, myId, bubbles
   * @param {object} hud    chat log (liveLine)
   * @param {number} bubbleMs  how long a finished line stays over the NPC
   */
  constructor(game, hud, bubbleMs) {
    this.game = game;
    this.hud = hud;
    this.bubbleMs = bubbleMs;
    this.lines = new Map(); // conversation id -> {npc, text, thinking, log, bubble}
    this.replying = null; // {npc, until}: the NPC answering you, until its line's bubble ends (ms)
  }

  /** The id of the NPC you are talking to: the one a typed line goes to, else the one still answering you; or null. */
  partner() {
    const near = this.nearestNpc();
    if (near) return near.id;
    const r = this.replying;
    if (r && r.until > performance.now() && this.game.records.has(r.npc)) return r.npc;
    return null;
  }

  /** The NPC that talks nearest to you within TALK_RANGE, or null. */
  nearestNpc() {
    return this.nearest((rec) => rec.talks);
  }

  /** The nearest NPC within TALK_RANGE that does not talk, or null. */
  nearestSilent() {
    return this.nearest((rec) => !rec.talks);
  }

  /** What the log says when a line was typed next to NPCs of which none talks. */
  silentNote() {
    return `no one here talks (${this.nearestSilent().name} does not answer); your line went to chat only`;
  }

  nearest(which) {
    const { records, positions, myId } = this.game;
    const me = positions?.get(myId);
    if (!me) return null;
    let best = null;
    let bestD = TALK_RANGE;
    for (const [id, rec] of records) {
      if (rec.kind !== NPC || !which(rec)) continue;
      const p = positions.get(id);
      if (!p) continue;
      const d = Math.hypot(p.x - me.x, p.y - me.y);
      if (d < bestD) {
        best = rec;
        bestD = d;
      }
    }
    return best;
  }

  /** A typed line: a `talk` message to the nearest NPC, or null when none is near. */
  talkMessage(text) {
    const npc = this.nearestNpc();
    if (!npc) return null;
    return { t: "talk", npc: npc.id, text: text.slice(0, MAX_TALK) };
  }

  handlers() {
    return {
      say_start: (m) => this.start(m),
      say_delta: (m) => this.delta(m),
      say_end: (m) => this.end(m),
    };
  }

  start(m) {
    const color = this.game.records.get(m.npc)?.color;
    // (the player's own line reached the log as chat; `heard` is for clients that want it)
    const log = this.hud.liveLine(m.name, color);
    const bubble = { text: m.thinking || "…", until: Infinity };
    const lines = this.game.bubbles.get(m.npc) || [];
    lines.push(bubble);
    this.game.bubbles.set(m.npc, lines.slice(-3));
    const line = { npc: m.npc, text: "", thinking: !!m.thinking, log, bubble, mine: m.to === this.game.myId };
    if (line.mine) this.replying = { npc: m.npc, until: Infinity };
    if (m.thinking) log.set(m.thinking, true);
    this.lines.set(m.id, line);
  }

  delta(m) {
    const line = this.lines.get(m.id);
    if (!line) return;
    line.text += m.text;
    line.thinking = false;
    line.log.set(line.text, false);
    line.bubble.text = line.text;
  }

  end(m) {
    const line = this.lines.get(m.id);
    if (!line) return;
    this.lines.delete(m.id);
    line.text = m.text; // the whole line, cleaned: it replaces what was streamed
    line.log.set(m.text, false, m.reason);
    line.bubble.text = m.text;
    line.bubble.until = performance.now() + this.bubbleMs;
    if (line.mine && this.replying?.npc === m.npc) this.replying.until = line.bubble.until;
  }
}
