"""The numbers ``hub bench`` reports: statistics over the deliveries, the table at the end, the JSON, and the
progress bar on stderr while it runs."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (NaN when it is empty)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 100))))
    return float(sorted_values[rank - 1])


def latency_summary(latencies: array[float]) -> tuple[float, float, float]:
    """p50, p99 and max of the latencies (ms)."""
    ordered = sorted(latencies)
    return percentile(ordered, 50), percentile(ordered, 99), (ordered[-1] if ordered else float("nan"))


@dataclass(frozen=True)
class ServerUsage:
    """The server processes' CPU seconds over the measurement and their RSS before, after and at the peak."""

    pids: list[int]
    cpu_s: float
    rss_before: int
    rss_after: int
    rss_peak: int


@dataclass(frozen=True)
class FanoutReport:
    """One publish/subscribe run."""

    protocol: str
    url: str
    subscribers: int
    rooms: int
    publishers: int
    size: int
    rate: float
    messages: int
    duration: float
    clients: int
    sent: int
    replies: int
    deliveries: int
    expected: int
    elapsed_s: float  # first send to last receive
    send_s: float  # first send to last send
    deliveries_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    loss: int
    duplicates: int
    order_violations: int
    errors: dict[str, int]
    closes: dict[str, int]
    client_cpu_s: float
    server: ServerUsage | None
    server_cpu_us_per_delivery: float | None
    idle: int = 0  # extra idle connections held open during the run
    server_cpu_us_per_publish: float | None = None  # server CPU / messages sent (with no subscriber: the cost of one)
    latency_by_url: dict[str, dict[str, float]] = field(default_factory=dict)  # with several URLs only
    settings_changed: dict[str, str] | None = None  # --spawn: the environment the hub was started with
    server_command: str | None = None  # --spawn: how it was started
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class IdleReport:
    """One ``--idle`` run: N connections opened, held with heartbeats answered, closed."""

    protocol: str
    url: str
    connections: int
    opened: int
    still_open: int
    clients: int
    connect_s: float
    connects_per_s: float
    hold_s: float
    pings: int
    closes: dict[str, int]
    server: ServerUsage | None
    rss_with_open: int | None
    rss_per_connection: float | None
    settings_changed: dict[str, str] | None = None  # --spawn: the environment the hub was started with
    server_command: str | None = None  # --spawn: how it was started
    notes: list[str] = field(default_factory=list)


Report = FanoutReport | IdleReport


def _finite(value: object) -> object:
    """NaN (a run without deliveries has no latency) is not JSON: null instead."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def to_json(report: Report) -> str:
    document = {"mode": "idle" if isinstance(report, IdleReport) else "fanout", **dataclasses.asdict(report)}
    return json.dumps(_finite(document), indent=2)


def _kib(value: int | float | None) -> str:
    return "-" if value is None else f"{value / 1024:,.0f} KiB"


def _server_rows(server: ServerUsage | None) -> list[tuple[str, str]]:
    if server is None:
        return [("server CPU / RSS", "not measured (give --pid, or use --spawn)")]
    return [
        ("server PIDs", ", ".join(map(str, server.pids))),
        ("server CPU s", f"{server.cpu_s:.2f}"),
        (
            "server RSS before / after / peak",
            f"{_kib(server.rss_before)} / {_kib(server.rss_after)} / {_kib(server.rss_peak)}",
        ),
    ]


def _tail_rows(command: str | None, settings: dict[str, str] | None, notes: list[str]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if command:
        rows.append(("spawned", command))
    if settings is not None:
        rows.append(("settings changed", " ".join(f"{k}={v}" for k, v in settings.items())))
    rows.extend(("PROBLEM", note) for note in notes)
    return rows


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{key}: {value}" for key, value in counts.items()) or "none"


def rows(report: Report) -> list[tuple[str, str]]:
    if isinstance(report, IdleReport):
        out = [
            (
                "mode",
                f"idle: {report.connections} connections ({report.protocol}) to {report.url}, "
                f"{report.clients} client processes",
            ),
            ("opened / still open after hold", f"{report.opened:,} / {report.still_open:,}"),
            ("connect time s", f"{report.connect_s:.2f}"),
            ("connects/s", f"{report.connects_per_s:,.0f}"),
            ("held s (heartbeats answered)", f"{report.hold_s:.1f} ({report.pings:,} pings)"),
            ("closed by the server", _counts(report.closes)),
            *_server_rows(report.server),
            ("server RSS with all open", _kib(report.rss_with_open)),
            (
                "server RSS per connection",
                "-" if report.rss_per_connection is None else f"{report.rss_per_connection / 1024:.1f} KiB",
            ),
        ]
        return out + _tail_rows(report.server_command, report.settings_changed, report.notes)
    pace = "flood (each send waits for its reply)" if report.rate == 0 else f"{report.rate:g} msg/s per publisher"
    amount = f"{report.messages} messages each" if report.messages else f"for {report.duration:g} s"
    out = [
        (
            "load",
            f"{report.subscribers} subscribers over {report.rooms} rooms"
            + (f" (+{report.idle:,} idle connections)" if report.idle else "")
            + f", {report.publishers} publishers "
            f"{amount}, {pace}, {report.size} B text, {report.protocol} at {report.url}, {report.clients} client "
            "processes",
        ),
        ("messages sent / replies", f"{report.sent:,} / {report.replies:,} in {report.send_s:.2f} s"),
        ("deliveries / expected", f"{report.deliveries:,} / {report.expected:,}"),
        ("deliveries/s", f"{report.deliveries_per_s:,.0f}"),
        ("latency p50 / p99 / max ms", f"{report.p50_ms:.2f} / {report.p99_ms:.2f} / {report.max_ms:.2f}"),
        (
            "loss / duplicates / order violations",
            f"{report.loss:,} / {report.duplicates:,} / {report.order_violations:,}",
        ),
        *(
            (f"latency on {url} p50 / p99 / max ms", f"{v['p50_ms']:.2f} / {v['p99_ms']:.2f} / {v['max_ms']:.2f}")
            for url, v in report.latency_by_url.items()
        ),
        ("error replies", _counts(report.errors)),
        ("closed by the server", _counts(report.closes)),
        *_server_rows(report.server),
        (
            "server CPU µs/delivery",
            "-" if report.server_cpu_us_per_delivery is None else f"{report.server_cpu_us_per_delivery:.1f}",
        ),
        (
            "server CPU µs/publish",
            "-" if report.server_cpu_us_per_publish is None else f"{report.server_cpu_us_per_publish:.1f}",
        ),
        ("client CPU s", f"{report.client_cpu_s:.2f}"),
    ]
    return out + _tail_rows(report.server_command, report.settings_changed, report.notes)


def problems(report: Report) -> list[str]:
    """What makes a run a failed measurement: loss, duplicates, order violations, error replies, sockets the
    server closed, connections that failed or did not stay open. Empty for a clean run."""
    found: list[str] = []
    if isinstance(report, IdleReport):
        if report.opened < report.connections:
            found.append(f"{report.connections - report.opened:,} of {report.connections:,} connections failed")
        if report.still_open < report.opened:
            found.append(f"{report.opened - report.still_open:,} connections did not stay open")
    else:
        for name, count in (
            ("deliveries lost", report.loss),
            ("duplicates", report.duplicates),
            ("order violations", report.order_violations),
        ):
            if count:
                found.append(f"{count:,} {name}")
        if report.errors:
            found.append(f"error replies: {_counts(report.errors)}")
        if report.replies < report.sent:
            found.append(f"{report.sent - report.replies:,} of {report.sent:,} sends got no reply")
    if report.closes:
        found.append(f"closed by the server: {_counts(report.closes)}")
    return found


def table(report: Report) -> str:
    pairs = rows(report)
    width = max(len(name) for name, _value in pairs)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in pairs)


class Progress:
    """A one-line progress bar on stderr, redrawn with ``\\r``; nothing when stderr is not a terminal unless
    ``force``."""

    def __init__(self, stream: TextIO | None = None, width: int = 30, force: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.enabled = force or self.stream.isatty()
        self.drawn = False

    def update(self, label: str, done: float, total: float | None, detail: str = "") -> None:
        if not self.enabled:
            return
        if total:
            fraction = min(1.0, done / total)
            filled = int(fraction * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            text = f"\r{label} [{bar}] {fraction * 100:5.1f}% {detail}"
        else:
            text = f"\r{label} {detail}"
        self.stream.write(text.ljust(100)[:120])
        self.stream.flush()
        self.drawn = True

    def done(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False
