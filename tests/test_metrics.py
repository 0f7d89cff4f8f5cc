"""Metrics rendering: the core's counters and what plugins add (counters and gauges)."""

from __future__ import annotations

import pytest

from hub.metrics import Metrics


def test_plugin_counters_and_gauges_render_with_their_types() -> None:
    metrics = Metrics()
    ticks = [0]
    metrics.counter("hub_demo_ticks_total", "Ticks.", lambda: ticks[0])
    metrics.gauge("hub_demo_feeds", "Feeds.", lambda: 2)
    ticks[0] = 41
    metrics.conflated = 7
    lines = metrics.render().splitlines()
    assert "# TYPE hub_demo_ticks_total counter" in lines
    assert "hub_demo_ticks_total 41" in lines
    assert "# TYPE hub_demo_feeds gauge" in lines
    assert "hub_demo_feeds 2" in lines
    assert "hub_conflated_events_total 7" in lines


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
        'hub_demo_latency_seconds_bucket{le="0.01"} 2',  # an observation on a bound is counted in it
        'hub_demo_latency_seconds_bucket{le="0.1"} 3',
        'hub_demo_latency_seconds_bucket{le="1"} 4',
        'hub_demo_latency_seconds_bucket{le="+Inf"} 5',
        "hub_demo_latency_seconds_sum 3.565",
        "hub_demo_latency_seconds_count 5",
    ]


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
