"""Metrics: the node's counters and gauges, rendered in the Prometheus text format at /metrics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable


class Metrics:
    """Plain counters bumped on the hot path (an int add each); gauges are read when scraped."""

    def __init__(self) -> None:
        self.connections_opened = 0
        self.frames_received = 0
        self.events_published = 0
        self.conflated = 0  # events of conflating channels replaced in a send queue by a newer one
        self.errors: Counter[str] = Counter()  # err frames by code
        self.closes: Counter[int] = Counter()  # server-initiated closes by code
        self._gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        self._counters: dict[str, tuple[str, Callable[[], float]]] = {}

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """A value that goes up and down (open feeds), read when /metrics is scraped."""
        self._gauges[name] = (help_text, read)

    def counter(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """A count that only grows while the process runs (ticks published), read when /metrics is scraped;
        by Prometheus convention its name ends in ``_total``."""
        if not name.endswith("_total"):
            raise ValueError(f"counter {name!r} must end in '_total'")
        self._counters[name] = (help_text, read)

    def render(self) -> str:
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(f"{name}{labels} {value:g}" for labels, value in samples)

        metric(
            "hub_connections_opened_total",
            "counter",
            "WebSocket connections accepted.",
            [("", self.connections_opened)],
        )
        metric("hub_frames_received_total", "counter", "Frames received from clients.", [("", self.frames_received)])
        metric(
            "hub_events_published_total", "counter", "Events published from this node.", [("", self.events_published)]
        )
        metric(
            "hub_conflated_events_total",
            "counter",
            "Events of conflating channels a slow client never got: a newer one took their place in its send queue.",
            [("", self.conflated)],
        )
        metric(
            "hub_errors_total",
            "counter",
            "err frames sent, by code.",
            [(f'{{code="{code}"}}', count) for code, count in sorted(self.errors.items())],
        )
        metric(
            "hub_closes_total",
            "counter",
            "Connections closed by the server, by close code.",
            [(f'{{code="{code}"}}', count) for code, count in sorted(self.closes.items())],
        )
        for name, (help_text, read) in sorted(self._counters.items()):
            metric(name, "counter", help_text, [("", read())])
        for name, (help_text, read) in sorted(self._gauges.items()):
            metric(name, "gauge", help_text, [("", read())])
        return "\n".join(lines) + "\n"
