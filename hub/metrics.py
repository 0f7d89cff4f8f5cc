"""Metrics: the node's counters, gauges and histograms, and their exposition at /metrics through prometheus_client.

The hot path only adds to plain attributes (``metrics.frames_received += 1``, ``histogram.observe(x)``: a bisect
and two adds); a custom collector (prometheus_client's Collector API) reads them when /metrics is scraped.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import re
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, TypedDict

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("hub.metrics")

NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
RECENT_LIMIT = 100  # entries kept in recent_errors and recent_closes

# Bucket upper bounds (+Inf is added). Seconds for times, characters for frames, subscribers for fan-out.
PUBLISH_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BROKER_ROUND_TRIP_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
FANOUT_BUCKETS = (1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 10000.0)
FRAME_BUCKETS = (64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0)


class RecentError(TypedDict):
    """An ``err`` frame the node sent (``Metrics.recent_errors``)."""

    at: float  # unix time
    code: str
    client: str  # the connection's client id
    user: str | None
    channel: str | None  # the request's channel, when it named one
    msg: str


class RecentClose(TypedDict):
    """A connection the node closed (``Metrics.recent_closes``): slow consumer, rate abuse, shutdown, ..."""

    at: float  # unix time
    code: int
    client: str
    user: str | None
    reason: str


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

    def observe_many(self, value: float, times: int) -> None:
        """``times`` observations of one value (an event's frame, once per subscriber it went to)."""
        self.counts[bisect.bisect_left(self.bounds, value)] += times
        self.count += times
        self.sum += value * times

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative counts by upper bound, as prometheus_client's HistogramMetricFamily takes them."""
        cumulative = itertools.accumulate(self.counts)
        bounds = (*self.bounds, math.inf)
        return [(_bound(bound), float(total)) for bound, total in zip(bounds, cumulative, strict=True)]

    def add(self, other: Histogram) -> None:
        """Add another histogram's observations (same buckets) to this one."""
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.count += other.count
        self.sum += other.sum


class Workers(Protocol):
    """The other workers' metrics under ``hub serve --workers N`` (:class:`hub.worker_metrics.WorkerMetrics`)."""

    pid: int  # this worker's

    async def start(self, metrics: Metrics) -> None: ...

    async def stop(self) -> None: ...

    def merged(self, metrics: Metrics) -> Iterable[Metric]: ...


def plugin_of(message_type: str) -> str:
    """The plugin a message or event type belongs to: the part before the dot ("chat.send" -> "chat")."""
    return message_type.partition(".")[0]


class Metrics:
    """One node's metrics: plain counters bumped on the hot path (an int add each), histograms observed as things
    happen, gauges and plugins' counters read when scraped. ``render()`` is the /metrics body."""

    def __init__(self) -> None:
        self.connections_opened = 0
        self.frames_received = 0
        self.events_published = 0
        self.conflated = 0  # events of conflating channels replaced in a send queue by a newer one
        self.errors: Counter[str] = Counter()  # err frames by code
        self.closes: Counter[int] = Counter()  # server-initiated closes by code
        self.messages_in: Counter[str] = Counter()  # pub frames by message type ("chat.send"), a known type only
        self.events_out: Counter[str] = Counter()  # events published from this node by type ("chat.posted")
        self.recent_errors: deque[RecentError] = deque(maxlen=RECENT_LIMIT)
        self.recent_closes: deque[RecentClose] = deque(maxlen=RECENT_LIMIT)
        # message type -> frame received to ok queued, for the pub frames that succeeded
        self.publish_latency: dict[str, Histogram] = {}
        self.broker_round_trip = Histogram(BROKER_ROUND_TRIP_BUCKETS)  # Runtime.publish's call to the broker
        self.fanout_size = Histogram(FANOUT_BUCKETS)  # local subscribers per event delivered
        self.frames_in = Histogram(FRAME_BUCKETS)  # text frames received, in characters
        self.frames_out = Histogram(FRAME_BUCKETS)  # frames queued for clients, in characters
        self._gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        self._counters: dict[str, tuple[str, Callable[[], float]]] = {}
        self._histograms: dict[str, tuple[str, Histogram]] = {}
        self.workers: Workers | None = None  # under `hub serve --workers N`: the other workers' metrics
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Exposition(self))
        # The process's own collectors, read by the exposition (per worker under --workers), not registered.
        self._process: tuple[Collector, ...] = (
            ProcessCollector(registry=None),
            GCCollector(registry=CollectorRegistry(auto_describe=False)),
        )
        self._platform = PlatformCollector(registry=None)

    # ---- registration (plugins, through hub.PluginMetrics) -----------------------------------------------

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

    # ---- recording (the core, off the hot path or one call on it) -----------------------------------------

    def error_sent(self, code: str, client: str, user: str | None, channel: str | None, msg: str) -> None:
        """An ``err`` frame went to a client: counted by code, and kept among the recent ones."""
        self.errors[code] += 1
        self.recent_errors.append(
            {"at": time.time(), "code": code, "client": client, "user": user, "channel": channel, "msg": msg}
        )

    def close_started(self, code: int, client: str, user: str | None, reason: str) -> None:
        """The node began closing a connection (``hub_closes_total`` counts it once the connection has ended)."""
        self.recent_closes.append({"at": time.time(), "code": code, "client": client, "user": user, "reason": reason})

    def publish_done(self, message_type: str, received: float) -> None:
        """A pub frame of a known type got its ``ok``: the time since its frame arrived (``time.monotonic()``)."""
        histogram = self.publish_latency.get(message_type)
        if histogram is None:
            histogram = self.publish_latency[message_type] = Histogram(PUBLISH_LATENCY_BUCKETS)
        histogram.observe(time.monotonic() - received)

    # ---- exposition --------------------------------------------------------------------------------------

    def render(self) -> str:
        """The /metrics body in the Prometheus text format (``CONTENT_TYPE``)."""
        return generate_latest(self.registry).decode()

    def families(self) -> Iterator[Metric]:
        """This process's hub metrics (the core's and the plugins'), read now."""
        yield _counter("hub_connections_opened", "WebSocket connections accepted.", self.connections_opened)
        yield _counter("hub_frames_received", "Frames received from clients.", self.frames_received)
        yield _counter("hub_events_published", "Events published from this node.", self.events_published)
        yield _counter(
            "hub_conflated_events",
            "Events of conflating channels a slow client never got: a newer one took their place in its send queue.",
            self.conflated,
        )
        errors = CounterMetricFamily("hub_errors", "err frames sent, by code.", labels=("code",))
        for code, count in sorted(self.errors.items()):
            errors.add_metric((code,), count)
        yield errors
        closes = CounterMetricFamily("hub_closes", "Connections closed by the server, by close code.", labels=("code",))
        for close_code, count in sorted(self.closes.items()):
            closes.add_metric((str(close_code),), count)
        yield closes
        yield _by_type("hub_messages_in", "pub frames received, by plugin and message type.", self.messages_in)
        yield _by_type("hub_events_out", "Events published from this node, by plugin and event type.", self.events_out)
        latency = HistogramMetricFamily(
            "hub_publish_latency_seconds",
            "Seconds from a pub frame's arrival to its ok being queued, by plugin (pub frames that succeeded).",
            labels=("plugin",),
        )
        for plugin, histogram in _by_plugin(self.publish_latency):
            latency.add_metric((plugin,), histogram.buckets(), histogram.sum)
        yield latency
        yield _histogram(
            "hub_broker_publish_seconds",
            "Seconds the broker's publish call took (the round trip to Redis with a Redis broker).",
            self.broker_round_trip,
        )
        yield _histogram(
            "hub_fanout_subscribers", "Subscribers on this node each delivered event went to.", self.fanout_size
        )
        yield _histogram(
            "hub_frame_received_chars", "Sizes of the text frames received, in characters.", self.frames_in
        )
        yield _histogram(
            "hub_frame_sent_chars", "Sizes of the frames queued for clients, in characters.", self.frames_out
        )
        for name, (help_text, read) in sorted(self._counters.items()):
            value = _read(name, read)
            if value is not None:
                yield _counter(name, help_text, value)
        for name, (help_text, read) in sorted(self._gauges.items()):
            value = _read(name, read)
            if value is not None:
                yield GaugeMetricFamily(name, help_text, value=value)
        for name, (help_text, histogram) in sorted(self._histograms.items()):
            yield _histogram(name, help_text, histogram)

    def process_families(self) -> Iterator[Metric]:
        """This process's own metrics: CPU, memory, file descriptors, start time (``process_*``) and the
        garbage collector (``python_gc_*``)."""
        for collector in self._process:
            yield from collector.collect()

    def platform_families(self) -> Iterator[Metric]:
        """``python_info``: the same in every worker."""
        yield from self._platform.collect()

    async def start(self) -> None:
        """Start sharing this worker's metrics with the others (under ``--workers``; else nothing to do)."""
        if self.workers is not None:
            await self.workers.start(self)

    async def stop(self) -> None:
        if self.workers is not None:
            await self.workers.stop()


class _Exposition(Collector):
    """The collector /metrics reads: this process's metrics, merged with the other workers' under ``--workers``."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        metrics = self._metrics
        if metrics.workers is not None:
            return metrics.workers.merged(metrics)
        return itertools.chain(
            metrics.families(), (workers_gauge(1),), metrics.process_families(), metrics.platform_families()
        )


def workers_gauge(count: int) -> GaugeMetricFamily:
    return GaugeMetricFamily("hub_workers", "Processes this answer adds up (hub serve --workers; else 1).", count)


def _bound(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(bound)


def _read(name: str, read: Callable[[], float]) -> float | None:
    try:
        return float(read())
    except Exception:  # a plugin's reader failed: the scrape goes on without that metric (scrape boundary)
        log.exception("reading metric %s failed", name)
        return None


def _counter(name: str, help_text: str, value: float) -> CounterMetricFamily:
    # prometheus_client adds the _total suffix back (and would refuse a counter named without it in the text)
    return CounterMetricFamily(name.removesuffix("_total"), help_text, value=value)


def _histogram(name: str, help_text: str, histogram: Histogram) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, help_text, buckets=histogram.buckets(), sum_value=histogram.sum)


def _by_type(name: str, help_text: str, counts: Counter[str]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, help_text, labels=("plugin", "type"))
    for message_type, count in sorted(counts.items()):
        family.add_metric((plugin_of(message_type), message_type), count)
    return family


def _by_plugin(histograms: dict[str, Histogram]) -> list[tuple[str, Histogram]]:
    """Histograms keyed by message type, added up per plugin."""
    merged: dict[str, Histogram] = {}
    for message_type, histogram in sorted(histograms.items()):
        plugin = plugin_of(message_type)
        total = merged.get(plugin)
        if total is None:
            total = merged[plugin] = Histogram(PUBLISH_LATENCY_BUCKETS)
        total.add(histogram)
    return sorted(merged.items())
