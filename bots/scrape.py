"""The server's own figures: fetch /metrics (Prometheus text format) and read
what the report needs from it. See docs/protocol.md for the metric names."""

from __future__ import annotations

import math
import socket
import threading
import time
import urllib.error
from collections import Counter
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from .stats import bucket_quantile

TICK = "npcworld_tick_duration_seconds"


class ScrapeError(Exception):
    """The metrics could not be fetched; the message says why, in words."""


def fetch(url: str, timeout: float) -> str:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        raise ScrapeError(f"HTTP {exc.code} from {url}") from None
    except urllib.error.URLError as exc:
        raise ScrapeError(describe_os_error(exc.reason)) from None
    except (OSError, ValueError) as exc:  # timeouts, resets, a malformed URL
        raise ScrapeError(describe_os_error(exc)) from None


def describe_os_error(reason) -> str:
    if isinstance(reason, socket.gaierror):
        return "unknown host"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (is the server running, on that port?)"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return "no answer in time"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def parse(text: str) -> dict[str, float]:
    """{'name' or 'name{label="value",...}': value} for every sample, as prometheus-client's own
    parser reads the text (labels sorted by name). Text the parser refuses
    reads as no samples, as a failed scrape does."""
    values: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                values[s.name + ("{" + labels + "}" if labels else "")] = s.value
    except ValueError:
        return {}
    return values


def tick_buckets(values: dict[str, float]) -> list[tuple[float, float]]:
    """Cumulative (upper bound in seconds, count) of the tick duration histogram, sorted."""
    prefix = TICK + '_bucket{le="'
    out = []
    for key, count in values.items():
        if key.startswith(prefix):
            le = key[len(prefix) :].split('"', 1)[0]
            out.append((math.inf if le == "+Inf" else float(le), count))
    return sorted(out)


def tick_quantiles_ms(before: dict[str, float] | None, after: dict[str, float], qs=(0.5, 0.99)) -> list[float | None]:
    """Tick duration quantiles (ms) of the ticks between two scrapes (all ticks when `before` is None)."""
    b = dict(tick_buckets(before)) if before else {}
    delta = [(le, n - b.get(le, 0.0)) for le, n in tick_buckets(after)]
    return [None if (v := bucket_quantile(q, delta)) is None else v * 1000.0 for q in qs]


class Scraper(threading.Thread):
    """Scrapes once a second in the background, so a slow or dead server never
    stalls the run. `samples` holds (monotonic time the answer came, values);
    `failing_since` is the time of the first failure of the current streak
    (None when the last scrape worked). A busy server answers late: TIMEOUT_S
    is generous, and a late answer only delays the next scrape."""

    TIMEOUT_S = 5.0

    def __init__(self, url: str, every: float = 1.0, timeout: float = TIMEOUT_S):
        super().__init__(name="metrics-scraper", daemon=True)
        self.url, self.every, self.timeout = url, every, timeout
        self.samples: list[tuple[float, dict[str, float]]] = []
        self.failing_since: float | None = None
        self.failures: Counter = Counter()  # reason -> scrapes that failed
        self.halt = threading.Event()

    def scrape_once(self) -> bool:
        try:
            text = fetch(self.url, self.timeout)
        except ScrapeError as exc:
            self.failures[str(exc)] += 1
            if self.failing_since is None:
                self.failing_since = time.monotonic()
            return False
        self.samples.append((time.monotonic(), parse(text)))
        self.failing_since = None
        return True

    def run(self) -> None:
        next_at = time.monotonic()
        while not self.halt.is_set():
            self.scrape_once()
            next_at = max(next_at + self.every, time.monotonic())  # late: no catch-up burst
            self.halt.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self.halt.set()
        self.join(1.0)  # a scrape still waiting on a hung server is left to its timeout (daemon thread)
