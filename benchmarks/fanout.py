#!/usr/bin/env python3
"""Cross-node fan-out benchmark: one publisher, S subscribers in one chat room, over real sockets.

Scenarios (each started from scratch by this script, on 127.0.0.1 only):

  memory-1  one `hub serve` process on the embedded defaults (memory:// broker, SQLite store)
  redis-1   one `hub serve --redis` process on a private redis-server
  redis-2   two `hub serve --redis` processes on one private redis-server; subscribers split evenly
            between them, the publisher on the first, so half the deliveries cross Redis pub/sub
  cluster-2 as redis-2, on a private three-primary Redis Cluster (`--redis redis+cluster://`, sharded
            pub/sub: SPUBLISH / SSUBSCRIBE on the primary that owns the room's slot)

Load: S subscriber sockets (in --clients worker processes, separate from the hubs) join `chat:bench`; one
publisher socket sends M `chat.send` messages at --rate messages/s (0: flood, each send waits for the
previous `ok`). Every message text carries its sequence number and the publisher's time.time_ns(); each
subscriber records receive time minus send time for every `chat.posted` it gets.

Reported per scenario: deliveries/s (chat.posted frames received by all subscribers / time from the first
send to the last receive), latency p50/p99/max, loss, duplicates, order violations, hub CPU seconds (sum
over hub processes, from /proc/<pid>/stat) and hub CPU microseconds per delivery; with --runs N, the
median and the min-max of N runs.

    .venv/bin/python benchmarks/fanout.py                      # defaults: 200 subscribers, 2000 messages, 500/s
    .venv/bin/python benchmarks/fanout.py --subscribers 20 --messages 200 --runs 1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import (
    HUB_ENV,
    ROOT,
    Processes,
    cell,
    hub_revision,
    machine,
    redis_version,
    start_hub,
    start_redis,
    wait_ready,
)

from hub.bench.client import BenchError, room_name
from hub.bench.procstat import cpu_seconds, machine_busy_seconds
from hub.bench.report import FanoutReport, Progress
from hub.bench.runner import FanoutConfig, run_fanout
from hub.bench.server import LIFTED_LIMITS, http_get

ROOM = room_name(0)  # "chat:bench-0", the room hub bench uses

# name -> (uses Redis, number of hub processes)
SCENARIOS: dict[str, tuple[bool, int]] = {
    "memory-1": (False, 1),
    "redis-1": (True, 1),
    "redis-2": (True, 2),
    "cluster-2": (True, 2),
}


# ---- processes under test --------------------------------------------------------------------------------


def hub_problems(port: int) -> dict[str, float]:
    """Non-zero error and close counters from a hub's /metrics (err frames sent, connections it closed)."""
    found: dict[str, float] = {}
    with contextlib.suppress(OSError):
        _status, text = http_get(f"http://127.0.0.1:{port}/metrics")
        for line in text.splitlines():
            if line.startswith(("hub_errors_total{", "hub_closes_total{")):
                name, _, value = line.rpartition(" ")
                if float(value):
                    found[name] = float(value)
    return found


def log_warnings(path: Path, start: int = 0, end: int | None = None, limit: int = 10) -> list[str]:
    """Lines a hub logged at warning level or above (it runs with HUB_LOG_LEVEL=warning, so: all of them),
    from byte ``start`` to byte ``end`` of its log."""
    with contextlib.suppress(OSError), open(path, "rb") as file:
        file.seek(start)
        text = file.read(-1 if end is None else max(0, end - start)).decode(errors="replace")
        lines = [line for line in text.splitlines() if line.strip()]
        return lines[:limit] + ([f"... {len(lines) - limit} more lines"] if len(lines) > limit else [])
    return []


# ---- one run's load: hub.bench's client processes -------------------------------------------------------------


def drive(
    args: argparse.Namespace, hub_ports: list[int], pids: dict[str, list[int]], procs: Processes
) -> dict[str, Any]:
    """The load of one run, by ``hub bench``'s load generator: subscribers spread over the hubs, one publisher on
    hub 0. CPU, the hubs' logs and /metrics are read over the generator's measurement window."""
    urls = tuple(f"ws://127.0.0.1:{port}/ws" for port in hub_ports)
    config = FanoutConfig(
        urls,
        subscribers=args.subscribers,
        rooms=1,
        publishers=1,
        rate=args.rate,
        messages=args.messages,
        clients=args.clients,
        timeout=args.timeout,
        drain_idle=args.drain_idle,
    )
    marks: dict[str, Any] = {}

    def window(phase: str) -> None:
        marks[f"cpu_{phase}"] = {role: sum(cpu_seconds(pid) for pid in ids) for role, ids in pids.items()}
        marks[f"machine_{phase}"] = machine_busy_seconds()
        if phase == "end":
            marks["log_marks"] = {name: log.stat().st_size for name, _p, log in procs.popens if name.startswith("hub")}
            problems: dict[str, float] = {}
            for index, port in enumerate(hub_ports):
                for key, value in hub_problems(port).items():
                    problems[f"hub{index} {key}"] = value
            marks["problems"] = problems

    report = run_fanout(config, [], Progress(), window)
    cpu = {role: marks["cpu_end"][role] - marks["cpu_start"][role] for role in pids}
    cpu["machine"] = marks["machine_end"] - marks["machine_start"]
    return {"report": report, "cpu": cpu, "log_marks": marks["log_marks"], "problems": marks["problems"]}


def wait_disconnected(ports: list[int], timeout: float) -> None:
    """Until every hub's hub_connections gauge is 0 (the clients' closes have been processed), or timeout."""
    deadline = time.monotonic() + timeout
    for port in ports:
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                _status, text = http_get(f"http://127.0.0.1:{port}/metrics")
                gauge = [line for line in text.splitlines() if line.startswith("hub_connections ")]
                if gauge and float(gauge[0].split()[1]) == 0:
                    break
            time.sleep(0.1)


def run_once(name: str, args: argparse.Namespace) -> dict[str, Any]:
    uses_redis, hub_count = SCENARIOS[name]
    workdir = Path(tempfile.mkdtemp(prefix=f"hub-bench-{name}-"))
    procs = Processes(workdir)
    cleanups: list[Any] = []
    log_marks: dict[str, int] = {}  # end of the measured part of each hub's log
    disconnect_marks: dict[str, int] = {}  # end of the part written while the clients disconnected
    try:
        pids: dict[str, list[int]] = {"hub": []}
        redis_url = None
        if name.startswith("cluster"):
            # The cluster rig lives with the repo's tests (tests/rigs/redis.py), not in the installed package;
            # this script runs with benchmarks/ as sys.path[0], so make the checkout's root importable too.
            if str(ROOT) not in sys.path:
                sys.path.append(str(ROOT))
            from tests.rigs.redis import RedisClusterServer

            cluster = RedisClusterServer(args.redis_server).start()
            cleanups.append(cluster.close)
            redis_url = cluster.url
            pids["redis"] = [node.process.pid for node in cluster.nodes if node.process is not None]
        elif uses_redis:
            redis_proc, redis_url = start_redis(procs, args.redis_server)
            pids["redis"] = [redis_proc.pid]
        hubs = [start_hub(procs, args.hub_bin, i, redis_url) for i in range(hub_count)]
        pids["hub"] = [proc.pid for proc, _port in hubs]
        wait_ready(procs, hubs, 60)
        hub_ports = [port for _proc, port in hubs]
        outcome = drive(args, hub_ports, pids, procs)
        log_marks = outcome["log_marks"]
        problems = outcome["problems"]
        wait_disconnected(hub_ports, 15)
        disconnect_marks = {name: log.stat().st_size for name, _proc, log in procs.popens if name.startswith("hub")}
        for index, (proc, _port) in enumerate(hubs):
            if proc.poll() is not None:
                problems[f"hub{index} exited with {proc.returncode}"] = 1
    finally:
        procs.close()
        for cleanup in cleanups:
            cleanup()
        warnings: dict[str, dict[str, list[str]]] = {}
        for proc_name, _proc, log in procs.popens:
            if not proc_name.startswith("hub"):
                continue
            mark, disconnected = log_marks.get(proc_name), disconnect_marks.get(proc_name)
            phases = {
                "measured": log_warnings(log, 0, mark),
                "clients_disconnecting": log_warnings(log, mark, disconnected) if mark is not None else [],
                "hub_stopping": log_warnings(log, disconnected) if disconnected is not None else [],
            }
            for phase, lines in phases.items():
                if lines:
                    warnings.setdefault(phase, {})[proc_name] = lines
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    report: FanoutReport = outcome["report"]
    if report.latency_by_url:
        per_hub = [dict(stats) for stats in report.latency_by_url.values()]
    else:
        per_hub = [
            {"deliveries": report.deliveries, "p50_ms": report.p50_ms, "p99_ms": report.p99_ms, "max_ms": report.max_ms}
        ]
    hub_cpu = outcome["cpu"]["hub"]
    publisher_err = sum(report.errors.values())
    return {
        "scenario": name,
        "hubs": hub_count,
        "deliveries": report.deliveries,
        "messages": args.messages,
        "expected": report.expected,
        "elapsed_s": report.elapsed_s,
        "send_s": report.send_s,
        "publish_rate": args.messages / report.send_s if report.send_s else float("nan"),
        "deliveries_per_s": report.deliveries_per_s,
        "p50_ms": report.p50_ms,
        "p99_ms": report.p99_ms,
        "max_ms": report.max_ms,
        # hub 0 holds the publisher; on redis-2, hub 1's subscribers get every event through Redis pub/sub
        "latency_by_hub": per_hub,
        **{f"hub{i}_{key}": stats[key] for i, stats in enumerate(per_hub) for key in ("p50_ms", "p99_ms")},
        "loss": report.loss,
        "duplicates": report.duplicates,
        "order_violations": report.order_violations,
        "hub_cpu_s": hub_cpu,
        "hub_cpu_us_per_delivery": hub_cpu / report.deliveries * 1e6 if report.deliveries else float("nan"),
        "redis_cpu_s": outcome["cpu"].get("redis"),
        # the publisher is one of the client processes' sockets now
        "client_cpu_s": report.client_cpu_s,
        "machine_cpu_s": outcome["cpu"]["machine"],
        "other_cpu_s": outcome["cpu"]["machine"] - hub_cpu - (outcome["cpu"].get("redis") or 0.0) - report.client_cpu_s,
        "publisher_ok": report.replies - publisher_err,
        "publisher_err": publisher_err,
        "publisher_errors": [f"{code} x{count}" for code, count in report.errors.items()],
        "subscriber_closes": [f"{reason} x{count}" for reason, count in report.closes.items()],
        "hub_metrics_problems": problems,
        "hub_log_warnings": warnings,
    }


# ---- reporting -----------------------------------------------------------------------------------------------

COLUMNS = [
    ("deliveries_per_s", "deliveries/s", "{:,.0f}"),
    ("p50_ms", "p50 ms", "{:.1f}"),
    ("p99_ms", "p99 ms", "{:.1f}"),
    ("max_ms", "max ms", "{:.1f}"),
    ("loss", "loss", "{:,.0f}"),
    ("duplicates", "dup", "{:,.0f}"),
    ("order_violations", "order", "{:,.0f}"),
    ("hub_cpu_s", "hub CPU s", "{:.2f}"),
    ("hub_cpu_us_per_delivery", "hub CPU µs/deliv", "{:.1f}"),
    ("redis_cpu_s", "redis CPU s", "{:.2f}"),
    ("client_cpu_s", "client CPU s", "{:.2f}"),
    ("machine_cpu_s", "machine CPU s", "{:.2f}"),
]


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    per_hub = sorted(key for key in runs[0] if key.startswith("hub") and key.endswith(("_p50_ms", "_p99_ms")))
    for key in [*(column[0] for column in COLUMNS), "publish_rate", "elapsed_s", *per_hub]:
        values = [run[key] for run in runs if run.get(key) is not None]
        if values:
            summary[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
        else:
            summary[key] = None
    return summary


def table(summaries: dict[str, dict[str, Any]], runs: int, markdown: bool) -> str:
    header = ["scenario", *(title for _key, title, _fmt in COLUMNS)]
    rows = [[name, *(cell(s[key], fmt, runs) for key, _t, fmt in COLUMNS)] for name, s in summaries.items()]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.rjust(widths[i]) if i else c.ljust(widths[i]) for i, c in enumerate(r)) for r in [header, *rows]
    )


def ratios(summaries: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    base = summaries.get("memory-1")
    out: dict[str, dict[str, float]] = {}
    if base is None:
        return out
    for name, s in summaries.items():
        if name == "memory-1":
            continue
        out[name] = {
            key: s[key]["median"] / base[key]["median"]
            for key in ("deliveries_per_s", "hub_cpu_us_per_delivery")
            if s[key] and base[key] and base[key]["median"]
        }
    return out


def anomalies(run: dict[str, Any]) -> list[str]:
    notes = []
    for key in ("loss", "duplicates", "order_violations"):
        if run[key]:
            notes.append(f"{key.replace('_', ' ')}: {run[key]}")
    if run["publisher_ok"] + run["publisher_err"] != run["messages"]:
        notes.append(f"publisher got {run['publisher_ok'] + run['publisher_err']} replies to {run['messages']} sends")
    if run["publisher_err"]:
        notes.append(f"publisher got {run['publisher_err']} err replies: {run['publisher_errors']}")
    if run["subscriber_closes"]:
        notes.append(f"subscriber sockets closed by the hub: {run['subscriber_closes']}")
    for key, value in run["hub_metrics_problems"].items():
        notes.append(f"{key} = {value:g}")
    for phase, by_hub in run["hub_log_warnings"].items():
        for proc_name, lines in by_hub.items():
            first = lines[0] if lines else ""
            more = f" (+{len(lines) - 1} lines, see --json)" if len(lines) > 1 else ""
            notes.append(f"{proc_name} logged during {phase.replace('_', ' ')}: {first}{more}")
    return notes


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Fan-out benchmark: one publisher, S subscribers in one chat room, on the memory broker "
        "and on Redis with 1 and 2 hub processes. Starts and stops everything it measures (127.0.0.1 only).",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help="comma-separated, from: " + ", ".join(SCENARIOS) + " (default: all)",
    )
    parser.add_argument("--subscribers", type=int, default=200, help="subscriber connections (default 200)")
    parser.add_argument("--messages", type=int, default=2000, help="chat.send messages to publish (default 2000)")
    parser.add_argument(
        "--rate",
        type=float,
        default=500.0,
        help="publish rate in messages/s; 0 floods, waiting for each ok before the next send (default 500)",
    )
    parser.add_argument("--clients", type=int, default=2, help="client processes holding the subscribers (default 2)")
    parser.add_argument(
        "--runs",
        type=int,
        default=1,
        help="runs of each scenario; the table shows the median and min\N{EN DASH}max (default 1)",
    )
    parser.add_argument(
        "--drain-idle",
        type=float,
        default=3.0,
        help="after the last send, stop waiting once no frame arrived for this long (default 3 s)",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="bound on each phase of a run (default 60 s)")
    parser.add_argument("--json", action="store_true", help="print JSON (every run and the summaries)")
    parser.add_argument("--json-file", type=Path, help="also write the JSON document to this file")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--hub-bin", default=str(ROOT / ".venv" / "bin" / "hub"), help="the hub console script")
    parser.add_argument(
        "--redis-server",
        default=shutil.which("redis-server") or "/usr/bin/redis-server",
        help="the redis-server binary",
    )
    parser.add_argument("--keep", action="store_true", help="keep each run's working directory (logs)")
    args = parser.parse_args()

    names = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    for name in names:
        if name not in SCENARIOS:
            parser.error(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    if args.subscribers < 1 or args.messages < 1 or args.clients < 1 or args.runs < 1 or args.rate < 0:
        parser.error("--subscribers, --messages, --clients and --runs must be positive, --rate not negative")
    args.clients = min(args.clients, args.subscribers)
    if not Path(args.hub_bin).exists():
        parser.error(f"no hub console script at {args.hub_bin}; run scripts/setup")
    if any(SCENARIOS[name][0] for name in names) and not shutil.which(args.redis_server):
        parser.error(f"redis-server not found ({args.redis_server}); pass --redis-server")

    def on_term(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    all_runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    revision = hub_revision()  # before the runs: the code they ran
    started = time.monotonic()
    try:
        for run in range(args.runs):  # interleaved, so slow drift of a shared machine spreads over all scenarios
            for name in names:
                print(
                    f"[{time.monotonic() - started:6.1f}s] {name} run {run + 1}/{args.runs} ...",
                    file=sys.stderr,
                    flush=True,
                )
                result = run_once(name, args)
                all_runs[name].append(result)
                print(
                    f"         {result['deliveries_per_s']:,.0f} deliveries/s, p50 {result['p50_ms']:.1f} ms, "
                    f"p99 {result['p99_ms']:.1f} ms, loss {result['loss']}",
                    file=sys.stderr,
                    flush=True,
                )
    except KeyboardInterrupt:
        print("interrupted; every process started was stopped", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    summaries = {name: summarize(runs) for name, runs in all_runs.items()}
    config = {
        "subscribers": args.subscribers,
        "messages": args.messages,
        "rate": args.rate,
        "clients": args.clients,
        "runs": args.runs,
        "room": ROOM,
        "lifted_limits": LIFTED_LIMITS,
        "hub_log_level": HUB_ENV["HUB_LOG_LEVEL"],
    }
    info = machine()
    info["redis_server"] = redis_version(args.redis_server)
    info["hub_revision"] = revision
    document = {
        "config": config,
        "machine": info,
        "summaries": summaries,
        "ratios": ratios(summaries),
        "runs": all_runs,
    }
    if args.json_file is not None:
        args.json_file.write_text(json.dumps(document, indent=2) + "\n")
    if args.json:
        print(json.dumps(document, indent=2))
        return 0
    rate = "flood (each send waits for its ok)" if args.rate == 0 else f"{args.rate:g} msg/s"
    print(
        f"{args.subscribers} subscribers in {ROOM}, {args.messages} messages at {rate}, {args.clients} client "
        f"processes, {args.runs} run(s) per scenario" + ("; median (min\N{EN DASH}max)" if args.runs > 1 else "")
    )
    print(f"hub {revision}, {info['nproc']} CPUs, Python {info['python']}")
    print(table(summaries, args.runs, args.markdown))
    print(
        "limits lifted on every hub: "
        + " ".join(f"{k}={v}" for k, v in LIFTED_LIMITS.items())
        + f"; HUB_LOG_LEVEL={HUB_ENV['HUB_LOG_LEVEL']}"
    )
    for name, summary in summaries.items():
        if "hub1_p50_ms" in summary:
            parts = []
            for i in range(SCENARIOS[name][1]):
                where = "the publisher's hub" if i == 0 else "through Redis"
                p50 = cell(summary[f"hub{i}_p50_ms"], "{:.1f}", args.runs)
                p99 = cell(summary[f"hub{i}_p99_ms"], "{:.1f}", args.runs)
                parts.append(f"hub{i} ({where}) p50 {p50} ms, p99 {p99} ms")
            print(f"{name} latency by subscriber's hub: " + "; ".join(parts))
    for name, rel in ratios(summaries).items():
        print(
            f"{name} / memory-1: deliveries/s x{rel.get('deliveries_per_s', float('nan')):.2f}, "
            f"hub CPU µs/delivery x{rel.get('hub_cpu_us_per_delivery', float('nan')):.2f}"
        )
    for name, runs in all_runs.items():
        for index, one in enumerate(runs):
            pace = one["publish_rate"]
            if args.rate and pace < 0.9 * args.rate:
                print(f"note: {name} run {index + 1}: the publisher reached only {pace:,.0f} msg/s of {args.rate:g}")
            for note in anomalies(one):
                print(f"PROBLEM: {name} run {index + 1}: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
