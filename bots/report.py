"""The report of a load run: figures computed from what the workers and the
server's /metrics said, then written three ways: a table on stdout, JSON and a
self-contained HTML page (inline SVG, no scripts, nothing fetched).

Units: times in seconds since the start of the run (the first connection
attempt), latencies in ms, rates per second. "Steady" figures cover the
steady window (Plan.window: after the ramp has settled, to the end).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from charts import svg
from .plan import Plan
from .scrape import tick_quantiles_ms
from .stats import LogHistogram, percentile

REPORT_VERSION = 1
COUNTERS = (
    "updates",
    "bytes",
    "msgs_in",
    "msgs_out",
    "connects",
    "connect_failures",
    "disconnects",
    "missed_ticks",
    "send_skips",
    "connected",
    "started",
)
HISTS = ("gap", "rtt", "ack")


@dataclass
class Collected:
    """Everything a run gathered, as it came in."""

    plan: Plan
    started_at: str  # wall clock, ISO 8601
    t0_unix: float = 0.0  # the start (first connection attempt), seconds since the epoch
    seconds: dict[int, dict] = field(default_factory=dict)  # second -> snapshot merged over workers
    tail: dict = field(default_factory=dict)  # the last partial second and the closing, merged
    bots: list[dict] = field(default_factory=list)
    scrapes: list[tuple[float, dict]] = field(default_factory=list)  # (seconds since start, values)
    metrics_error: str | None = None  # why the server's figures are missing or incomplete
    metrics_lost_at: float | None = None  # when /metrics stopped answering for good
    scrape_failures: dict[str, int] = field(default_factory=dict)  # reason -> failed scrapes
    worker_failures: list[str] = field(default_factory=list)
    why_ended: str = "duration"  # duration | stopped | all connections ended | interrupted ...
    run_s: float = 0.0


def merge_snapshot(into: dict, snap: dict) -> None:
    for name in COUNTERS:
        into[name] = into.get(name, 0) + snap.get(name, 0)
    for name in ("errors", "ends", "rate", *HISTS):
        acc = into.setdefault(name, {})
        for k, v in snap.get(name, {}).items():
            acc[k] = acc.get(k, 0) + v


def _r(v, nd=2):
    return None if v is None else round(v, nd)


def _rate_stats(rate: dict) -> tuple[float | None, float | None]:
    """(mean, p5) of per-client updates in a second, from {updates: clients}."""
    n = sum(rate.values())
    if not n:
        return None, None
    mean = sum(int(k) * c for k, c in rate.items()) / n
    rank, seen = max(1, int(0.05 * n + 0.999999)), 0
    for k in sorted(rate, key=int):
        seen += rate[k]
        if seen >= rank:
            return mean, float(k)
    return mean, None


def _hist(snaps: list[dict], name: str) -> LogHistogram:
    h = LogHistogram()
    for s in snaps:
        h.merge(s.get(name, {}))
    return h


def _server_rows(scrapes: list[tuple[float, dict]]) -> list[dict]:
    rows = []
    for (ta, a), (tb, b) in zip(scrapes, scrapes[1:]):
        dt = tb - ta
        if dt <= 0:
            continue
        p50, p99 = tick_quantiles_ms(a, b)

        def per_s(name):
            return (b.get(name, 0.0) - a.get(name, 0.0)) / dt

        rows.append(
            {
                "t": round(tb, 2),
                "connections": b.get("npcworld_connections"),
                "tick_p50_ms": _r(p50, 3),
                "tick_p99_ms": _r(p99, 3),
                "overruns": b.get("npcworld_tick_overruns_total", 0) - a.get("npcworld_tick_overruns_total", 0),
                "bytes_out_per_s": round(per_s("npcworld_bytes_out_total")),
                "messages_in_per_s": round(per_s("npcworld_messages_in_total"), 1),
                "messages_out_per_s": round(per_s("npcworld_messages_out_total"), 1),
            }
        )
    return rows


def summarize(c: Collected) -> dict:
    plan = c.plan
    w0, w1 = plan.window
    order = sorted(c.seconds)
    timeline = []
    for s in order:
        snap = c.seconds[s]
        conn = snap.get("connected", 0)
        mean, p5 = _rate_stats(snap.get("rate", {}))  # over the bots open for the whole second
        h = {name: LogHistogram(snap.get(name, {})) for name in HISTS}
        timeline.append(
            {
                "t": s,
                "connected": conn,
                "started": snap.get("started", 0),
                "updates_per_client": _r(mean),
                "updates_per_client_p5": p5,
                "rtt_p50": _r(h["rtt"].percentile(50), 3),
                "rtt_p99": _r(h["rtt"].percentile(99), 3),
                "gap_p50": _r(h["gap"].percentile(50), 3),
                "gap_p99": _r(h["gap"].percentile(99), 3),
                "ack_p50": _r(h["ack"].percentile(50), 3),
                "ack_p99": _r(h["ack"].percentile(99), 3),
                "bytes_per_client": round(snap.get("bytes", 0) / conn) if conn else None,
                "errors": sum(snap.get("errors", {}).values()),
                "disconnects": snap.get("disconnects", 0),
                "connect_failures": snap.get("connect_failures", 0),
            }
        )

    steady_snaps = [c.seconds[s] for s in order if w0 < s <= w1 + 1e-9]
    all_snaps = [c.seconds[s] for s in order] + ([c.tail] if c.tail else [])
    steady_h = {name: _hist(steady_snaps, name) for name in HISTS}
    all_h = {name: _hist(all_snaps, name) for name in HISTS}
    rate_all: dict = {}
    for snap in steady_snaps:
        for k, v in snap.get("rate", {}).items():
            rate_all[k] = rate_all.get(k, 0) + v

    bots = c.bots
    per_bot_rate = [b["updates_per_s"] for b in bots if b["updates_per_s"] is not None]
    per_bot_bps = [b["bytes_per_s"] for b in bots if b["bytes_per_s"] is not None]
    ends = Counter(b["end"] for b in bots)
    errors: Counter = Counter()
    for b in bots:
        errors.update(b["errors"])
    sent_by_kind: Counter = Counter()
    for b in bots:
        sent_by_kind.update(b["sent"])
    sent = sum(b["msgs_out"] for b in bots)
    received = sum(b["msgs_in"] for b in bots)

    server: dict = {
        "metrics_url": plan.metrics_url,
        "error": c.metrics_error,
        "lost_at": c.metrics_lost_at,
        "timeline": _server_rows(c.scrapes),
    }
    if len(c.scrapes) >= 2:
        first, last = c.scrapes[0][1], c.scrapes[-1][1]

        def delta(name):
            return last.get(name, 0.0) - first.get(name, 0.0)

        inside = [(t, v) for t, v in c.scrapes if w0 - 0.5 <= t <= w1 + 0.5]
        steady = {}
        if len(inside) >= 2:
            (ta, a), (tb, b) = inside[0], inside[-1]
            p50, p90, p99 = tick_quantiles_ms(a, b, (0.5, 0.9, 0.99))
            steady = {
                "from": round(ta, 2),
                "to": round(tb, 2),
                "tick_p50_ms": _r(p50, 3),
                "tick_p90_ms": _r(p90, 3),
                "tick_p99_ms": _r(p99, 3),
                "overruns": b.get("npcworld_tick_overruns_total", 0) - a.get("npcworld_tick_overruns_total", 0),
                "bytes_out_per_s": round(
                    (b.get("npcworld_bytes_out_total", 0) - a.get("npcworld_bytes_out_total", 0)) / max(tb - ta, 1e-9)
                ),
            }
        server.update(
            {
                "first_at": round(c.scrapes[0][0], 2),
                "last_at": round(c.scrapes[-1][0], 2),
                "messages_in": delta("npcworld_messages_in_total"),
                "messages_out": delta("npcworld_messages_out_total"),
                "bytes_in": delta("npcworld_bytes_in_total"),
                "bytes_out": delta("npcworld_bytes_out_total"),
                "connections_accepted": delta("npcworld_connections_total"),
                "connections_max": max((v.get("npcworld_connections", 0) for _, v in c.scrapes), default=0),
                "connections_at_end": last.get("npcworld_connections"),
                "overruns": delta("npcworld_tick_overruns_total"),
                "ticks": delta("npcworld_ticks_total"),
                "steady": steady,
            }
        )

    def pct(values, q, nd=2):
        return _r(percentile(values, q), nd)

    opened = sum(1 for b in bots if b["opened"] is not None)
    problems = []
    failed = {k: v for k, v in ends.items() if k.startswith("failed")}
    closed = {k: v for k, v in ends.items() if k.startswith(("closed", "error"))}
    if failed:
        problems.append(
            f"{sum(failed.values())} of {plan.clients} bots could not connect: "
            + ", ".join(f"{k[len('failed: ') :]} x{v}" for k, v in sorted(failed.items()))
        )
    if closed:
        problems.append(
            f"{sum(closed.values())} connections ended before the run did: "
            + ", ".join(f"{k} x{v}" for k, v in sorted(closed.items()))
        )
    if c.metrics_lost_at is not None:
        problems.append(
            f"the server's /metrics stopped answering {c.metrics_lost_at:.1f} s into the run (the server went away?)"
        )
    elif c.metrics_error:
        problems.append(f"no server figures: {c.metrics_error}")
    notes = []
    if c.scrape_failures and c.metrics_lost_at is None:
        notes.append(
            f"{sum(c.scrape_failures.values())} scrapes of /metrics failed ("
            + ", ".join(f"{k} x{v}" for k, v in c.scrape_failures.items())
            + "): the server was too busy to answer in time"
        )
    not_started = ends.get("not started", 0)
    if not_started:
        problems.append(f"{not_started} bots never started (the run ended early: {c.why_ended})")
    problems.extend(f"bot process failed: {f}" for f in c.worker_failures)

    summary = {
        "clients": plan.clients,
        "connected": opened,
        "connected_max": max((r["connected"] for r in timeline), default=0),
        "finished": ends.get("finished", 0),
        "updates_per_s_median": pct(per_bot_rate, 50),
        "updates_per_s_p5": pct(per_bot_rate, 5),
        "updates_per_s_min": _r(min(per_bot_rate)) if per_bot_rate else None,
        "gap_p50": _r(steady_h["gap"].percentile(50), 3),
        "gap_p99": _r(steady_h["gap"].percentile(99), 3),
        "rtt_p50": _r(steady_h["rtt"].percentile(50), 3),
        "rtt_p99": _r(steady_h["rtt"].percentile(99), 3),
        "ack_p50": _r(steady_h["ack"].percentile(50), 3),
        "ack_p99": _r(steady_h["ack"].percentile(99), 3),
        "bytes_per_s_median": pct(per_bot_bps, 50, 0),
        "messages_sent": sent,
        "messages_received": received,
        "sent_by_kind": dict(sent_by_kind),
        "chat_heard": sum(b["chat_heard"] for b in bots),
        "missed_ticks": sum(b["missed_ticks"] for b in bots),
        "send_skips": sum(s.get("send_skips", 0) for s in all_snaps),
        "ends": dict(sorted(ends.items())),
        "errors": dict(sorted(errors.items())),
        "problems": problems,
        "notes": notes,
    }
    talk = talk_summary(bots)
    if talk is not None:
        summary["talk"] = talk
    return {
        "version": REPORT_VERSION,
        "started_at": c.started_at,
        "t0_unix": round(c.t0_unix, 3),
        "plan": plan.asdict(),
        "window": {"from": w0, "to": w1},
        "run_s": round(c.run_s, 2),
        "why_ended": c.why_ended,
        "summary": summary,
        "server": server,
        "timeline": timeline,
        "histograms": {
            "gap_ms": all_h["gap"].rows(),
            "rtt_ms": all_h["rtt"].rows(),
            "ack_ms": all_h["ack"].rows(),
            "updates_per_client_second": sorted((int(k), v) for k, v in rate_all.items()),
        },
        "bots": bots,
    }


def talk_summary(bots: list[dict]) -> dict | None:
    """The `talk` scenario's figures over the whole run, added up over bots (None when no bot talked):
    lines sent, refusals by error code, replies by say_end reason, the fallback share of replies, and
    the NPCs' time to first token (talk sent -> first say_delta) and reply duration (-> say_end), ms."""
    parts = [b["talk"] for b in bots if b.get("talk")]
    if not parts:
        return None
    refused: Counter = Counter()
    reasons: Counter = Counter()
    ttft, reply = LogHistogram(), LogHistogram()
    for t in parts:
        refused.update(t["refused"])
        reasons.update(t["reasons"])
        ttft.merge(t["ttft_ms"])
        reply.merge(t["reply_ms"])
    replies = sum(reasons.values())
    return {
        "sent": sum(t["sent"] for t in parts),
        "replies": replies,
        "reasons": dict(sorted(reasons.items())),
        "refused": dict(sorted(refused.items())),
        "fallback_share": _r(reasons.get("fallback", 0) / replies, 3) if replies else None,
        "ttft_p50": _r(ttft.percentile(50), 1),
        "ttft_p99": _r(ttft.percentile(99), 1),
        "ttft_n": ttft.n,
        "reply_p50": _r(reply.percentile(50), 1),
        "reply_p99": _r(reply.percentile(99), 1),
    }


# -- outputs ---------------------------------------------------------------


def _v(v, unit="", nd=1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{nd}f}{unit}"
    return f"{v:,}{unit}"


def tick_rate(r: dict) -> int:
    """The server's tick rate, from a welcome (20 Hz when no bot got one)."""
    return next((b["tick_rate"] for b in r["bots"] if b.get("tick_rate")), 20)


def table_rows(r: dict) -> list[tuple[str, str]]:
    s, srv = r["summary"], r["server"]
    hz = tick_rate(r)
    st = srv.get("steady") or {}
    rows = [
        ("bots connected / asked", f"{s['connected']} / {s['clients']}  (most at once {s['connected_max']})"),
        (
            "updates/s per client",
            f"median {_v(s['updates_per_s_median'])}  p5 {_v(s['updates_per_s_p5'])}  min {_v(s['updates_per_s_min'])}",
        ),
        ("update gap", f"p50 {_v(s['gap_p50'], ' ms')}  p99 {_v(s['gap_p99'], ' ms')}"),
        ("round trip (ping)", f"p50 {_v(s['rtt_p50'], ' ms', 2)}  p99 {_v(s['rtt_p99'], ' ms', 2)}"),
        ("input to ack", f"p50 {_v(s['ack_p50'], ' ms')}  p99 {_v(s['ack_p99'], ' ms')}"),
        ("bytes/s per client", f"median {_v(s['bytes_per_s_median'], '', 0)}"),
        (
            "messages sent / received",
            f"{s['messages_sent']:,} / {s['messages_received']:,}  ("
            + ", ".join(f"{k} {v:,}" for k, v in s["sent_by_kind"].items())
            + ")",
        ),
        ("chat lines heard", f"{s['chat_heard']:,}"),
        *talk_rows(s.get("talk")),
        ("ticks missed (coalesced)", f"{s['missed_ticks']:,}"),
        ("errors received", ", ".join(f"{k} x{v}" for k, v in s["errors"].items()) or "none"),
        ("connections ended", ", ".join(f"{k} x{v}" for k, v in s["ends"].items()) or "-"),
    ]
    if "messages_in" in srv:
        rows += [
            (
                "server tick",
                f"p50 {_v(st.get('tick_p50_ms'), ' ms', 2)}  p99 {_v(st.get('tick_p99_ms'), ' ms', 2)}"
                f"  (budget {1000 / hz:.0f} ms at {hz} Hz)",
            ),
            ("server overruns", f"{_v(st.get('overruns'), '', 0)} steady, {_v(srv['overruns'], '', 0)} in all"),
            (
                "server connections",
                f"most {_v(srv['connections_max'], '', 0)}, accepted {_v(srv['connections_accepted'], '', 0)}",
            ),
            ("server bytes out/s", _v(st.get("bytes_out_per_s"), "", 0)),
            ("server messages in / out", f"{_v(srv['messages_in'], '', 0)} / {_v(srv['messages_out'], '', 0)}"),
        ]
    else:
        rows.append(("server figures", srv.get("error") or "none"))
    return rows


def talk_rows(t: dict | None) -> list[tuple[str, str]]:
    if t is None:
        return []
    share = "-" if t["fallback_share"] is None else f"{100 * t['fallback_share']:.1f} %"
    return [
        (
            "NPC lines: sent / replies",
            f"{t['sent']:,} / {t['replies']:,}  ("
            + (", ".join(f"{k} {v:,}" for k, v in t["reasons"].items()) or "none")
            + ")"
            + ("; refused: " + ", ".join(f"{k} x{v}" for k, v in t["refused"].items()) if t["refused"] else ""),
        ),
        (
            "NPC time to first token",
            f"p50 {_v(t['ttft_p50'], ' ms')}  p99 {_v(t['ttft_p99'], ' ms')}  ({t['ttft_n']:,} replies with words)",
        ),
        ("NPC reply duration", f"p50 {_v(t['reply_p50'], ' ms')}  p99 {_v(t['reply_p99'], ' ms')}"),
        ("NPC fallback share", share),
    ]


def text_table(r: dict) -> str:
    p = r["plan"]
    head = (
        f"npcworld bots: {p['clients']} x {p['scenario']} -> {p['url']}  ramp {p['ramp']:g} s, "
        f"duration {p['duration']:g} s, {p['procs']} bot process{'es' if p['procs'] > 1 else ''}\n"
        f"steady window {r['window']['from']:g}..{r['window']['to']:g} s; ended by {r['why_ended']} "
        f"after {r['run_s']:.1f} s"
    )
    rows = table_rows(r)
    width = max(len(k) for k, _ in rows)
    lines = [head, "-" * min(100, max(len(line) for line in head.splitlines()))]
    lines += [f"{k:<{width}}  {v}" for k, v in rows]
    for problem in r["summary"]["problems"]:
        lines.append("! " + problem)
    for note in r["summary"]["notes"]:
        lines.append("note: " + note)
    return "\n".join(lines)


def write_json(r: dict, path: Path) -> None:
    path.write_text(json.dumps(r, indent=1) + "\n", encoding="utf-8")


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1500px}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:28px 0 8px}
.sub{color:#555;font-size:13px} table{border-collapse:collapse;font-size:13px}
td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{background:#f6f6f6} td.n{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:flex;flex-wrap:wrap;gap:12px} .plot{border:1px solid #ddd}
.bad{color:#b00020} .ok{color:#1b7a1b}
"""


def html_report(r: dict) -> str:
    p, s, srv, tl = r["plan"], r["summary"], r["server"], r["timeline"]
    stl = srv.get("timeline", [])
    hz = tick_rate(r)

    def pts(rows, key):
        return [(row["t"], row.get(key)) for row in rows]

    charts = [
        svg.line_chart(
            "Connections",
            [("bots connected", pts(tl, "connected")), ("server connections", pts(stl, "connections"))],
            y_label="connections",
        ),
        svg.line_chart(
            "Updates per second per client",
            [("mean", pts(tl, "updates_per_client")), ("p5", pts(tl, "updates_per_client_p5"))],
            y_label="updates/s",
            hline=(f"tick rate {hz} Hz", float(hz)),
        ),
        svg.line_chart(
            "Round trip (ping/pong)", [("p50", pts(tl, "rtt_p50")), ("p99", pts(tl, "rtt_p99"))], y_label="ms"
        ),
        svg.line_chart(
            "Update gap and input-to-ack",
            [
                ("gap p50", pts(tl, "gap_p50")),
                ("gap p99", pts(tl, "gap_p99")),
                ("ack p50", pts(tl, "ack_p50")),
                ("ack p99", pts(tl, "ack_p99")),
            ],
            y_label="ms",
        ),
        svg.line_chart(
            "Server tick duration",
            [("p50", pts(stl, "tick_p50_ms")), ("p99", pts(stl, "tick_p99_ms"))],
            y_label="ms",
            hline=(f"budget {1000 / hz:.0f} ms", 1000.0 / hz),
        ),
        svg.line_chart("Server bytes out per second", [("bytes/s", pts(stl, "bytes_out_per_s"))], y_label="bytes/s"),
    ]
    hs = r["histograms"]
    hists = [
        svg.histogram("Update gap", hs["gap_ms"], "ms (log scale)"),
        svg.histogram("Round trip", hs["rtt_ms"], "ms (log scale)"),
        svg.histogram("Input to acknowledgement", hs["ack_ms"], "ms (log scale)"),
        svg.histogram(
            "Updates per client per second (steady window)",
            [(k - 0.5, k + 0.5, v) for k, v in hs["updates_per_client_second"]],
            "updates in one second",
            log_x=False,
        ),
    ]
    verdict = (
        '<p class="ok">No problems seen.</p>'
        if not s["problems"]
        else "".join(f'<p class="bad">{escape(x)}</p>' for x in s["problems"])
    )
    verdict += "".join(f'<p class="sub">note: {escape(x)}</p>' for x in s["notes"])
    summary_rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in table_rows(r))

    cols = (
        "bot",
        "id",
        "opened",
        "ended",
        "end",
        "updates_per_s",
        "gap_p99",
        "rtt_p50",
        "rtt_p99",
        "ack_p99",
        "bytes_per_s",
        "missed_ticks",
        "msgs_out",
        "msgs_in",
    )
    worst = sorted(
        r["bots"], key=lambda b: (b["updates_per_s"] is not None, b["updates_per_s"] or 0, -(b["rtt_p99"] or 0))
    )[:25]
    bot_rows = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{escape(_v(b[k], nd=2))}</td>'
            if isinstance(b[k], (int, float)) and k != "end"
            else f"<td>{escape(str(b[k]) if b[k] is not None else '-')}</td>"
            for k in cols
        )
        + "</tr>"
        for b in worst
    )

    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>npcworld bots: {p["clients"]} x {escape(p["scenario"])}</title>
<style>{CSS}</style></head><body>
<h1>npcworld load test: {p["clients"]} bots, scenario {escape(p["scenario"])}</h1>
<div class="sub">{escape(p["url"])} &middot; started {escape(r["started_at"])} &middot; ramp {p["ramp"]:g} s,
duration {p["duration"]:g} s, {p["procs"]} bot process{"es" if p["procs"] > 1 else ""} &middot; steady window {r["window"]["from"]:g}..{r["window"]["to"]:g} s
&middot; ended by {escape(r["why_ended"])} after {r["run_s"]:.1f} s</div>
{verdict}
<h2>Summary (steady window)</h2><table>{summary_rows}</table>
<h2>Over time</h2><div class="grid">{"".join(charts)}</div>
<h2>Distributions (whole run)</h2><div class="grid">{"".join(hists)}</div>
<h2>Slowest bots</h2><p class="sub">The {len(worst)} bots with the lowest update rate in the steady window;
every bot is in the JSON report.</p>
<table><tr>{"".join(f"<th>{c}</th>" for c in cols)}</tr>{bot_rows}</table>
</body></html>
"""


def write(r: dict, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path, html_path = directory / "report.json", directory / "report.html"
    write_json(r, json_path)
    html_path.write_text(html_report(r), encoding="utf-8")
    return json_path, html_path
