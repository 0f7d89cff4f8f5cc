#!/usr/bin/env python3
"""Slow readers of a conflating channel: what a reader that takes 200 frames/s gets from livedata, beside fast
readers, with conflation and the kernel's send buffer, with a fixed send buffer, and without conflation.

Configurations (each run starts its own `hub serve --plugins livedata` on 127.0.0.1, interleaved A B C A B C):

  conflate         HUB_LIVEDATA_CONFLATE=true, the kernel's autotuned send buffer (the defaults)
  conflate+sndbuf  HUB_LIVEDATA_CONFLATE=true, HUB_SEND_BUFFER_BYTES=16384 (a fixed SO_SNDBUF per socket)
  no-conflate      HUB_LIVEDATA_CONFLATE=false: every reader gets every tick, or is closed with 4009 once
                   HUB_SEND_QUEUE_MAX_FRAMES (the default 1000) frames wait for it

Load: the simulated market with --symbols symbols ticking every --interval s; --fast readers and --slow readers,
each subscribed to every symbol. A fast reader takes frames as fast as it can; a slow reader has SO_RCVBUF=4096
and websockets' max_queue=1, and takes one frame every 1/--slow-rate s. Every tick's age is its receive time
minus its `ts`; per symbol, gaps in `seq` are counted. Measured for --duration s after --warmup s.

    .venv/bin/python benchmarks/livedata.py --runs 1 --duration 3      # quick check, about 20 s
    .venv/bin/python benchmarks/livedata.py --runs 3 --markdown        # the default load, about 6 minutes
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import re
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import websockets
from harness import HUB_ENV, ROOT, Processes, cell, hub_revision, machine, start_hub, wait_ready
from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

from hub.bench.client import BenchError
from hub.bench.procstat import ProcessGroup
from hub.bench.server import http_get
from hub.protocol import SUBPROTOCOL

# name -> the hub's environment besides HUB_ENV and the workload's
CONFIGS: dict[str, dict[str, str]] = {
    "conflate": {"HUB_LIVEDATA_CONFLATE": "true"},
    "conflate+sndbuf": {"HUB_LIVEDATA_CONFLATE": "true", "HUB_SEND_BUFFER_BYTES": "16384"},
    "no-conflate": {"HUB_LIVEDATA_CONFLATE": "false"},
}
# HUB_ENV lifts the send queue limit for floods; here it keeps the hub's default, the point of no-conflate.
SEND_QUEUE_MAX_FRAMES = "1000"
SLOW_RCVBUF = 4096
CLOSE_4009 = 'hub_closes_total{code="4009"}'
METRIC_LINE = re.compile(r"^([a-z_]+(?:\{[^}]*\})?) (\S+)$", re.MULTILINE)


# ---- the readers ----------------------------------------------------------------------------------------------


@dataclass
class Window:
    """The measured interval, in time.time() seconds; nothing is recorded before ``start`` is set."""

    start: float = math.inf
    end: float = math.inf

    def holds(self, now: float) -> bool:
        return self.start <= now <= self.end


@dataclass
class ReaderStats:
    """What one reader got: ages (ms) and, per symbol, the first and last seq and the count in the window."""

    ages_ms: list[float] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)  # time.time() of each age, same order
    first_seq: dict[str, int] = field(default_factory=dict)  # in the window
    window_seq: dict[str, int] = field(default_factory=dict)  # the last in the window
    last_seq: dict[str, int] = field(default_factory=dict)  # the last at all
    in_window: dict[str, int] = field(default_factory=dict)
    stale: int = 0  # ticks whose seq was not above the last one of their symbol
    closed_after_s: float | None = None  # seconds after the load started, if the connection ended early
    close_code: int | None = None

    def record(self, data: dict[str, Any], now: float, window: Window) -> None:
        symbol, seq = str(data["symbol"]), int(data["seq"])
        last = self.last_seq.get(symbol)
        if last is not None and seq <= last:
            self.stale += 1
            return
        self.last_seq[symbol] = seq
        if not window.holds(now):
            return
        self.ages_ms.append((now - float(data["ts"])) * 1000)
        self.received_at.append(now)
        self.first_seq.setdefault(symbol, seq)
        self.window_seq[symbol] = seq
        self.in_window[symbol] = self.in_window.get(symbol, 0) + 1

    @property
    def received(self) -> int:
        return sum(self.in_window.values())

    @property
    def spanned(self) -> int:
        """Ticks published between the first and the last one received in the window, over all symbols."""
        return sum(self.window_seq[s] - self.first_seq[s] + 1 for s in self.first_seq)


async def open_reader(port: int, channels: list[str], slow: bool) -> ClientConnection:
    """A connection subscribed to every channel (the ok replies read at full speed)."""
    url = f"ws://127.0.0.1:{port}/ws"
    options: dict[str, Any] = {
        "subprotocols": [Subprotocol(SUBPROTOCOL)],
        "compression": None,
        "proxy": None,
        "ping_interval": None,  # a slow reader's pong would wait behind its backlog; the hub's own pings are answered
        "open_timeout": 20,
    }
    if slow:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)  # before connect: sets the window scale
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        # max_queue=1: websockets stops reading the socket while a frame waits unread
        ws = await websockets.connect(url, sock=sock, max_queue=1, close_timeout=0.2, **options)
    else:
        ws = await websockets.connect(url, close_timeout=1, **options)
    hello = orjson.loads(await ws.recv())
    if hello.get("op") != "hello":
        raise BenchError(f"expected hello, got {hello}")
    for request_id, channel in enumerate(channels, start=1):
        await ws.send(orjson.dumps({"op": "sub", "ch": channel, "id": request_id}).decode())
    pending = set(range(1, len(channels) + 1))
    while pending:
        frame = orjson.loads(await asyncio.wait_for(ws.recv(), 20))
        if frame.get("op") == "err":
            raise BenchError(f"sub refused: {frame}")
        if frame.get("op") == "ok":
            pending.discard(frame.get("id"))
    return ws


async def read(ws: ClientConnection, stats: ReaderStats, window: Window, load_start: float, pace: float) -> None:
    """Take frames until the connection ends: as fast as possible (pace 0), or one every ``pace`` seconds."""
    due = time.monotonic()
    try:
        while True:
            if pace:
                due += pace
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                due = max(due, time.monotonic() - pace)  # no catching up after a stall
            frame = orjson.loads(await ws.recv())
            now = time.time()
            op = frame.get("op")
            if op == "ev" and frame.get("type") == "livedata.tick":
                stats.record(frame["data"], now, window)
            elif op == "ping":
                await ws.send('{"op":"pong"}')
    except websockets.ConnectionClosed as exc:
        stats.closed_after_s = time.time() - load_start
        stats.close_code = exc.rcvd.code if exc.rcvd is not None else None


# ---- the hub's side --------------------------------------------------------------------------------------------


def scrape(port: int) -> dict[str, float]:
    _status, text = http_get(f"http://127.0.0.1:{port}/metrics")
    return {name: float(value) for name, value in METRIC_LINE.findall(text)}


@dataclass
class HubSamples:
    """Peaks over the loaded period, and when the 4009 close count rose (seconds after the load started)."""

    peak_queued: float = 0.0
    peak_rss: int = 0
    closes_4009_at: list[float] = field(default_factory=list)


async def sample_hub(port: int, group: ProcessGroup, load_start: float, out: HubSamples, every: float) -> None:
    closed = 0.0
    while True:
        with contextlib.suppress(OSError):
            metrics = await asyncio.to_thread(scrape, port)  # urllib blocks; the readers' loop must not
            out.peak_queued = max(out.peak_queued, metrics.get("hub_send_queue_frames", 0.0))
            now_closed = metrics.get(CLOSE_4009, 0.0)
            out.closes_4009_at += [round(time.time() - load_start, 1)] * int(now_closed - closed)
            closed = max(closed, now_closed)
        out.peak_rss = max(out.peak_rss, group.sample().rss_bytes)
        await asyncio.sleep(every)


# ---- one run -----------------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest rank; nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


async def drive(args: argparse.Namespace, port: int, pid: int) -> dict[str, Any]:
    channels = [f"livedata:{symbol}" for symbol in symbols(args.symbols)]
    fast = await asyncio.gather(*(open_reader(port, channels, slow=False) for _ in range(args.fast)))
    slow = await asyncio.gather(*(open_reader(port, channels, slow=True) for _ in range(args.slow)))
    load_start = time.time()
    window = Window()
    fast_stats = [ReaderStats() for _ in fast]
    slow_stats = [ReaderStats() for _ in slow]
    group = ProcessGroup([pid])
    samples = HubSamples()
    tasks = [
        asyncio.create_task(read(ws, st, window, load_start, 0.0)) for ws, st in zip(fast, fast_stats, strict=True)
    ]
    tasks += [
        asyncio.create_task(read(ws, st, window, load_start, 1 / args.slow_rate))
        for ws, st in zip(slow, slow_stats, strict=True)
    ]
    tasks.append(asyncio.create_task(sample_hub(port, group, load_start, samples, 0.5)))
    try:
        await asyncio.sleep(args.warmup)
        before, cpu_before = await asyncio.to_thread(scrape, port), group.sample().cpu_s
        window.start = time.time()
        await asyncio.sleep(args.duration)
        window.end = time.time()
        after, cpu_after = await asyncio.to_thread(scrape, port), group.sample().cpu_s
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for ws in [*fast, *slow]:
            with contextlib.suppress(TimeoutError, websockets.ConnectionClosed, OSError):
                await asyncio.wait_for(ws.close(), 2)
    elapsed = window.end - window.start

    def rate(name: str) -> float:
        return (after.get(name, 0.0) - before.get(name, 0.0)) / elapsed

    fast_ages = [age for st in fast_stats for age in st.ages_ms]
    slow_ages = [age for st in slow_stats for age in st.ages_ms]
    # the trend: what slow readers took in the window's last second (the ages grow while buffers fill)
    last_second = [
        age for st in slow_stats for age, at in zip(st.ages_ms, st.received_at, strict=True) if at >= window.end - 1
    ]
    fast_spanned = sum(st.spanned for st in fast_stats)
    return {
        "elapsed_s": elapsed,
        "ticks_per_s": rate("hub_livedata_ticks_published_total"),
        "fast_share": sum(st.received for st in fast_stats) / fast_spanned if fast_spanned else math.nan,
        "fast_lost": fast_spanned - sum(st.received for st in fast_stats),
        "fast_stale": sum(st.stale for st in fast_stats),
        "fast_closed": [[st.closed_after_s, st.close_code] for st in fast_stats if st.closed_after_s is not None],
        "fast_p50_ms": percentile(fast_ages, 50),
        "fast_p99_ms": percentile(fast_ages, 99),
        "slow_frames_per_s": sum(st.received for st in slow_stats) / elapsed / max(1, len(slow_stats)),
        "slow_share": sum(st.received for st in slow_stats) / max(1, sum(st.spanned for st in slow_stats)),
        "slow_p50_ms": percentile(slow_ages, 50),
        "slow_p99_ms": percentile(slow_ages, 99),
        "slow_max_ms": max(slow_ages, default=math.nan),
        "slow_end_p50_ms": percentile(last_second, 50),
        "slow_closed": [[st.closed_after_s, st.close_code] for st in slow_stats if st.closed_after_s is not None],
        "closes_4009": after.get(CLOSE_4009, 0.0),
        "closes_4009_at_s": samples.closes_4009_at,
        "hub_cpu_pct": (cpu_after - cpu_before) / elapsed * 100,
        "hub_peak_rss_mib": samples.peak_rss / 2**20,
        "peak_queued_frames": samples.peak_queued,
        "conflated_per_s": rate("hub_conflated_events_total"),
    }


def symbols(count: int) -> list[str]:
    return [f"S{index:02d}" for index in range(count)]


def hub_env(name: str, args: argparse.Namespace) -> dict[str, str]:
    # The hub's pings wait behind a slow reader's backlog, and so does its pong: no 4010 within a run.
    timeout = max(60.0, args.warmup + args.duration + 60)
    return {
        "HUB_SEND_QUEUE_MAX_FRAMES": SEND_QUEUE_MAX_FRAMES,
        "HUB_HEARTBEAT_TIMEOUT": f"{timeout:g}",
        "HUB_LIVEDATA_SYMBOLS": ",".join(symbols(args.symbols)),
        "HUB_LIVEDATA_INTERVAL": f"{args.interval:g}",
        "HUB_LIVEDATA_CHECK_INTERVAL": "0.2",
        **CONFIGS[name],
    }


def run_once(name: str, args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"hub-bench-livedata-{name.replace('+', '-')}-"))
    procs = Processes(workdir)
    try:
        hub = start_hub(procs, args.hub_bin, 0, None, hub_env(name, args), plugins="livedata")
        wait_ready(procs, [hub], 60)
        result = asyncio.run(asyncio.wait_for(drive(args, hub[1], hub[0].pid), args.warmup + args.duration + 120))
        if hub[0].poll() is not None:
            raise BenchError(f"the hub exited with {hub[0].returncode} during the run")
        return {"config": name, **result}
    finally:
        procs.close()
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


# ---- reporting -----------------------------------------------------------------------------------------------

COLUMNS = [
    ("ticks_per_s", "ticks/s", "{:,.0f}"),
    ("fast_share", "fast: share", "{:.4f}"),
    ("fast_p50_ms", "fast p50 ms", "{:.1f}"),
    ("fast_p99_ms", "fast p99 ms", "{:.1f}"),
    ("slow_frames_per_s", "slow: frames/s", "{:.1f}"),
    ("slow_p50_ms", "slow p50 ms", "{:,.0f}"),
    ("slow_p99_ms", "slow p99 ms", "{:,.0f}"),
    ("slow_end_p50_ms", "slow p50 ms, last s", "{:,.0f}"),
    ("slow_share", "slow: ticks/tick spanned", "{:.3f}"),
    ("closes_4009", "slow closed 4009", "{:.0f}"),
    ("hub_cpu_pct", "hub CPU %", "{:.0f}"),
    ("hub_peak_rss_mib", "hub RSS MiB", "{:.0f}"),
    ("peak_queued_frames", "peak queued", "{:,.0f}"),
    ("conflated_per_s", "conflated/s", "{:,.0f}"),
]


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, float] | None]:
    summary: dict[str, dict[str, float] | None] = {}
    for key, _title, _fmt in COLUMNS:
        values = [run[key] for run in runs if not math.isnan(run[key])]
        summary[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)} if values else None
    return summary


def table(summaries: dict[str, dict[str, dict[str, float] | None]], runs: int, markdown: bool) -> str:
    header = ["config", *(title for _key, title, _fmt in COLUMNS)]
    rows = [[name, *(cell(s[key], fmt, runs) for key, _t, fmt in COLUMNS)] for name, s in summaries.items()]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.rjust(widths[i]) if i else c.ljust(widths[i]) for i, c in enumerate(r)) for r in [header, *rows]
    )


def closes_line(name: str, runs: list[dict[str, Any]]) -> str | None:
    """When the hub closed slow readers with 4009, per run (seconds after the readers subscribed)."""
    parts = []
    for index, run in enumerate(runs, start=1):
        at = run["closes_4009_at_s"]
        if at:
            parts.append(f"run {index}: {len(at)} between {min(at):.1f} and {max(at):.1f} s")
    return f"{name}: 4009 closes (seen in /metrics, sampled every 0.5 s) " + "; ".join(parts) if parts else None


def problems(run: dict[str, Any]) -> list[str]:
    notes = []
    if run["fast_lost"] or run["fast_share"] != 1.0:
        notes.append(f"fast readers lost {run['fast_lost']} ticks (share {run['fast_share']:.4f})")
    if run["fast_closed"]:
        notes.append(f"fast readers closed (after s, code): {run['fast_closed']}")
    if run["fast_stale"]:
        notes.append(f"fast readers got {run['fast_stale']} ticks not above their symbol's last seq")
    return notes


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Slow readers of livedata (a conflating channel) beside fast readers: conflate, "
        "conflate+sndbuf, no-conflate. Starts and stops every hub it measures (127.0.0.1 only).",
    )
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated (default: all)")
    parser.add_argument("--symbols", type=int, default=10, help="symbols S00, S01, ... (default 10)")
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between ticks per symbol (0.01)")
    parser.add_argument("--fast", type=int, default=10, help="fast readers (default 10)")
    parser.add_argument("--slow", type=int, default=10, help="slow readers (default 10)")
    parser.add_argument("--slow-rate", type=float, default=200.0, help="frames/s a slow reader takes (default 200)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds measured (default 30)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring (default 2)")
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs of each config (default 3)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--json-file", type=Path, help="write every run and the summaries as JSON")
    parser.add_argument("--hub-bin", default=str(ROOT / ".venv" / "bin" / "hub"), help="the hub console script")
    parser.add_argument("--keep", action="store_true", help="keep each run's working directory (hub log)")
    args = parser.parse_args()
    args.names = [name.strip() for name in args.configs.split(",") if name.strip()]
    for name in args.names:
        if name not in CONFIGS:
            parser.error(f"unknown config {name!r}; choose from {', '.join(CONFIGS)}")
    if min(args.symbols, args.fast, args.runs) < 1 or args.slow < 0 or args.symbols > 100:
        parser.error("--symbols (1-100), --fast and --runs must be positive, --slow not negative")
    if min(args.interval, args.slow_rate, args.duration) <= 0 or args.warmup < 0:
        parser.error("--interval, --slow-rate and --duration must be positive, --warmup not negative")
    if not Path(args.hub_bin).exists():
        parser.error(f"no hub console script at {args.hub_bin}; run scripts/setup")
    return args


def main() -> int:
    args = parse_args()

    def on_term(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    all_runs: dict[str, list[dict[str, Any]]] = {name: [] for name in args.names}
    failures: list[str] = []
    revision = hub_revision()
    started = time.monotonic()
    try:
        for run in range(args.runs):  # interleaved: a shared machine's drift spreads over every config
            for name in args.names:
                print(f"[{time.monotonic() - started:6.1f}s] {name} run {run + 1}/{args.runs} ...", file=sys.stderr)
                try:
                    result = run_once(name, args)
                except (BenchError, OSError, TimeoutError, websockets.InvalidHandshake) as exc:
                    failures.append(f"{name} run {run + 1} could not run: {exc!r}")
                    print(f"         FAILED: {exc!r}", file=sys.stderr)
                    continue
                all_runs[name].append(result)
                print(
                    f"         {result['ticks_per_s']:,.0f} ticks/s; fast share {result['fast_share']:.4f}, "
                    f"p99 {result['fast_p99_ms']:.1f} ms; slow {result['slow_frames_per_s']:.1f} frames/s, "
                    f"p50 {result['slow_p50_ms']:,.0f} ms; 4009 x{result['closes_4009']:.0f}",
                    file=sys.stderr,
                    flush=True,
                )
                failures += [f"{name} run {run + 1}: {note}" for note in problems(result)]
    except KeyboardInterrupt:
        print("interrupted; every process started was stopped", file=sys.stderr)
        return 130

    summaries = {name: summarize(runs) for name, runs in all_runs.items() if runs}
    info = machine()
    info["hub_revision"] = revision
    config = {
        key: getattr(args, key)
        for key in ("symbols", "interval", "fast", "slow", "slow_rate", "duration", "warmup", "runs")
    }
    config["hub_env"] = {**HUB_ENV, "HUB_SEND_QUEUE_MAX_FRAMES": SEND_QUEUE_MAX_FRAMES}
    config["configs"] = {name: CONFIGS[name] for name in args.names}
    if args.json_file is not None:
        document = {"config": config, "machine": info, "summaries": summaries, "runs": all_runs}
        args.json_file.write_text(json.dumps(document, indent=2) + "\n")
    print(
        f"{args.symbols} symbols every {args.interval:g} s; {args.fast} fast and {args.slow} slow readers "
        f"({args.slow_rate:g} frames/s, SO_RCVBUF {SLOW_RCVBUF}), each on every symbol; {args.duration:g} s "
        f"after {args.warmup:g} s warm-up; {args.runs} run(s)"
        + ("; median (min\N{EN DASH}max)" if args.runs > 1 else "")
    )
    print(f"hub {revision}, {info['nproc']} CPUs ({info.get('cpu', '?')}), Python {info['python']}")
    if summaries:
        print(table(summaries, args.runs, args.markdown))
    for name, runs in all_runs.items():
        line = closes_line(name, runs)
        if line:
            print(line)
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
