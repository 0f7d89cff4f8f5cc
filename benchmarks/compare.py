#!/usr/bin/env python3
"""The hub against its peers (issue 7): the same workloads, every server started fresh, one report.

    .venv/bin/python benchmarks/compare.py [--workloads W1,W2,W3,W1p,W4,W5,scale]
        [--servers hub,ws,fastapi,socketio,channels] [--runs 3] [--scale F] [--loop asyncio|uvloop]
        [--json-file F] [--markdown] [--chart PNG]

For every run, workload and server (in that order, so a shared machine's drift spreads over all servers) the
server is started on a free 127.0.0.1 port, waited for, loaded by ``hub bench``'s load generator
(hub.bench.runner, with the server's PIDs, so CPU and RSS come from /proc), and stopped. The hub is
``hub serve --plugins chat`` with the rate limits lifted; the peers are benchmarks/peers/ (run.py, on their
own venv). Workloads (message counts times --scale):

  W1     1 room x 200 subscribers, 1 publisher, 2,000 messages, flood
  W2     1 room x 1,000 subscribers, 300 messages, flood
  W3     100 rooms x 10 subscribers, 10 publishers x 300 messages, flood
  W1p    W1 paced at 20 msg/s, 200 messages: latency
  W4     3,000 and 10,000 idle connections (--idle-counts) held --hold s: RSS per connection, connects/s
  W5     two server processes on one private redis-server, W1's subscribers split between them, the publisher
         on the first: CPU per delivery on each node, Redis commands per published event (hub; channels-redis)
  scale  hub only: S10 / S1000 subscribers in one room, R1000 = 1,000 rooms x 10, U10 / U10000 = a room nobody
         follows with 10 / 10,000 idle connections open (CPU per publish)

Prints a table (median and min-max of the runs), the targets of issue 7 as ratios with MET / NOT MET, and
PROBLEM lines. Exits 0 if every run completed, 1 if one failed (it is shown as FAILED and the rest goes on).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import (
    HUB_ENV,
    ROOT,
    Processes,
    cell,
    hub_revision,
    machine,
    redis_commandstats,
    redis_version,
    start_hub,
    start_redis,
    wait_ready,
)

from hub.bench.client import BenchError
from hub.bench.procstat import ProcessGroup
from hub.bench.report import FanoutReport, IdleReport, Progress, problems
from hub.bench.runner import FanoutConfig, IdleConfig, run_fanout, run_idle
from hub.bench.server import tail

PEERS_DIR = ROOT / "benchmarks" / "peers"
PEERS_PYTHON = PEERS_DIR / ".venv" / "bin" / "python"
SERVERS = ("hub", "ws", "fastapi", "socketio", "channels")
WORKLOADS = ("W1", "W2", "W3", "W1p", "W4", "W5", "scale")
LOOPS = ("asyncio", "uvloop")
PUBLISH_COMMANDS = ("publish", "spublish", "evalsha", "eval", "fcall")
KIB, MIB = 1024, 1024 * 1024


class RunTimeout(Exception):
    """One (run, workload, server) took longer than --run-timeout."""


@dataclass(frozen=True)
class Load:
    """One measured load. ``kind`` "fanout": publishers flood or pace rooms of subscribers (and ``idle`` extra
    idle connections); "idle": ``idle`` connections opened and held."""

    name: str
    workload: str  # the --workloads name it belongs to
    description: str
    kind: str = "fanout"
    subscribers: int = 0
    rooms: int = 1
    publishers: int = 1
    messages: int = 0  # per publisher
    rate: float = 0.0
    idle: int = 0
    nodes: int = 1
    servers: tuple[str, ...] = SERVERS
    messages_for: tuple[tuple[str, int], ...] = ()  # per-server message counts that differ from ``messages``

    def count(self, server: str) -> int:
        return dict(self.messages_for).get(server, self.messages)


def idle_label(count: int) -> str:
    return f"W4-{count // 1000}k" if count % 1000 == 0 else f"W4-{count}"


def plan(workloads: list[str], scale: float, idle_counts: list[int]) -> list[Load]:
    def n(count: int) -> int:
        return max(1, round(count * scale))

    loads: dict[str, list[Load]] = {
        "W1": [
            Load(
                "W1",
                "W1",
                f"1 room x 200 subscribers, 1 publisher x {n(2000):,} messages, flood",
                subscribers=200,
                messages=n(2000),
            )
        ],
        "W2": [
            Load(
                "W2",
                "W2",
                f"1 room x 1,000 subscribers, 1 publisher x {n(300):,} messages, flood",
                subscribers=1000,
                messages=n(300),
            )
        ],
        "W3": [
            Load(
                "W3",
                "W3",
                f"100 rooms x 10 subscribers, 10 publishers x {n(300):,} messages (round-robin over the rooms), flood",
                subscribers=1000,
                rooms=100,
                publishers=10,
                messages=n(300),
            )
        ],
        "W1p": [
            Load(
                "W1p",
                "W1p",
                f"W1 paced: 200 subscribers, {n(200):,} messages at 20 msg/s",
                subscribers=200,
                messages=n(200),
                rate=20.0,
            )
        ],
        "W4": [
            Load(idle_label(count), "W4", f"{count:,} idle connections, held", kind="idle", idle=count)
            for count in idle_counts
        ],
        "W5": [
            Load(
                "W5",
                "W5",
                f"2 processes on one Redis, 200 subscribers split between them, publisher on the first; "
                f"hub {n(2000):,} messages, channels-redis {n(300):,}",
                subscribers=200,
                messages=n(2000),
                nodes=2,
                servers=("hub", "channels"),
                messages_for=(("channels", n(300)),),
            )
        ],
        "scale": [
            Load(
                "S10",
                "scale",
                f"1 room x 10 subscribers, {n(2000):,} messages (also R1)",
                subscribers=10,
                messages=n(2000),
                servers=("hub",),
            ),
            Load(
                "S1000",
                "scale",
                f"1 room x 1,000 subscribers, {n(300):,} messages",
                subscribers=1000,
                messages=n(300),
                servers=("hub",),
            ),
            Load(
                "R1000",
                "scale",
                f"1,000 rooms x 10 subscribers, {n(2000):,} messages round-robin",
                subscribers=10_000,
                rooms=1000,
                messages=n(2000),
                servers=("hub",),
            ),
            Load(
                "U10",
                "scale",
                f"a room nobody follows, 10 idle connections, {n(2000):,} messages",
                messages=n(2000),
                idle=10,
                servers=("hub",),
            ),
            Load(
                "U10000",
                "scale",
                f"a room nobody follows, 10,000 idle connections, {n(2000):,} messages",
                messages=n(2000),
                idle=10_000,
                servers=("hub",),
            ),
        ],
    }
    return [load for name in workloads for load in loads[name]]


# ---- one server under test -----------------------------------------------------------------------------------


@dataclass
class Running:
    urls: list[str]
    protocol: str
    pids: list[int]
    redis_url: str | None


def start_peer(procs: Processes, server: str, nodes: int, redis_url: str | None, args: argparse.Namespace) -> Running:
    name = "channels-redis" if nodes > 1 else server
    argv = [str(PEERS_PYTHON), str(PEERS_DIR / "run.py"), name, "--port", "0", "--workers", str(nodes)]
    argv += ["--python", str(PEERS_PYTHON), "--ready-timeout", str(args.ready_timeout)]
    if redis_url is not None:
        argv += ["--redis", redis_url]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HUB_", "PEER_"))}
    env["PEER_LOOP"] = args.loop
    proc = procs.spawn(server, argv, env)
    log = procs.workdir / f"{server}.log"
    deadline = time.monotonic() + args.ready_timeout + 5
    while time.monotonic() < deadline:
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        if "ready" in lines:
            servers = [line.split() for line in lines if line.startswith("pid ")]
            return Running(
                [fields[5] for fields in servers], servers[0][7], [int(fields[1]) for fields in servers], redis_url
            )
        if proc.poll() is not None:
            raise BenchError(f"run.py {name} exited with {proc.returncode} before it was ready:\n{tail(log)}")
        time.sleep(0.05)
    raise BenchError(f"run.py {name} not ready within {args.ready_timeout:.0f} s:\n{tail(log)}")


def start_server(procs: Processes, server: str, load: Load, args: argparse.Namespace) -> Running:
    redis_url = start_redis(procs, args.redis_server)[1] if load.nodes > 1 else None
    if server != "hub":
        return start_peer(procs, server, load.nodes, redis_url, args)
    env = {"HUB_LOOP": args.loop}
    if load.kind == "idle":
        env["HUB_HEARTBEAT_INTERVAL"] = f"{args.heartbeat:g}"
    hubs = [start_hub(procs, args.hub_bin, i, redis_url, env) for i in range(load.nodes)]
    wait_ready(procs, hubs, args.ready_timeout)
    return Running([f"ws://127.0.0.1:{port}/ws" for _proc, port in hubs], "hub", [p.pid for p, _ in hubs], redis_url)


def stop_all(procs: Processes, running: Running | None) -> None:
    procs.close()
    # run.py stops its servers on SIGTERM; if it had to be killed, they are ended here, by their PIDs
    for pid in running.pids if running is not None else []:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def expired(_signum: int, _frame: Any) -> None:
        raise RunTimeout(f"run not finished within --run-timeout {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def per_event(before: dict[str, int], after: dict[str, int], events: int) -> dict[str, float]:
    delta = {name: after.get(name, 0) - before.get(name, 0) for name in after}
    out = {name: delta.get(name, 0) / events for name in PUBLISH_COMMANDS if delta.get(name)}
    out["publish-type"] = sum(delta.get(name, 0) for name in PUBLISH_COMMANDS) / events
    out["all"] = sum(count for name, count in delta.items() if name not in ("info",)) / events
    return out


def measure_fanout(load: Load, server: str, running: Running, args: argparse.Namespace) -> dict[str, Any]:
    config = FanoutConfig(
        tuple(running.urls),
        running.protocol,
        subscribers=load.subscribers,
        rooms=load.rooms,
        publishers=load.publishers,
        rate=load.rate,
        messages=load.count(server),
        clients=args.clients,
        timeout=args.timeout,
        drain_idle=args.drain_idle,
        idle=load.idle,
    )
    marks: dict[str, Any] = {}

    def window(phase: str) -> None:
        marks[phase] = [ProcessGroup([pid]).sample().cpu_s for pid in running.pids]
        if running.redis_url is not None:
            marks[f"redis_{phase}"] = redis_commandstats(running.redis_url)

    report: FanoutReport = run_fanout(config, running.pids, Progress(), window)
    result: dict[str, Any] = {
        "deliveries": report.deliveries,
        "expected": report.expected,
        "sent": report.sent,
        "deliveries_per_s": report.deliveries_per_s,
        "p50_ms": report.p50_ms,
        "p99_ms": report.p99_ms,
        "max_ms": report.max_ms,
        "loss": report.loss,
        "duplicates": report.duplicates,
        "order_violations": report.order_violations,
        "cpu_s": report.server.cpu_s if report.server else None,
        "us_per_delivery": report.server_cpu_us_per_delivery,
        # what a publish costs when nobody follows the room (the U loads); with subscribers, µs/delivery says it
        "us_per_publish": report.server_cpu_us_per_publish if not load.subscribers else None,
        "rss_mib": report.server.rss_peak / MIB if report.server else None,
        "client_cpu_s": report.client_cpu_s,
        "problems": problems(report) + [note for note in report.notes if note.startswith("no progress")],
    }
    if load.nodes > 1:
        by_url = report.latency_by_url
        nodes = []
        for index, (url, pid) in enumerate(zip(running.urls, running.pids, strict=True)):
            cpu = marks["end"][index] - marks["start"][index]
            got = by_url.get(url, {}).get("deliveries", 0.0)
            nodes.append(
                {
                    "url": url,
                    "pid": pid,
                    "cpu_s": cpu,
                    "deliveries": got,
                    "us_per_delivery": cpu / got * 1e6 if got else None,
                }
            )
            result[f"node{index}_us_per_delivery"] = nodes[-1]["us_per_delivery"]
        result["nodes"] = nodes
        if "redis_start" in marks and report.sent:
            calls = per_event(marks["redis_start"], marks["redis_end"], report.sent)
            result["redis_calls_per_event"] = calls
            result["redis_publish_calls_per_event"] = calls["publish-type"]
            result["redis_pubsub_calls_per_event"] = calls.get("publish", 0.0) + calls.get("spublish", 0.0)
    return result


def measure_idle(load: Load, running: Running, args: argparse.Namespace) -> dict[str, Any]:
    config = IdleConfig(running.urls[0], running.protocol, load.idle, args.hold, args.clients, args.timeout)
    report: IdleReport = run_idle(config, running.pids, Progress())
    return {
        "connections": report.connections,
        "opened": report.opened,
        "still_open": report.still_open,
        "connects_per_s": report.connects_per_s,
        "pings": report.pings,
        "rss_per_conn_kib": report.rss_per_connection / KIB if report.rss_per_connection is not None else None,
        "cpu_s": report.server.cpu_s if report.server else None,
        "rss_mib": report.rss_with_open / MIB if report.rss_with_open is not None else None,
        "problems": problems(report),
    }


def run_one(load: Load, server: str, args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"hub-compare-{load.name}-{server}-"))
    procs = Processes(workdir)
    running: Running | None = None
    started = time.monotonic()
    try:
        with time_limit(args.run_timeout):
            running = start_server(procs, server, load, args)
            if load.kind == "idle":
                result = measure_idle(load, running, args)
            else:
                result = measure_fanout(load, server, running, args)
    except (BenchError, RunTimeout, OSError, subprocess.SubprocessError, KeyError, IndexError) as exc:
        result = {"failed": f"{type(exc).__name__}: {exc}".strip()[:400]}
    finally:
        stop_all(procs, running)
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    result["wall_s"] = time.monotonic() - started
    return result


# ---- statistics and tables -----------------------------------------------------------------------------------


def stats(runs: list[dict[str, Any]], key: str) -> dict[str, float] | None:
    values = [run[key] for run in runs if "failed" not in run and isinstance(run.get(key), int | float)]
    values = [value for value in values if not math.isnan(value)]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


FANOUT_COLUMNS = [
    ("deliveries_per_s", "deliveries/s", "{:,.0f}"),
    ("p50_ms", "p50 ms", "{:.1f}"),
    ("p99_ms", "p99 ms", "{:.1f}"),
    ("max_ms", "max ms", "{:.1f}"),
    ("loss", "loss", "{:,.0f}"),
    ("duplicates", "dup", "{:,.0f}"),
    ("order_violations", "order", "{:,.0f}"),
    ("cpu_s", "server CPU s", "{:.2f}"),
    ("us_per_delivery", "µs/delivery", "{:.1f}"),
    ("us_per_publish", "µs/publish", "{:.1f}"),
    ("rss_mib", "RSS MiB", "{:.0f}"),
]
IDLE_COLUMNS = [
    ("opened", "opened", "{:,.0f}"),
    ("still_open", "open after hold", "{:,.0f}"),
    ("connects_per_s", "connects/s", "{:,.0f}"),
    ("rss_per_conn_kib", "RSS/conn KiB", "{:.1f}"),
    ("pings", "pings seen", "{:,.0f}"),
    ("cpu_s", "server CPU s (hold)", "{:.2f}"),
    ("rss_mib", "RSS MiB", "{:.0f}"),
]


def render(header: list[str], rows: list[list[str]], markdown: bool, left: tuple[int, ...] = (0, 1)) -> str:
    """A plain-text table (columns in ``left`` left-aligned, the others right-aligned), or Markdown."""
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(widths[i]) if i in left else c.rjust(widths[i]) for i, c in enumerate(row)).rstrip()
        for row in [header, *rows]
    )


def table(
    loads: list[Load],
    servers: list[str],
    results: dict[tuple[str, str], list[dict[str, Any]]],
    kind: str,
    markdown: bool,
    runs: int,
) -> str:
    columns = IDLE_COLUMNS if kind == "idle" else FANOUT_COLUMNS
    header = ["workload", "server", *(title for _key, title, _fmt in columns)]
    rows = []
    for load in loads:
        if load.kind != kind:
            continue
        for server in servers:
            done = results.get((load.name, server))
            if not done:
                continue
            label = "channels-redis" if load.nodes > 1 and server == "channels" else server
            failed = [run for run in done if "failed" in run]
            row = [load.name, label + (f" ({len(failed)}/{len(done)} FAILED)" if failed else "")]
            if len(failed) == len(done):
                row += ["FAILED"] + [""] * (len(columns) - 1)
            else:
                row += [cell(stats(done, key), fmt, runs) for key, _title, fmt in columns]
            rows.append(row)
    return render(header, rows, markdown) if rows else ""


# ---- targets (issue 7, part 3) -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    value: float | None
    limit: float | None  # None: reported only
    unit: str = "x"
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.value is None or math.isnan(self.value):
            return "n/a (not measured)"
        if self.limit is None:
            return "reported"
        return "MET" if self.value <= self.limit else "NOT MET"


def median(results: dict[tuple[str, str], list[dict[str, Any]]], load: str, server: str, key: str) -> float | None:
    found = stats(results.get((load, server), []), key)
    return found["median"] if found else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def targets(results: dict[tuple[str, str], list[dict[str, Any]]]) -> list[Target]:
    out: list[Target] = []

    def m(load: str, server: str, key: str) -> float | None:
        return median(results, load, server, key)

    for load in ("W1", "W2", "W3"):
        hub = m(load, "hub", "us_per_delivery")
        for peer, limit in (("fastapi", 1.0), ("socketio", 0.25), ("channels", 0.05), ("ws", None)):
            out.append(Target(f"{load} µs/delivery hub / {peer}", ratio(hub, m(load, peer, "us_per_delivery")), limit))
    hub_p99 = m("W1p", "hub", "p99_ms")
    for peer, limit in (("ws", 1.2), ("fastapi", 1.0), ("socketio", 1.0), ("channels", 1.0)):
        out.append(Target(f"W1p p99 latency hub / {peer}", ratio(hub_p99, m("W1p", peer, "p99_ms")), limit))
    for load in dict.fromkeys(name for name, _server in results if name.startswith("W4-")):
        hub = m(load, "hub", "rss_per_conn_kib")
        out.append(
            Target(f"{load} RSS/connection hub / fastapi", ratio(hub, m(load, "fastapi", "rss_per_conn_kib")), 1.0)
        )
        out.append(Target(f"{load} RSS/connection hub (aim)", hub, 20.0, " KiB"))
    held = results.get(("W4-10k", "hub"))
    if held:
        ok = [run for run in held if "failed" not in run]
        all_held = bool(ok) and len(ok) == len(held) and all(r["still_open"] == r["connections"] for r in ok)
        pings = min((r["pings"] for r in ok), default=0)
        out.append(
            Target(
                "10,000 idle connections held by one hub, heartbeats running",
                0.0 if all_held and pings > 0 else 1.0,
                0.5,
                "",
                f"all held in {len(ok)}/{len(held)} runs, at least {pings:,} pings seen by the clients",
            )
        )
    out.append(
        Target(
            "scale: µs/delivery S1000 / S10 (subscribers per room)",
            ratio(m("S1000", "hub", "us_per_delivery"), m("S10", "hub", "us_per_delivery")),
            1.5,
        )
    )
    out.append(
        Target(
            "scale: µs/delivery R1000 / R1 (rooms; R1 = S10)",
            ratio(m("R1000", "hub", "us_per_delivery"), m("S10", "hub", "us_per_delivery")),
            1.5,
        )
    )
    out.append(
        Target(
            "scale: µs/publish to an unfollowed room, U10000 / U10 (target ~1)",
            ratio(m("U10000", "hub", "us_per_publish"), m("U10", "hub", "us_per_publish")),
            1.5,
        )
    )
    single = m("W1", "hub", "us_per_delivery")
    for index in (0, 1):
        where = "publisher's node" if index == 0 else "through Redis"
        out.append(
            Target(
                f"W5 hub node{index} ({where}) µs/delivery / W1 single process",
                ratio(m("W5", "hub", f"node{index}_us_per_delivery"), single),
                1.3,
            )
        )
    calls = m("W5", "hub", "redis_pubsub_calls_per_event")
    out.append(
        Target(
            "W5 hub Redis PUBLISH+SPUBLISH per event (1 channel; never one per subscriber)",
            calls,
            1.1,
            "",
            "other publish-type calls (evalsha/eval/fcall) are listed under W5 per node",
        )
    )
    return out


def targets_text(found: list[Target], markdown: bool) -> str:
    rows = []
    for target in found:
        if target.value is None:
            continue
        if target.unit == "x":
            value = f"x{target.value:.3g}"
        elif target.unit:
            value = f"{target.value:.1f}{target.unit}"
        else:
            value = f"{target.value:.3g}"
        limit = (
            "\N{EN DASH}"
            if target.limit is None
            else (f"≤ x{target.limit:g}" if target.unit == "x" else f"≤ {target.limit:g}{target.unit}")
        )
        if target.name.startswith("10,000 idle"):
            value, limit = ("yes" if target.value == 0.0 else "no"), "yes"
        rows.append([target.name, value, limit, target.verdict + (f" ({target.note})" if target.note else "")])
    missing = [target.name for target in found if target.value is None]
    text = render(["target", "measured", "limit", "verdict"], rows, markdown, left=(0, 3))
    if missing:
        text += "\nnot measured in this run set: " + "; ".join(missing)
    return text


# ---- header, chart, main -------------------------------------------------------------------------------------


def peer_versions(loop: str) -> dict[str, Any]:
    env = {**os.environ, "PEER_LOOP": loop}
    with contextlib.suppress(OSError, subprocess.SubprocessError, json.JSONDecodeError):
        done = subprocess.run(
            [str(PEERS_PYTHON), str(PEERS_DIR / "versions.py")],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=True,
        )
        found: dict[str, Any] = json.loads(done.stdout)
        return found
    return {}


def header(args: argparse.Namespace, info: dict[str, Any], peers: dict[str, Any], loads: list[Load]) -> list[str]:
    hub_pkgs = info["packages"]
    peer_pkgs = peers.get("packages", {})
    uv = peers.get("uvicorn", {})
    uvicorn = (
        f"uvicorn {peer_pkgs.get('uvicorn', '?')} (loop {uv.get('loop', args.loop)}, http {uv.get('http', '?')}, "
        f"ws {uv.get('ws', '?')}, no per-message deflate)"
    )

    def pkgs(*names: str) -> str:
        return ", ".join(f"{name} {peer_pkgs.get(name, '?')}" for name in names)

    describe = {
        "hub": f"hub serve --plugins chat: uvicorn {hub_pkgs.get('uvicorn', '?')} with h11 "
        f"{hub_pkgs.get('h11', '?')}, the hub's own WebSocket protocol on websockets "
        f"{hub_pkgs.get('websockets', '?')} sans-I/O, {args.loop} loop (HUB_LOOP)",
        "ws": f"websockets.asyncio.server.serve (websockets' own asyncio server, no uvicorn), {args.loop} "
        f"loop, compression=None; {pkgs('websockets')}",
        "fastapi": f"FastAPI ConnectionManager under {uvicorn}; {pkgs('fastapi', 'h11', 'websockets')}",
        "socketio": f"python-socketio AsyncServer (ASGI) under {uvicorn}; "
        f"{pkgs('python-socketio', 'python-engineio', 'h11', 'websockets')}",
        "channels": f"Django Channels, in-memory layer (W5: channels_redis) under {uvicorn}; "
        f"{pkgs('channels', 'channels-redis', 'django', 'h11', 'websockets')}",
    }
    lines = [
        f"benchmarks/compare.py: {args.runs} run(s) of each workload on each server, interleaved"
        + ("; median (min\N{EN DASH}max) of the runs" if args.runs > 1 else ""),
        f"machine: {info.get('cpu', '?')}, {info['nproc']} CPUs; Python {info['python']} (hub), "
        f"{peers.get('python', '?')} (peers); redis-server {info.get('redis_server')}; "
        f"hub revision {info.get('hub_revision')}",
        f"event loop: {args.loop} for every server (--loop); load generator: hub.bench, {args.clients} client "
        "processes on the same machine",
        "servers:",
        *(f"  {server:<9} {describe[server]}" for server in args.server_list),
        "hub environment: " + " ".join(f"{k}={v}" for k, v in HUB_ENV.items()) + f" HUB_LOOP={args.loop}",
        f"W4: the hub runs with HUB_HEARTBEAT_INTERVAL={args.heartbeat:g}, so its heartbeats run during the "
        f"{args.hold:g} s hold (pings seen = hub pings the clients answered); the peers keep their defaults "
        "(uvicorn's WebSocket-level ping every 20 s is not counted, socketio pings every 25 s)",
        "workloads (message counts x --scale " + f"{args.scale:g}):",
        *(
            f"  {load.name:<7} {load.description}"
            + ("" if load.servers == SERVERS else f" [{', '.join(load.servers)}]")
            for load in loads
        ),
    ]
    return lines


def chart(path: Path, results: dict[tuple[str, str], list[dict[str, Any]]], servers: list[str], loop: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [name for name in ("W1", "W2", "W3", "W5") if any((name, s) in results for s in servers)]
    fig, ax = plt.subplots(figsize=(9, 5))
    width = 0.8 / max(1, len(servers))
    for i, server in enumerate(servers):
        xs, ys, low, high = [], [], [], []
        for j, group in enumerate(groups):
            found = stats(results.get((group, server), []), "us_per_delivery")
            if found:
                xs.append(j + (i - (len(servers) - 1) / 2) * width)
                ys.append(found["median"])
                low.append(found["median"] - found["min"])
                high.append(found["max"] - found["median"])
        if xs:
            ax.bar(xs, ys, width, yerr=[low, high], capsize=3, label=server)
    ax.set_yscale("log")
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel("server CPU µs per delivery (log scale)")
    ax.set_title(f"Server CPU per delivery, median and min\N{EN DASH}max ({loop} loop; W5 channels = channels_redis)")
    ax.legend()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def check_loop(loop: str) -> str | None:
    if loop != "uvloop":
        return None
    import importlib.util

    if importlib.util.find_spec("uvloop") is None:
        return f"--loop uvloop: uvloop is not installed in {sys.prefix}; run .venv/bin/pip install uvloop"
    done = subprocess.run([str(PEERS_PYTHON), "-c", "import uvloop"], capture_output=True, timeout=60, check=False)
    if done.returncode:
        return "--loop uvloop: uvloop is not installed in benchmarks/peers/.venv; run benchmarks/peers/setup"
    return None


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated from " + ",".join(WORKLOADS))
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated from " + ",".join(SERVERS))
    parser.add_argument("--runs", type=int, default=3, help="runs of everything, interleaved (default 3)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every message count by this (default 1)")
    parser.add_argument("--idle-counts", default="3000,10000", help="W4's idle connection counts (default 3000,10000)")
    parser.add_argument(
        "--hold", type=float, default=12.0, help="W4: seconds the idle connections are held (default 12)"
    )
    parser.add_argument(
        "--heartbeat", type=float, default=5.0, help="W4: the hub's HUB_HEARTBEAT_INTERVAL (default 5 s)"
    )
    parser.add_argument("--loop", choices=LOOPS, default="asyncio", help="event loop of every server (default asyncio)")
    parser.add_argument("--clients", type=int, default=2, help="load-generator client processes (default 2)")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="bound on connecting and on no progress, s (default 60)"
    )
    parser.add_argument(
        "--drain-idle", type=float, default=3.0, help="stop waiting once nothing arrived for this long, s"
    )
    parser.add_argument("--ready-timeout", type=float, default=60.0, help="bound on a server becoming ready, s")
    parser.add_argument(
        "--run-timeout", type=float, default=900.0, help="bound on one run of one workload on one server, s"
    )
    parser.add_argument("--json-file", type=Path, help="write every run, the summaries and the targets as JSON")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    parser.add_argument("--chart", type=Path, help="write a PNG bar chart of µs/delivery (W1, W2, W3, W5)")
    parser.add_argument("--hub-bin", default=str(ROOT / ".venv" / "bin" / "hub"), help="the hub console script")
    parser.add_argument("--redis-server", default=shutil.which("redis-server") or "/usr/bin/redis-server")
    parser.add_argument("--keep", action="store_true", help="keep each run's working directory (logs)")
    args = parser.parse_args()
    args.workload_list = [w.strip() for w in args.workloads.split(",") if w.strip()]
    args.server_list = [s.strip() for s in args.servers.split(",") if s.strip()]
    for name in args.workload_list:
        if name not in WORKLOADS:
            parser.error(f"unknown workload {name!r}; choose from {', '.join(WORKLOADS)}")
    for name in args.server_list:
        if name not in SERVERS:
            parser.error(f"unknown server {name!r}; choose from {', '.join(SERVERS)}")
    try:
        args.idle_count_list = [int(n) for n in args.idle_counts.split(",") if n.strip()]
    except ValueError:
        parser.error("--idle-counts: comma-separated integers")
    if args.runs < 1 or args.scale <= 0 or args.clients < 1 or any(n < 1 for n in args.idle_count_list):
        parser.error("--runs, --scale, --clients and --idle-counts must be positive")
    if "hub" in args.server_list and not Path(args.hub_bin).exists():
        parser.error(f"no hub console script at {args.hub_bin}; run scripts/setup")
    if set(args.server_list) - {"hub"} and not PEERS_PYTHON.exists():
        parser.error(f"no peers environment at {PEERS_PYTHON}; run benchmarks/peers/setup")
    if "W5" in args.workload_list and not shutil.which(args.redis_server):
        parser.error(f"W5 needs redis-server ({args.redis_server} not found); pass --redis-server")
    problem = check_loop(args.loop)
    if problem:
        parser.error(problem)
    return args


def main() -> int:
    args = parse_arguments()
    loads = plan(args.workload_list, args.scale, args.idle_count_list)

    def on_term(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    info = machine()
    info["redis_server"] = redis_version(args.redis_server)
    info["hub_revision"] = hub_revision()  # before the runs: the code they ran
    peers = peer_versions(args.loop) if set(args.server_list) - {"hub"} else {}
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    started = time.monotonic()
    interrupted = False
    try:
        for run in range(args.runs):
            for load in loads:
                for server in args.server_list:
                    if server not in load.servers:
                        continue
                    print(
                        f"[{time.monotonic() - started:7.1f}s] run {run + 1}/{args.runs} {load.name} {server} ...",
                        file=sys.stderr,
                        flush=True,
                    )
                    result = run_one(load, server, args)
                    results.setdefault((load.name, server), []).append(result)
                    print(f"           {summary_line(result)}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted; every process started was stopped; the report covers the runs done", file=sys.stderr)
    found = targets(results)
    print("\n".join(header(args, info, peers, loads)))
    for kind, title in (("fanout", "fan-out"), ("idle", "idle connections (W4)")):
        text = table(loads, args.server_list, results, kind, args.markdown, args.runs)
        if text:
            print(f"\n{title}:\n{text}")
    w5 = w5_text(results, args.runs)
    if w5:
        print("\nW5 per node:\n" + "\n".join(w5))
    print("\ntargets (issue 7, part 3), ratios of medians:\n" + targets_text(found, args.markdown))
    walls = [
        f"{load.name}/{server} {statistics.median(r['wall_s'] for r in runs):.0f}s"
        for (load_name, server), runs in results.items()
        for load in loads
        if load.name == load_name
    ]
    print("\nwall time per run (median, start to stop): " + ", ".join(walls))
    failed = False
    for (load_name, server), runs in results.items():
        for index, one in enumerate(runs):
            if "failed" in one:
                failed = True
                print(f"PROBLEM: {load_name} {server} run {index + 1}: FAILED: {one['failed']}")
            for note in one.get("problems", []):
                print(f"PROBLEM: {load_name} {server} run {index + 1}: {note}")
    if args.json_file is not None:
        document = {
            "config": {
                key: value for key, value in vars(args).items() if isinstance(value, str | int | float | bool | list)
            },
            "machine": info,
            "peers": peers,
            "workloads": [dataclasses.asdict(load) for load in loads],
            "runs": [{"workload": w, "server": s, "runs": runs} for (w, s), runs in results.items()],
            "targets": [{**dataclasses.asdict(t), "verdict": t.verdict} for t in found],
        }
        args.json_file.write_text(json.dumps(document, indent=2, default=str) + "\n")
    if args.chart is not None:
        chart(args.chart, results, args.server_list, args.loop)
        print(f"chart: {args.chart}")
    if interrupted:
        return 130
    return 1 if failed else 0


def summary_line(result: dict[str, Any]) -> str:
    if "failed" in result:
        return f"FAILED after {result['wall_s']:.0f} s: {result['failed'][:200]}"
    if "opened" in result:
        per = result["rss_per_conn_kib"]
        return (
            f"{result['opened']:,} opened, {result['still_open']:,} held, {result['connects_per_s']:,.0f} connects/s, "
            f"{'-' if per is None else f'{per:.1f}'} KiB/conn, {result['pings']:,} pings ({result['wall_s']:.0f} s)"
        )
    us = result["us_per_delivery"] if result["us_per_delivery"] is not None else result["us_per_publish"]
    unit = "µs/delivery" if result["us_per_delivery"] is not None else "µs/publish"
    return (
        f"{result['deliveries_per_s']:,.0f} deliveries/s, {'-' if us is None else f'{us:.1f}'} {unit}, "
        f"p99 {result['p99_ms']:.1f} ms, loss {result['loss']:,} ({result['wall_s']:.0f} s)"
    )


def w5_text(results: dict[tuple[str, str], list[dict[str, Any]]], runs: int) -> list[str]:
    lines = []
    for server in ("hub", "channels"):
        done = results.get(("W5", server))
        if not done or all("failed" in run for run in done):
            continue
        single = median(results, "W1", server, "us_per_delivery")
        parts = []
        for index in (0, 1):
            node = stats(done, f"node{index}_us_per_delivery")
            rel = ratio(node["median"], single) if node else None
            parts.append(
                f"node{index} {cell(node, '{:.1f}', runs)} µs/delivery" + (f" (x{rel:.2f} W1 single)" if rel else "")
            )
        calls = [run.get("redis_calls_per_event", {}) for run in done if "failed" not in run]
        per = {key: statistics.median(c.get(key, 0.0) for c in calls) for key in sorted({k for c in calls for k in c})}
        label = "channels-redis" if server == "channels" else server
        lines.append(f"  {label}: " + "; ".join(parts))
        lines.append(
            f"  {label}: Redis calls per published event: " + ", ".join(f"{k} {v:.2f}" for k, v in per.items())
        )
    return lines


if __name__ == "__main__":
    sys.exit(main())
