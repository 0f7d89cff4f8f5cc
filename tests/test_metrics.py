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
