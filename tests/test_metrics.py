"""Metrics exposition through prometheus_client: the core's counters, what plugins add (counters, gauges,
histograms), the recent errors and closes, and the histograms' arithmetic."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from hub.metrics import RECENT_LIMIT, Histogram, Metrics


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a render, parsed by prometheus_client's own parser: (name, labels) -> value."""
    found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(metrics.render()):
        for sample in family.samples:
            assert isinstance(sample, Sample)
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def types(metrics: Metrics) -> dict[str, str]:
    return {family.name: family.type for family in text_string_to_metric_families(metrics.render())}


def test_plugin_counters_and_gauges_render_with_their_types() -> None:
    metrics = Metrics()
    ticks = [0]
    metrics.counter("hub_demo_ticks_total", "Ticks.", lambda: ticks[0])
    metrics.gauge("hub_demo_feeds", "Feeds.", lambda: 2)
    ticks[0] = 41
    metrics.conflated = 7
    lines = metrics.render().splitlines()
    assert "# TYPE hub_demo_ticks_total counter" in lines
    assert "hub_demo_ticks_total 41.0" in lines
    assert "# TYPE hub_demo_feeds gauge" in lines
    assert "hub_demo_feeds 2.0" in lines
    assert "hub_conflated_events_total 7.0" in lines


def test_the_core_counters_keep_their_names_and_labels() -> None:
    metrics = Metrics()
    metrics.connections_opened = 3
    metrics.frames_received = 9
    metrics.events_published = 4
    metrics.errors["bad_request"] += 2
    metrics.closes[4009] += 1
    metrics.messages_in["chat.send"] += 5
    metrics.messages_in["draw.put"] += 1
    metrics.events_out["chat.posted"] += 4
    found = samples(metrics)
    assert found[("hub_connections_opened_total", frozenset())] == 3
    assert found[("hub_frames_received_total", frozenset())] == 9
    assert found[("hub_events_published_total", frozenset())] == 4
    assert found[("hub_errors_total", frozenset({("code", "bad_request")}))] == 2
    assert found[("hub_closes_total", frozenset({("code", "4009")}))] == 1
    assert found[("hub_messages_in_total", frozenset({("plugin", "chat"), ("type", "chat.send")}))] == 5
    assert found[("hub_messages_in_total", frozenset({("plugin", "draw"), ("type", "draw.put")}))] == 1
    assert found[("hub_events_out_total", frozenset({("plugin", "chat"), ("type", "chat.posted")}))] == 4
    kinds = types(metrics)
    assert kinds["hub_messages_in"] == "counter"
    assert kinds["hub_publish_latency_seconds"] == "histogram"


def test_process_metrics_are_exposed() -> None:
    found = {name for name, _labels in samples(Metrics())}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"} <= found
    assert "python_info" in found


def test_a_counter_name_ends_in_total() -> None:
    with pytest.raises(ValueError, match="_total"):
        Metrics().counter("hub_demo_ticks", "Ticks.", lambda: 0)


def test_a_histogram_renders_cumulative_buckets_sum_and_count() -> None:
    metrics = Metrics()
    latency = metrics.histogram("hub_demo_latency_seconds", "Latency.", (0.01, 0.1, 1.0))
    for value in (0.005, 0.01, 0.05, 0.5, 3.0):
        latency.observe(value)
    lines = metrics.render().splitlines()
    assert "# TYPE hub_demo_latency_seconds histogram" in lines
    assert [line for line in lines if line.startswith("hub_demo_latency_seconds")] == [
        'hub_demo_latency_seconds_bucket{le="0.01"} 2.0',  # an observation on a bound is counted in it
        'hub_demo_latency_seconds_bucket{le="0.1"} 3.0',
        'hub_demo_latency_seconds_bucket{le="1.0"} 4.0',
        'hub_demo_latency_seconds_bucket{le="+Inf"} 5.0',
        "hub_demo_latency_seconds_count 5.0",
        "hub_demo_latency_seconds_sum 3.565",
    ]


def test_observe_many_counts_one_value_several_times() -> None:
    once, many = Histogram((10.0, 100.0)), Histogram((10.0, 100.0))
    for _ in range(3):
        once.observe(50.0)
    many.observe_many(50.0, 3)
    assert (many.counts, many.count, many.sum) == (once.counts, once.count, once.sum) == ([0, 3, 0], 3, 150.0)


def test_publish_latency_is_one_histogram_per_plugin() -> None:
    metrics = Metrics()
    metrics.publish_done("chat.send", 0.0)
    metrics.publish_done("chat.edit", 0.0)
    metrics.publish_done("draw.put", 0.0)
    found = samples(metrics)
    assert found[("hub_publish_latency_seconds_count", frozenset({("plugin", "chat")}))] == 2
    assert found[("hub_publish_latency_seconds_count", frozenset({("plugin", "draw")}))] == 1


def test_a_failing_reader_leaves_out_its_metric_and_not_the_scrape(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    metrics.gauge("hub_demo_broken", "Fails.", lambda: 1 / 0)
    metrics.gauge("hub_demo_fine", "Works.", lambda: 5)
    found = samples(metrics)
    assert found[("hub_demo_fine", frozenset())] == 5
    assert ("hub_demo_broken", frozenset()) not in found
    assert "reading metric hub_demo_broken failed" in caplog.text


def test_recent_errors_and_closes_are_bounded() -> None:
    metrics = Metrics()
    for n in range(RECENT_LIMIT + 5):
        metrics.error_sent("invalid", f"c{n}", "alice", "chat:lobby", "Bad data.")
        metrics.close_started(4009, f"c{n}", None, "Send queue overflow.")
    assert len(metrics.recent_errors) == len(metrics.recent_closes) == RECENT_LIMIT
    assert metrics.recent_errors[-1]["client"] == f"c{RECENT_LIMIT + 4}"
    assert metrics.recent_errors[0]["client"] == "c5"
    assert metrics.errors["invalid"] == RECENT_LIMIT + 5
    assert metrics.recent_closes[-1]["code"] == 4009


@pytest.mark.parametrize("buckets", [(), (1.0, 1.0), (2.0, 1.0)])
def test_histogram_buckets_increase(buckets: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        Metrics().histogram("hub_demo_seconds", "x", buckets)


def test_a_name_is_registered_once_and_must_be_a_prometheus_name() -> None:
    metrics = Metrics()
    metrics.gauge("hub_demo_feeds", "Feeds.", lambda: 1)
    with pytest.raises(ValueError, match="already registered"):
        metrics.histogram("hub_demo_feeds", "Feeds again.", (1.0,))
    with pytest.raises(ValueError, match="not a Prometheus metric name"):
        metrics.gauge("hub demo", "Spaces.", lambda: 1)
