"""The parent of a load run: checks the server is there, starts the bot
processes, shows a progress line, scrapes the server's /metrics once a second,
stops everything in bounded time and makes the report.

Time bounds (a run never hangs):
    checking the server    PREFLIGHT_TIMEOUT_S
    starting processes     START_TIMEOUT_S
    the run                --duration, from the first connection attempt
    closing and reporting  GRACE_S; then worker processes still alive are
                           terminated by PID (SIGTERM, then SIGKILL)

Exit status: 0 the run went as planned; 1 it ran but something went wrong
(bots could not connect, the server closed connections or went away, a bot
process failed; the summary says what); 2 bad arguments; 3 the server could
not be reached at all; 130 interrupted (Ctrl+C or SIGTERM; the report is
still written).
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_mod
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from . import report, worker
from .plan import CLOSE_TIMEOUT_S, Plan
from .scrape import Scraper, ScrapeError, fetch, tick_quantiles_ms
from .stats import LogHistogram

EXIT_OK, EXIT_PROBLEMS, EXIT_UNREACHABLE, EXIT_INTERRUPTED = 0, 1, 3, 130
PREFLIGHT_TIMEOUT_S = 3.0
START_TIMEOUT_S = 30.0
GRACE_S = CLOSE_TIMEOUT_S + 8.0  # a worker needs at most CLOSE_TIMEOUT_S + 3 s to close and report
LINE = 99  # progress line width: fits a 100-column terminal
GIVE_UP_AFTER = 5  # failed connects, with none succeeding, that end the run early


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt


def progress_line(plan: Plan, s: int, snap: dict, trouble: int, tick_p99: float | None) -> str:
    conn = snap.get("connected", 0)
    rate = snap.get("rate", {})
    n = sum(rate.values())
    mean = f"{sum(int(k) * v for k, v in rate.items()) / n:4.1f}" if n else "   -"  # bots open all second
    rtt = LogHistogram(snap.get("rtt", {}))

    def ms(v):
        return "-" if v is None else f"{v:.1f}"

    line = (
        f"{s:>4}/{plan.duration:g}s  conn {conn}/{plan.clients}  upd/s/client {mean}  "
        f"rtt p50 {ms(rtt.percentile(50))} p99 {ms(rtt.percentile(99))} ms  errors {trouble}  "
        f"tick p99 {ms(tick_p99)} ms"
    )
    return line[:LINE]


def run(plan: Plan, report_dir: Path, out=None, err=None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    metrics_error = None
    try:
        fetch(plan.metrics_url, PREFLIGHT_TIMEOUT_S)
    except ScrapeError as exc:
        if not str(exc).startswith("HTTP "):
            print(f"npcworld bots: cannot reach the server at {plan.url}: {exc}", file=err)
            return EXIT_UNREACHABLE
        metrics_error = str(exc)  # something answers HTTP there: the bots may still connect
    old_term = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _run(plan, report_dir, out, err, metrics_error)
    finally:
        signal.signal(signal.SIGTERM, old_term)


def _run(plan: Plan, report_dir: Path, out, err, metrics_error: str | None) -> int:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    go, stop = ctx.Event(), ctx.Event()
    start_at = ctx.Value("d", 0.0, lock=False)
    procs = [
        ctx.Process(target=worker.main, args=(w, plan, q, go, start_at, stop), name=f"npcworld-bots-{w}", daemon=True)
        for w in range(plan.procs)
    ]
    collected = report.Collected(
        plan, datetime.now(timezone.utc).isoformat(timespec="seconds"), metrics_error=metrics_error
    )
    scraper = Scraper(plan.metrics_url)
    tty = err.isatty()
    interrupted = False
    t0 = time.monotonic()
    try:
        for p in procs:
            p.start()
        failures = _wait_ready(procs, q)
        if failures:
            collected.worker_failures = failures
            print("npcworld bots: could not start the bot processes: " + "; ".join(failures), file=err)
            return EXIT_PROBLEMS
        if metrics_error is None:
            scraper.scrape_once()  # the baseline the run's figures are measured from
        t0 = time.monotonic() + 0.2
        start_at.value = t0
        collected.t0_unix = time.time() + (t0 - time.monotonic())
        go.set()
        if metrics_error is None:
            scraper.start()
        interrupted = _watch(plan, procs, q, stop, t0, collected, scraper, err, tty)
    except KeyboardInterrupt:
        interrupted = True
        stop.set()
    finally:
        stop.set()
        go.set()  # a worker still waiting to start returns at once
        _end_processes(procs, q)
        scraper.stop()
    if tty:
        err.write("\n")
    collected.run_s = time.monotonic() - t0
    if metrics_error is None:
        # The figures after the bots closed; when this fails the server is gone
        # (not merely slow: it had the whole grace time to answer).
        if not scraper.scrape_once() and scraper.samples:
            collected.metrics_lost_at = max(0.0, (scraper.failing_since or t0) - t0)  # set by the failed scrape
        collected.scrapes = [(t - t0, v) for t, v in scraper.samples]
        collected.scrape_failures = dict(scraper.failures)
    if interrupted:
        collected.why_ended = "interrupted"
    r = report.summarize(collected)
    try:
        json_path, html_path = report.write(r, report_dir)
    except OSError as exc:
        print(report.text_table(r), file=out)
        print(f"npcworld bots: could not write the report to {report_dir}: {exc.strerror or exc}", file=err)
        return EXIT_PROBLEMS
    print(report.text_table(r), file=out)
    print(f"report: {html_path}  (data: {json_path})", file=out)
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_PROBLEMS if r["summary"]["problems"] else EXIT_OK


def _wait_ready(procs, q) -> list[str]:
    ready: set[int] = set()
    deadline = time.monotonic() + START_TIMEOUT_S
    while len(ready) < len(procs):
        if time.monotonic() > deadline:
            return [f"bot processes not ready after {START_TIMEOUT_S:.0f} s"]
        try:
            msg = q.get(timeout=0.2)
        except queue_mod.Empty:
            dead = [p for i, p in enumerate(procs) if i not in ready and p.exitcode is not None]
            if dead:
                return [f"{p.name} exited with code {p.exitcode}" for p in dead]
            continue
        if msg[0] == "ready":
            ready.add(msg[1])
        elif msg[0] == "fatal":
            return [f"process {msg[1]}: {msg[2].strip().splitlines()[-1]}"]
    return []


def _watch(plan, procs, q, stop, t0, c: report.Collected, scraper: Scraper, err, tty: bool) -> bool:
    """Collect worker reports until every worker is done (or the deadline);
    returns True when interrupted."""
    deadline = t0 + plan.duration + GRACE_S
    last_second = {w: 0 for w in range(len(procs))}
    finished: set[int] = set()
    whys: list[str] = []
    shown = 0
    last_print = 0.0
    trouble = connects = connect_failures = 0
    interrupted = False
    while len(finished) < len(procs):
        try:
            now = time.monotonic()
            if now > deadline:
                c.worker_failures.append(
                    f"{len(procs) - len(finished)} bot processes had not finished {GRACE_S:.0f} s after the "
                    "duration; they were terminated"
                )
                break
            try:
                msg = q.get(timeout=0.1)
            except queue_mod.Empty:
                msg = None
            if msg is not None:
                kind, w = msg[0], msg[1]
                if kind == "second":
                    _, _, s, snap = msg
                    report.merge_snapshot(c.seconds.setdefault(s, {}), snap)
                    last_second[w] = s
                    connects += snap["connects"]
                    connect_failures += snap["connect_failures"]
                    trouble += snap["connect_failures"] + snap["disconnects"] + sum(snap["errors"].values())
                elif kind == "done":
                    payload = msg[2]
                    report.merge_snapshot(c.tail, payload["final"])
                    c.bots.extend(payload["bots"])
                    whys.append(payload["why"])
                    finished.add(w)
                elif kind == "fatal":
                    c.worker_failures.append(f"process {w}: {msg[2].strip().splitlines()[-1]}")
                    finished.add(w)
            for w, p in enumerate(procs):
                if w not in finished and p.exitcode is not None:
                    c.worker_failures.append(f"{p.name} exited with code {p.exitcode} before reporting")
                    finished.add(w)
            if not stop.is_set() and connects == 0 and connect_failures >= min(plan.clients, GIVE_UP_AFTER):
                stop.set()  # nothing connects: no point waiting out the duration
                c.why_ended = "no bot could connect"
            live = [w for w in last_second if w not in finished]
            complete = min((last_second[w] for w in live), default=shown)
            if complete > shown and complete in c.seconds:
                shown = complete
                tick_p99 = None
                if len(scraper.samples) >= 2:
                    tick_p99 = tick_quantiles_ms(scraper.samples[-2][1], scraper.samples[-1][1], (0.99,))[0]
                line = progress_line(plan, shown, c.seconds[shown], trouble, tick_p99)
                if tty:
                    err.write("\r" + line.ljust(LINE))
                    err.flush()
                elif now - last_print >= 5.0:
                    last_print = now
                    print(line, file=err, flush=True)
        except KeyboardInterrupt:
            if interrupted:  # a second Ctrl+C: stop waiting for the closing handshakes
                break
            interrupted = True
            stop.set()
            deadline = min(deadline, time.monotonic() + CLOSE_TIMEOUT_S + 5.0)
    if c.why_ended == "duration" and whys and all(w == "all connections ended" for w in whys):
        c.why_ended = "all connections ended"
    return interrupted


def _end_processes(procs, q) -> None:
    """Every worker exits: joined if it finished, else terminated by PID."""
    deadline = time.monotonic() + 3.0
    for p in procs:
        if p.pid is None:
            continue
        while p.exitcode is None and time.monotonic() < deadline:
            try:  # keep the queue drained so a worker's feeder thread can exit
                q.get(timeout=0.05)
            except (queue_mod.Empty, OSError, EOFError, ValueError):
                pass
        if p.exitcode is None:
            p.terminate()
            p.join(2.0)
        if p.exitcode is None:
            p.kill()
            p.join(2.0)
    q.cancel_join_thread()
    q.close()
