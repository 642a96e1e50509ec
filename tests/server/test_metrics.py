"""server/metrics.py: the server's plain counters, exposed through a prometheus-client collector in
the server's own registry, read back by the library's parser and by the bots' scrape reader."""

from __future__ import annotations

from prometheus_client.metrics_core import CounterMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from bots.scrape import parse, tick_buckets
from server.metrics import Metrics


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_counters_render_with_their_documented_names_and_read_back():
    m = Metrics()
    m.ticks, m.connections, m.connections_total, m.bytes_out = 7, 2, 3, 1234
    m.errors_sent["bad_field"] = 2
    m.closes[4002] = 1
    m.players, m.npcs = 4, 9
    got = samples(m.render())
    assert got[("npcworld_ticks_total", ())] == 7
    assert got[("npcworld_connections", ())] == 2  # the gauge beside the counter of the same stem
    assert got[("npcworld_connections_total", ())] == 3
    assert got[("npcworld_bytes_out_total", ())] == 1234
    assert got[("npcworld_errors_sent_total", (("code", "bad_field"),))] == 2
    assert got[("npcworld_closes_total", (("code", "4002"),))] == 1
    assert got[("npcworld_entities", (("kind", "npc"),))] == 9
    assert got[("npcworld_entities", (("kind", "player"),))] == 4
    assert ("npcworld_ticks_created", ()) not in got  # no _created samples: counters start with the server


def test_the_tick_histogram_is_cumulative_and_the_bots_read_its_buckets():
    m = Metrics()
    for s in (0.0003, 0.003, 0.003, 0.04, 3.0):
        m.tick_duration.observe(s)
    values = parse(m.render())
    buckets = dict(tick_buckets(values))
    assert buckets[0.0005] == 1 and buckets[0.005] == 3 and buckets[0.05] == 4 and buckets[1.0] == 4
    assert buckets[float("inf")] == 5 == values["npcworld_tick_duration_seconds_count"]
    assert abs(values["npcworld_tick_duration_seconds_sum"] - 3.0463) < 1e-9


class Part:
    """A part's collector, as the decision pool, dialogue and the store are: plain counters, read at scrape."""

    def __init__(self) -> None:
        self.n = 0

    def collect(self):
        yield CounterMetricFamily("npcworld_part_things_total", "Things.", value=self.n)


def test_a_parts_collector_is_read_at_every_scrape_and_servers_do_not_share_a_registry():
    a, b, part = Metrics(), Metrics(), Part()
    a.add(part)
    part.n = 5
    assert samples(a.render())[("npcworld_part_things_total", ())] == 5
    part.n = 6
    assert samples(a.render())[("npcworld_part_things_total", ())] == 6
    assert ("npcworld_part_things_total", ()) not in samples(b.render())


def test_the_bots_reader_takes_what_the_library_refuses_as_no_samples():
    assert parse("npcworld_ticks_total{oops 3\n") == {}
    assert parse("") == {}
