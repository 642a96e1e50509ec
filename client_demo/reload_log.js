// reload_log.js — the reload log (GET /log?after=SEQ on the admin port): every
// load, reload and error of the NPC files with file:line, newest last, polled
// once a second. Used by the inspector and by /monitor when it is opened on
// the admin port. Entries go in as text nodes only.

const LOG_MS = 1000; // GET /log this often
const LOG_KEEP = 300; // lines kept on the page

export class ReloadLog {
  /**
   * @param {Api} api   admin_api.js
   * @param {HTMLOListElement} list  where entries go
   * @param {HTMLElement} note       says when the route is not on this server
   */
  constructor(api, list, note) {
    this.api = api;
    this.list = list;
    this.note = note;
    this.after = 0; // the `next` of the last answer
    this.state = "waiting"; // "live", "unavailable" (404: no such endpoint)
    this.onEntries = null; // (entries) => void: called with each answer's new entries
  }

  async poll() {
    const r = await this.api.get(`/log?after=${this.after}`);
    if (r.missing) {
      this.state = "unavailable";
      this.note.textContent = "the reload log is not on this server (GET /log: 404); see GET /errors";
      return; // stop asking
    }
    if (r.ok) {
      this.state = "live";
      this.note.textContent = "";
      this.show(r.json.entries || []);
      if (this.onEntries && r.json.entries?.length) this.onEntries(r.json.entries);
      if (Number.isInteger(r.json.next)) this.after = r.json.next;
    }
    setTimeout(() => this.poll(), LOG_MS);
  }

  show(entries) {
    for (const e of entries) {
      const li = document.createElement("li");
      li.className = e.kind;
      const where = e.file ? ` ${e.file}${e.line ? `:${e.line}` : ""}` : "";
      li.textContent = `${clockOf(e.t)} ${e.kind}${where} ${e.message ?? ""}`;
      this.list.append(li);
    }
    while (this.list.childElementCount > LOG_KEEP) this.list.firstElementChild.remove();
    if (entries.length) this.list.scrollTop = this.list.scrollHeight;
  }
}

/** A log entry's time: a Unix time in seconds as local HH:MM:SS, anything else as it is. */
export function clockOf(t) {
  if (typeof t !== "number") return String(t ?? "");
  return new Date(t * 1000).toTimeString().slice(0, 8);
}
