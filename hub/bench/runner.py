"""One ``hub bench`` run from start to end: the client processes started, the phases driven over their pipes,
the server sampled from /proc meanwhile, and everything measured turned into a report."""

from __future__ import annotations

import multiprocessing as mp
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from multiprocessing.context import SpawnProcess
from multiprocessing.sharedctypes import SynchronizedArray
from types import TracebackType
from typing import Any

from hub.bench.client import PROGRESS_SLOTS, BenchError, WorkerSpec
from hub.bench.loadgen import worker_main
from hub.bench.procstat import ProcessGroup, Sample
from hub.bench.report import FanoutReport, IdleReport, Progress, ServerUsage, latency_summary

POLL_S = 0.1


@dataclass(frozen=True)
class FanoutConfig:
    urls: tuple[str, ...]  # subscribers (and idle connections) spread over them; the publishers on the first
    protocol: str = "hub"
    subscribers: int = 10  # 0: publish to rooms nobody follows (see ``idle``)
    rooms: int = 1
    publishers: int = 1
    size: int = 64
    rate: float = 0.0
    messages: int = 100
    duration: float = 0.0
    clients: int = 2
    timeout: float = 30.0
    drain_idle: float = 2.0
    idle: int = 0  # extra connections opened and held, in no room: what a publish costs with N open


@dataclass(frozen=True)
class IdleConfig:
    url: str
    protocol: str = "hub"
    connections: int = 100
    hold: float = 5.0
    clients: int = 2
    timeout: float = 60.0


def room_sizes(subscribers: int, rooms: int) -> list[int]:
    """Subscribers per room: subscriber k is in room k % rooms."""
    return [subscribers // rooms + (1 if r < subscribers % rooms else 0) for r in range(rooms)]


def expected_deliveries(sent_by_publisher: dict[int, int], subscribers: int, rooms: int) -> int:
    """Deliveries owed for what was sent: publisher p's message i went to room (p + i) % rooms."""
    sizes = room_sizes(subscribers, rooms)
    total = 0
    for publisher, sent in sent_by_publisher.items():
        for room, size in enumerate(sizes):
            total += size * (sent // rooms + (1 if (room - publisher) % rooms < sent % rooms else 0))
    return total


class Workers:
    """The client processes of one run, as a context manager that always ends them."""

    def __init__(self, specs: list[WorkerSpec]) -> None:
        self.ctx = mp.get_context("spawn")
        self.progress: SynchronizedArray[Any] = self.ctx.Array("q", len(specs) * PROGRESS_SLOTS, lock=False)
        self.specs = specs
        self.pipes: list[Pipe] = []
        self.processes: list[SpawnProcess] = []

    def __enter__(self) -> Workers:
        for spec in self.specs:
            parent_end, child_end = self.ctx.Pipe()
            process = self.ctx.Process(
                target=worker_main, args=(child_end, spec, self.progress), name=f"bench-client-{spec.index}"
            )
            process.daemon = True
            process.start()
            self.processes.append(process)
            self.pipes.append(parent_end)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        for pipe in self.pipes:
            try:
                pipe.send(("close", None))
            except (OSError, ValueError):
                continue
        for process in self.processes:
            process.join(timeout=15)
            if process.is_alive():
                process.terminate()
                process.join(timeout=3)
            if process.is_alive():
                process.kill()
                process.join()

    def total(self, slot: int) -> int:
        return sum(self.progress[i * PROGRESS_SLOTS + slot] for i in range(len(self.specs)))

    def broadcast(self, command: str, argument: Any = None) -> None:
        for pipe in self.pipes:
            pipe.send((command, argument))

    def gather(self, expected: str, timeout: float, progress: Progress | None = None, label: str = "") -> list[Any]:
        """One reply of kind ``expected`` from every worker, waiting at most ``timeout`` seconds in all."""
        deadline = time.monotonic() + timeout
        replies: list[Any] = [None] * len(self.pipes)
        pending = set(range(len(self.pipes)))
        while pending:
            for index in list(pending):
                if self.pipes[index].poll(POLL_S / len(self.pipes)):
                    kind, payload = self.pipes[index].recv()
                    if kind == "error":
                        raise BenchError(f"client process {index} failed: {payload}")
                    if kind != expected:
                        raise BenchError(f"client process {index} sent {kind!r}, expected {expected!r}")
                    replies[index] = payload
                    pending.discard(index)
            if progress is not None:
                progress.update(
                    label,
                    self.total(3),
                    sum(s.idle + len(s.subscribers) + len(s.publishers) for s in self.specs),
                    f"{self.total(3):,} open",
                )
            if pending and time.monotonic() > deadline:
                raise BenchError(f"client processes {sorted(pending)} did not answer {expected!r} in {timeout:.0f} s")
        return replies


def split(items: list[int], parts: int) -> list[list[int]]:
    return [items[i::parts] for i in range(parts)]


class ServerWatch:
    """Samples the server's processes (if any were given): before, during (the RSS peak), after."""

    def __init__(self, pids: list[int]) -> None:
        self.group = ProcessGroup(pids) if pids else None
        self.peak = 0
        self.before = self.sample()

    def sample(self) -> Sample | None:
        if self.group is None:
            return None
        sample = self.group.sample()
        self.peak = max(self.peak, sample.rss_bytes)
        return sample

    def usage(self, cpu_start: Sample | None, end: Sample | None) -> ServerUsage | None:
        if self.group is None or cpu_start is None or end is None or self.before is None:
            return None
        return ServerUsage(
            self.group.pids, end.cpu_s - cpu_start.cpu_s, self.before.rss_bytes, end.rss_bytes, self.peak
        )


def run_fanout(
    config: FanoutConfig, pids: list[int], progress: Progress, window: Callable[[str], None] | None = None
) -> FanoutReport:
    """Connect, join, wait for quiet, publish, wait for delivery, report. ``window("start")`` is called just
    before the first send and ``window("end")`` once delivery is over (before the sockets close), for callers
    that measure more over the same window."""
    watch = ServerWatch(pids)
    sockets = config.subscribers + config.publishers + config.idle
    clients = max(1, min(config.clients, sockets))
    subs = split(list(range(config.subscribers)), clients)
    pubs = split(list(range(config.publishers)), clients)
    idle = [len(part) for part in split(list(range(config.idle)), clients)]
    specs = [
        WorkerSpec(
            index=i,
            urls=config.urls,
            protocol=config.protocol,
            rooms=config.rooms,
            subscribers=subs[i],
            publishers=pubs[i],
            idle=idle[i],
            size=config.size,
            rate=config.rate,
            messages=config.messages,
            duration=config.duration,
            timeout=config.timeout,
        )
        for i in range(clients)
    ]
    notes: list[str] = []
    with Workers(specs) as workers:
        ready = workers.gather("ready", config.timeout + 30, progress, "connecting")
        connected = sum(r["connected"] for r in ready)
        failures = [e for r in ready for e in r["errors"]]
        if connected != sockets:
            raise BenchError(f"only {connected} of {sockets} sockets connected and joined: " + "; ".join(failures[:5]))
        progress.update("waiting", 0, None, f"{connected:,} sockets joined; waiting for the server to go quiet")
        workers.broadcast("quiet", (0.5, 20.0))
        workers.gather("quiet", 30)
        if window is not None:
            window("start")
        cpu_start = watch.sample()
        workers.broadcast("go", time.time() + 0.1)
        planned = (
            expected_deliveries(
                {p: config.messages for p in range(config.publishers)}, config.subscribers, config.rooms
            )
            if config.messages
            else None
        )
        started = time.monotonic()
        last_change, last_seen = started, (-1, -1)
        while True:
            time.sleep(POLL_S)
            watch.sample()
            received, sent, done = workers.total(0), workers.total(1), workers.total(2)
            now = time.monotonic()
            if (received, sent) != last_seen:
                last_seen, last_change = (received, sent), now
            if planned is not None:
                progress.update("publishing", received, planned, f"{received:,}/{planned:,} deliveries")
            else:
                progress.update(
                    "publishing", now - started, config.duration + config.drain_idle, f"{received:,} deliveries"
                )
            if done >= config.publishers:
                owed = planned if planned is not None else sent * config.subscribers // config.rooms
                if not config.subscribers:  # nothing to deliver: done once every reply is in
                    break
                if received >= owed or now - last_change > config.drain_idle:
                    break
            if now - last_change > config.timeout:
                notes.append(f"no progress for {config.timeout:g} s: stopped waiting")
                break
        progress.update("finishing", 0, None, "collecting the client processes' measurements")
        workers.broadcast("finish")
        results = workers.gather("result", config.timeout + 30)
        progress.done()
        end = watch.sample()
        if window is not None:
            window("end")
    sent_by_publisher: dict[int, int] = {p: 0 for p in range(config.publishers)}
    latencies = array("d")
    by_url: dict[int, array[float]] = {}
    errors: dict[str, int] = {}
    closes: dict[str, int] = {}
    for result in results:
        sent_by_publisher.update(result["sent_by_publisher"])
        for index, values in result["latencies"].items():
            latencies.frombytes(values)
            by_url.setdefault(index, array("d")).frombytes(values)
        for key, value in result["errors"].items():
            errors[key] = errors.get(key, 0) + value
        for key, value in result["closes"].items():
            closes[key] = closes.get(key, 0) + value
    deliveries = sum(r["received"] for r in results)
    unique = sum(r["unique"] for r in results)
    expected = expected_deliveries(sent_by_publisher, config.subscribers, config.rooms)
    first_send = min((r["first_send_ns"] for r in results if r["first_send_ns"]), default=0)
    last_recv = max((r["last_recv_ns"] for r in results), default=0)
    last_send = max((r["last_send_ns"] for r in results), default=0)
    elapsed = (last_recv - first_send) / 1e9 if deliveries and first_send else float("nan")
    p50, p99, peak_latency = latency_summary(latencies)
    server = watch.usage(cpu_start, end)
    sent = sum(sent_by_publisher.values())
    if errors:
        notes.append(f"error replies: {errors}; rate_limited means the server's limits must be lifted")
    for reason, count in closes.items():
        meaning = {"4008": " (rate abuse)", "4009": " (slow consumer: send queue overflowed)"}.get(reason[:4], "")
        notes.append(f"{count} sockets closed by the server: {reason}{meaning}")
    if expected - unique:
        notes.append(f"{expected - unique:,} deliveries lost")
    return FanoutReport(
        protocol=config.protocol,
        url=", ".join(config.urls),
        subscribers=config.subscribers,
        rooms=config.rooms,
        publishers=config.publishers,
        size=config.size,
        rate=config.rate,
        messages=config.messages,
        duration=config.duration,
        clients=clients,
        sent=sent,
        replies=sum(r["replies"] for r in results),
        deliveries=deliveries,
        expected=expected,
        elapsed_s=elapsed,
        send_s=(last_send - first_send) / 1e9 if first_send else float("nan"),
        deliveries_per_s=deliveries / elapsed if deliveries and elapsed > 0 else 0.0,
        p50_ms=p50,
        p99_ms=p99,
        max_ms=peak_latency,
        loss=expected - unique,
        duplicates=sum(r["duplicates"] for r in results),
        order_violations=sum(r["order_violations"] for r in results),
        errors=errors,
        closes=closes,
        client_cpu_s=sum(r["client_cpu_s"] for r in results),
        server=server,
        server_cpu_us_per_delivery=server.cpu_s / deliveries * 1e6 if server and deliveries else None,
        idle=config.idle,
        server_cpu_us_per_publish=server.cpu_s / sent * 1e6 if server and sent else None,
        latency_by_url={
            config.urls[index]: {
                "deliveries": float(len(values)),
                **dict(zip(("p50_ms", "p99_ms", "max_ms"), latency_summary(values), strict=True)),
            }
            for index, values in sorted(by_url.items())
        }
        if len(config.urls) > 1
        else {},
        notes=notes,
    )


def run_idle(config: IdleConfig, pids: list[int], progress: Progress) -> IdleReport:
    watch = ServerWatch(pids)
    clients = max(1, min(config.clients, config.connections))
    shares = [len(part) for part in split(list(range(config.connections)), clients)]
    specs = [
        WorkerSpec(
            index=i, urls=(config.url,), protocol=config.protocol, rooms=1, idle=shares[i], timeout=config.timeout
        )
        for i in range(clients)
    ]
    notes: list[str] = []
    with Workers(specs) as workers:
        ready = workers.gather("ready", config.timeout + 30, progress, "connecting")
        progress.done()
        opened = sum(r["connected"] for r in ready)
        failures = [e for r in ready for e in r["errors"]]
        if failures:
            notes.append(f"{config.connections - opened} connections failed: " + "; ".join(failures[:3]))
        connect_s = max(r["ended"] for r in ready) - min(r["started"] for r in ready)
        start = watch.sample()
        held_from = time.monotonic()
        while (held := time.monotonic() - held_from) < config.hold:
            time.sleep(min(POLL_S * 2, max(0.0, config.hold - held)))
            watch.sample()
            progress.update("holding", held, config.hold, f"{workers.total(3):,} open")
        with_open = watch.sample()
        progress.update("finishing", 0, None, "collecting the client processes' measurements")
        workers.broadcast("finish")
        results = workers.gather("result", config.timeout + 30)
        progress.done()
    closes: dict[str, int] = {}
    for result in results:
        for key, value in result["closes"].items():
            closes[key] = closes.get(key, 0) + value
    for reason, count in closes.items():
        notes.append(f"{count} connections closed by the server: {reason}")
    server = watch.usage(start, with_open)
    rss_open = with_open.rss_bytes if with_open else None
    before = watch.before.rss_bytes if watch.before else None
    return IdleReport(
        protocol=config.protocol,
        url=config.url,
        connections=config.connections,
        opened=opened,
        still_open=sum(r["open"] for r in results),
        clients=clients,
        connect_s=connect_s,
        connects_per_s=opened / connect_s if connect_s > 0 else 0.0,
        hold_s=config.hold,
        pings=sum(r["pings"] for r in results),
        closes=closes,
        server=server,
        rss_with_open=rss_open,
        rss_per_connection=(rss_open - before) / opened
        if rss_open is not None and before is not None and opened
        else None,
        notes=notes,
    )
