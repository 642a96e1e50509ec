// admin_api.js — the admin API's client for pages served by the admin server
// itself (the inspector, the monitor's reload log): same origin, the bearer
// token in every request, JSON answers. A route this server does not have
// answers 404 "no such endpoint": `missing` says so, so a page can degrade.

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

