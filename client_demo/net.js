// net.js — one WebSocket session to an npcworld server (docs/protocol.md),
// with reconnect, exponential backoff and ping. Knows nothing about drawing.
//
// Every frame is one binary msgpack map with a string key `t`.
// msgpack comes from the UMD build of @msgpack/msgpack (global `MessagePack`),
// loaded by index.html from /vendor/.

const { Encoder, decode } = globalThis.MessagePack;

// Plain encoder: JS numbers that are integers travel as msgpack ints.
const plain = new Encoder();
// Float encoder for `input`: every JS number travels as a float (dx = 1 becomes
// 1.0, as the protocol types it), and BigInt values travel as ints (seq).
const floaty = new Encoder({ forceIntegerToFloat: true, useBigInt64: true });

const PROTOCOL_VERSION = 3; // docs/protocol.md: updates are arrays; moves carry each step's change
const BACKOFF_FIRST_MS = 500; // first reconnect delay
const BACKOFF_MAX_MS = 10_000; // delays double up to this
const PING_EVERY_MS = 1000;

// Close codes after which reconnecting on our own would be wrong.
const NO_RECONNECT = {
  4001: "this client speaks an unsupported protocol version",
  4003: "this character was taken over by another tab or window",
};

export class Session {
  /**
   * @param {object} opts
   * @param {string} opts.url           ws(s)://host/ws
   * @param {() => object} opts.hello   builds the hello fields ({name, token}) at each connect
   * @param {(msg: object) => void} opts.onMessage  every decoded server message
   * @param {(state: object) => void} opts.onState  connection state changes (see `state`)
   */
  constructor({ url, hello, onMessage, onState }) {
    this.url = url;
    this.hello = hello;
    this.onMessage = onMessage;
    this.onState = onState;
    this.ws = null;
    this.attempt = 0; // failed connects since the last welcome
    this.retryTimer = null;
    this.pingTimer = null;
    this.pingId = 0;
    this.pingsSent = new Map(); // ping id -> performance.now() when sent (ms)
    this.rttMs = null;
    // phase: "connecting" | "connected" | "reconnecting" | "stopped"
    // closeCode/closeReason: the latest close; lastClose: the latest one with a close frame.
    this.state = { phase: "connecting", retryAt: 0, closeCode: null, closeReason: "", lastClose: null, note: "" };
  }

  get open() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.setState({ phase: "connecting", retryAt: 0 });
    const ws = new WebSocket(this.url);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => this.sendRaw(plain.encode({ t: "hello", v: PROTOCOL_VERSION, ...this.hello() }));
    ws.onmessage = (ev) => this.receive(ev.data);
    ws.onclose = (ev) => this.closed(ws, ev.code, ev.reason);
    // onerror is always followed by onclose, which does the work.
  }

  /** Drop the current socket (if any) and connect again at once. */
  restart() {
    this.stopSocket();
    this.attempt = 0;
    this.connect();
  }

  stopSocket() {
    clearInterval(this.pingTimer);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = ws.onmessage = ws.onopen = null;
      ws.close(1000, "client restart");
    }
  }

  receive(data) {
    if (!(data instanceof ArrayBuffer)) return; // the server only sends binary frames
    let msg;
    try {
      msg = decode(new Uint8Array(data));
    } catch (err) {
      console.warn("npcworld: undecodable frame", err);
      return;
    }
    // a version-3 update is the one message that is an array: name its items as version 2 does
    if (Array.isArray(msg)) {
      const [tick, ack, chat, enter, leave, cells, moves] = msg;
      msg = { t: "update", v: 3, tick, ack, chat, enter, leave, cells, moves };
    }
    if (msg.t === "welcome") this.welcomed();
    else if (msg.t === "pong") this.ponged(msg.id);
    this.onMessage(msg);
  }

  welcomed() {
    this.attempt = 0;
    this.setState({ phase: "connected", closeCode: null, closeReason: "", lastClose: null, note: "" });
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => this.ping(), PING_EVERY_MS);
    this.ping();
  }

  ping() {
    const id = ++this.pingId;
    this.pingsSent.set(id, performance.now());
    // Forget pings that never came back (at most ~10 kept).
    for (const old of this.pingsSent.keys()) if (old < id - 10) this.pingsSent.delete(old);
    this.send({ t: "ping", id });
  }

  ponged(id) {
    const sent = this.pingsSent.get(id);
    if (sent === undefined) return;
    this.pingsSent.delete(id);
    this.rttMs = performance.now() - sent;
  }

  closed(ws, code, reason) {
    if (ws !== this.ws) return; // an old socket we already replaced
    this.ws = null;
    clearInterval(this.pingTimer);
    console.info(`npcworld: connection closed, code ${code}${reason ? `: ${reason}` : ""}`);
    // 1006 = no close frame (e.g. connection refused while the server is down);
    // keep showing the last close the server explained.
    if (code !== 1006) this.state.lastClose = { code, reason };
    if (code in NO_RECONNECT) {
      this.setState({ phase: "stopped", closeCode: code, closeReason: reason, note: NO_RECONNECT[code] });
      return;
    }
    // Exponential backoff with jitter: 0.5 s, 1 s, 2 s ... capped at 10 s,
    // each delay drawn uniformly from [50%, 100%] of its step so that many
    // clients dropped together do not all come back in the same instant.
    const step = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.attempt);
    const delayMs = step * (0.5 + 0.5 * Math.random());
    this.attempt += 1;
    this.setState({ phase: "reconnecting", retryAt: performance.now() + delayMs, closeCode: code, closeReason: reason });
    this.retryTimer = setTimeout(() => this.connect(), delayMs);
  }

  setState(change) {
    Object.assign(this.state, change);
    this.onState(this.state);
  }

  /** Send one message (plain encoding); false when not connected. */
  send(msg) {
    return this.sendRaw(plain.encode(msg));
  }

  /** Send an input with seq as an int and dx, dy as floats, as the protocol types them. */
  sendInput(seq, dx, dy) {
    return this.sendRaw(floaty.encode({ t: "input", seq: BigInt(seq), dx, dy }));
  }

  sendRaw(bytes) {
    if (!this.open) return false;
    this.ws.send(bytes);
    return true;
  }
}
