"""Metrics: the node's counters and gauges, rendered in the Prometheus text format at /metrics."""

from __future__ import annotations

import bisect
import itertools
import math
import re
from collections import Counter
from collections.abc import Callable

NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


class Histogram:
    """Observations counted into buckets (upper bounds, increasing; ``+Inf`` added), with their sum."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, buckets: tuple[float, ...]) -> None:
        if not buckets or any(b >= c for b, c in itertools.pairwise(buckets)):
            raise ValueError("histogram buckets must be a non-empty, strictly increasing tuple")
        self.bounds = tuple(float(b) for b in buckets if not math.isinf(b))
        self.counts = [0] * (len(self.bounds) + 1)  # the last: above every bound
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value

    def samples(self, name: str) -> list[tuple[str, float]]:
        """The Prometheus samples: cumulative ``_bucket`` lines, then ``_sum`` and ``_count``."""
        lines: list[tuple[str, float]] = []
        total = 0
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            total += count
            le = "+Inf" if math.isinf(bound) else f"{bound:g}"
            lines.append((f'{name}_bucket{{le="{le}"}}', total))
        return [*lines, (f"{name}_sum", self.sum), (f"{name}_count", self.count)]


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
        self._histograms: dict[str, tuple[str, Histogram]] = {}

    def _check_name(self, name: str) -> None:
        if not NAME_RE.fullmatch(name):
            raise ValueError(f"{name!r} is not a Prometheus metric name")
        if name in self._gauges or name in self._counters or name in self._histograms:
            raise ValueError(f"metric {name!r} is already registered on this hub")

    def histogram(self, name: str, help_text: str, buckets: tuple[float, ...]) -> Histogram:
        """A distribution observed as things happen (``.observe(value)``), rendered with cumulative buckets."""
        self._check_name(name)
        histogram = Histogram(buckets)
        self._histograms[name] = (help_text, histogram)
        return histogram

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """A value that goes up and down (open feeds), read when /metrics is scraped."""
        self._check_name(name)
        self._gauges[name] = (help_text, read)

    def counter(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """A count that only grows while the process runs (ticks published), read when /metrics is scraped;
        by Prometheus convention its name ends in ``_total``."""
        if not name.endswith("_total"):
            raise ValueError(f"counter {name!r} must end in '_total'")
        self._check_name(name)
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
        for name, (help_text, histogram) in sorted(self._histograms.items()):
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} histogram")
            lines.extend(f"{sample} {value:g}" for sample, value in histogram.samples(name))
        return "\n".join(lines) + "\n"
