#!/usr/bin/env python3
"""draw.put against chat.send: the hub's CPU per `draw.put` of one 200-point stroke, and per `chat.send` of a
64-byte text, both with the durable write (SQLite store), on the same hub in the same session (issue 17).

Each run starts its own `hub serve --plugins chat,draw` on a free 127.0.0.1 port (SQLite store in a temporary
directory) with the rate limits lifted (hub.bench.server.LIFTED_LIMITS, and draw's own HUB_DRAW_*_RATE/_BURST);
every other limit of draw (points per path, bytes per object, objects and bytes per board) keeps its default.
--connections publishers (10) each flood --requests requests (300), every one waiting for its `ok` before the
next, to a room of their own (`chat:bench-<i>`, `draw:bench-<i>-<k>`: a new board every 500 strokes, so a board
never fills up), with --subscribers S (0; e.g. `0,10`) connections following each publisher's rooms. Within a run
the phases alternate (chat, draw for each S; the order flips every other run) after a warm-up of both types, so a
shared machine's drift spreads over both. Measured per phase: the hub's CPU from the first request to the last
reply (and, with subscribers, the last event), as the run time of its threads from /proc/<pid>/task/*/schedstat in
ns, per request; requests/s. The clients' CPU does not count (they run in this process).

A stroke is what the demo's client (plugins/draw/static/shapes.js) sends for a freehand path: kind `path`, a
random 21-character id, version 1, a random nonce, its box, the pen's style, and its points rounded to a tenth —
here --points (200) points of a wavy line.

    .venv/bin/python benchmarks/draw_put.py --runs 1 --requests 100                 # quick check, ~15 s
    .venv/bin/python benchmarks/draw_put.py --runs 3 --markdown                     # the default load
    .venv/bin/python benchmarks/draw_put.py --runs 3 --subscribers 0,1,10 --markdown
    .venv/bin/python benchmarks/draw_put.py --runs 3 --checkout base=/tmp/base --checkout new=. --markdown
    .venv/bin/python benchmarks/draw_put.py --runs 0 --profile benchmarks/profiles/draw-put.folded

--checkout LABEL=PATH (repeatable) runs the hub of another checkout (its code on PYTHONPATH, with --python, this
venv's interpreter by default), interleaved with the others in every run: base, new, base, new, ... for A/B.
--hub-bin runs one `hub` console script instead (another checkout's venv). --profile records one draw.put flood
(after a chat flood and a warm-up) with py-spy into a folded (raw) file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import shutil
import signal
import statistics
import string
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import websockets
from harness import HUB_ENV, ROOT, Processes, machine
from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

from hub.bench.client import BenchError
from hub.bench.procstat import descendants
from hub.bench.server import free_port, http_get, tail

SUBPROTOCOL = "hub.v1"
DRAW_ENV = {
    f"HUB_DRAW_{kind}_{what}": "1000000"
    for kind in ("PUT", "DELETE", "CLEAR", "CURSOR", "STROKE")
    for what in ("RATE", "BURST")
}
QUIET_ENV = {"HUB_HEARTBEAT_INTERVAL": "600", "HUB_HEARTBEAT_TIMEOUT": "1200", "HUB_MAX_CONNECTIONS_PER_ADDRESS": "0"}
STROKES_PER_BOARD = 500  # default limits: 2,000 objects and 2 MiB per board; a 200-point stroke is ~2.6 KB
TEXT = "x" * 64
ID_ALPHABET = string.ascii_letters + string.digits + "_-"
KINDS = ("chat", "draw")
TIMES = "\N{MULTIPLICATION SIGN}"


# ---- one hub ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Build:
    """A hub to run: ``argv`` starts ``hub`` (with ``env`` added: PYTHONPATH for a checkout)."""

    label: str
    argv: list[str]
    env: dict[str, str]
    source: str


def builds_of(args: argparse.Namespace) -> list[Build]:
    if args.hub_bin and args.checkout:
        raise SystemExit("give --hub-bin or --checkout, not both")
    if args.hub_bin:
        return [Build("hub", [args.hub_bin], {}, args.hub_bin)]
    checkouts = args.checkout or [f"this={ROOT}"]
    found = []
    for spec in checkouts:
        label, sep, path = spec.partition("=")
        if not sep:
            label, path = Path(spec).name or spec, spec
        where = Path(path).resolve()
        if not (where / "hub" / "cli.py").exists():
            raise SystemExit(f"--checkout {spec}: {where} holds no hub/cli.py")
        argv = [args.python, "-c", "from hub.cli import main; main()"]
        found.append(Build(label, argv, {"PYTHONPATH": str(where)}, str(where)))
    return found


def start_hub(procs: Processes, build: Build, name: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    argv = [*build.argv, "serve", "--host", "127.0.0.1", "--port", str(port), "--plugins", "chat,draw"]
    argv += ["--data-dir", str(procs.workdir / f"{name}-data")]
    env = {key: value for key, value in os.environ.items() if not key.startswith("HUB_") or key == "HUB_LOOP"}
    env.pop("PYTHONPATH", None)
    env.update({**HUB_ENV, **DRAW_ENV, **QUIET_ENV, **build.env})
    proc = procs.spawn(name, argv, env)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise BenchError(f"{name} exited with {proc.returncode}:\n{tail(procs.workdir / f'{name}.log')}")
        with contextlib.suppress(OSError):
            if http_get(f"http://127.0.0.1:{port}/readyz", timeout=1)[0] == 200:
                return proc, port
        if time.monotonic() > deadline:
            raise BenchError(f"{name} was not ready within 60 s:\n{tail(procs.workdir / f'{name}.log')}")
        time.sleep(0.05)


def thread_cpu_seconds(pids: list[int]) -> float:
    """Run time of the processes' live threads, in seconds, from /proc/<pid>/task/*/schedstat (ns)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


# ---- the load ---------------------------------------------------------------------------------------------


def random_id() -> str:
    return "".join(random.choice(ID_ALPHABET) for _ in range(21))


def stroke(points: int, index: int) -> dict[str, Any]:
    """A freehand path as the demo sends it: a wavy line of ``points`` points, rounded to a tenth."""
    x0, y0 = random.uniform(0, 1500), random.uniform(0, 900)
    pts = [
        [round(x0 + 1.7 * i + random.uniform(-0.5, 0.5), 1), round(y0 + 40 * math.sin(i / 9) + random.random(), 1)]
        for i in range(points)
    ]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return {
        "kind": "path",
        "id": random_id(),
        "version": 1,
        "nonce": random.randrange(2**31),
        "z": float(index),
        "left": min(xs),
        "top": min(ys),
        "width": round(max(xs) - min(xs), 2),
        "height": round(max(ys) - min(ys), 2),
        "angle": 0,
        "scale_x": 1,
        "scale_y": 1,
        "stroke": "#1e1e1e",
        "stroke_width": 4,
        "fill": None,
        "opacity": 1,
        "points": pts,
    }


class Conn:
    """One /ws connection: requests answered through futures; events counted."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.next_id = 0
        self.events = 0
        self.events_wanted = 0
        self.all_events: asyncio.Future[None] | None = None
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, port: int) -> Conn:
        ws = await websockets.connect(
            f"ws://127.0.0.1:{port}/ws",
            subprotocols=[Subprotocol(SUBPROTOCOL)],
            compression=None,
            proxy=None,
            max_size=None,
            open_timeout=20,
            close_timeout=1,
        )
        hello = orjson.loads(await ws.recv())
        if hello.get("op") != "hello":
            raise BenchError(f"expected hello, got {hello}")
        return cls(ws)

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                frame = orjson.loads(raw)
                op = frame.get("op")
                if op in ("ok", "err"):
                    future = self.pending.pop(frame.get("id"), None)
                    if future is not None and not future.done():
                        if op == "ok":
                            future.set_result(frame.get("data"))
                        else:
                            future.set_exception(BenchError(f"{frame.get('code')}: {frame.get('msg')}"))
                elif op == "ev":
                    self.events += 1
                    done = self.all_events
                    if done is not None and self.events >= self.events_wanted and not done.done():
                        done.set_result(None)
                elif op == "ping":
                    await self.ws.send('{"op":"pong"}')
        for future in self.pending.values():
            if not future.done():
                future.set_exception(BenchError("the connection closed"))

    def expect(self, events: int) -> asyncio.Future[None]:
        """A future done once ``events`` more events have arrived."""
        self.events_wanted = self.events + events
        self.all_events = asyncio.get_running_loop().create_future()
        if events <= 0:
            self.all_events.set_result(None)
        return self.all_events

    async def request(self, frame: str, request_id: int) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        await self.ws.send(frame)
        return await future

    def take_id(self) -> int:
        self.next_id += 1
        return self.next_id

    async def close(self) -> None:
        with contextlib.suppress(TimeoutError, websockets.ConnectionClosed, OSError):
            await asyncio.wait_for(self.ws.close(), 2)
        self.reader.cancel()
        await asyncio.gather(self.reader, return_exceptions=True)


def frames(kind: str, publisher: int, count: int, points: int, tag: str) -> list[tuple[int, str]]:
    """The ``pub`` frames of one flood, built before it starts (ids from 1; the caller offsets them)."""
    out = []
    for i in range(count):
        if kind == "chat":
            ch, mtype, data = f"chat:{tag}-{publisher}", "chat.send", {"text": TEXT}
        else:
            ch, mtype = f"draw:{tag}-{publisher}-{i // STROKES_PER_BOARD}", "draw.put"
            data = {"gen": 0, "objects": [stroke(points, i)]}
        out.append((i, orjson.dumps({"op": "pub", "ch": ch, "type": mtype, "data": data, "id": 0}).decode()))
    return out


def rooms(kind: str, publisher: int, count: int, tag: str) -> list[str]:
    if kind == "chat":
        return [f"chat:{tag}-{publisher}"]
    return [f"draw:{tag}-{publisher}-{k}" for k in range(max(1, math.ceil(count / STROKES_PER_BOARD)))]


@dataclass
class Phase:
    kind: str
    subscribers: int
    requests: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    frame_bytes: int = 0

    @property
    def us_per_request(self) -> float:
        return self.cpu_s / self.requests * 1e6 if self.requests else math.nan


async def flood(port: int, pids: list[int], kind: str, args: argparse.Namespace, subscribers: int, tag: str) -> Phase:
    """One phase: publishers and their rooms' subscribers connect and subscribe, then the timed flood."""
    n, count = args.connections, args.requests
    publishers = [await Conn.open(port) for _ in range(n)]
    followers: list[list[Conn]] = [[await Conn.open(port) for _ in range(subscribers)] for _ in range(n)]
    try:
        for p, group in enumerate(followers):
            for conn in group:
                for room in rooms(kind, p, count, tag):
                    request_id = conn.take_id()
                    await conn.request(orjson.dumps({"op": "sub", "ch": room, "id": request_id}).decode(), request_id)
        built = [frames(kind, p, count, args.points, tag) for p in range(n)]
        size = sum(len(frame) for per in built for _, frame in per)
        waits = [conn.expect(count) for group in followers for conn in group]

        async def publish(conn: Conn, per: list[tuple[int, str]]) -> None:
            for _i, frame in per:  # (a text frame: the hub answers a binary one with an err)
                request_id = conn.take_id()
                await conn.request(frame[: -len('"id":0}')] + f'"id":{request_id}}}', request_id)

        start_cpu, start = thread_cpu_seconds(pids), time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(publish(c, per) for c, per in zip(publishers, built, strict=True))),
                               args.timeout)  # fmt: skip
        await asyncio.wait_for(asyncio.gather(*waits), args.timeout)
        wall, cpu = time.perf_counter() - start, thread_cpu_seconds(pids) - start_cpu
        return Phase(kind, subscribers, n * count, cpu, wall, size)
    finally:
        await asyncio.gather(*(c.close() for c in [*publishers, *(c for g in followers for c in g)]))


async def warm(port: int, args: argparse.Namespace) -> None:
    """Run both code paths once before anything is measured (imports, caches, the store's first writes)."""
    warm_args = argparse.Namespace(**{**vars(args), "connections": 2, "requests": 30})
    pids: list[int] = []
    for kind in KINDS:
        await flood(port, pids, kind, warm_args, 1, "warm")


# ---- runs -------------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    build: str
    run: int
    phases: list[Phase] = field(default_factory=list)


def one_run(args: argparse.Namespace, build: Build, run: int, profile: Path | None = None) -> RunResult:
    result = RunResult(build.label, run)
    workdir = Path(tempfile.mkdtemp(prefix="draw-put-"))
    procs = Processes(workdir)
    try:
        proc, port = start_hub(procs, build, f"hub-{build.label}")
        pids = descendants(proc.pid)
        asyncio.run(warm(port, args))
        order = KINDS if run % 2 == 0 else tuple(reversed(KINDS))
        for subscribers in args.subscribers:
            for kind in order:
                spy = None
                if profile is not None and kind == "draw":
                    spy = start_profile(proc.pid, profile)
                try:
                    phase = asyncio.run(flood(port, pids, kind, args, subscribers, f"r{run}s{subscribers}"))
                finally:
                    if spy is not None:
                        stop_profile(spy, profile)
                result.phases.append(phase)
                print(
                    f"  run {run} {build.label:>6} {kind} S={subscribers}: {phase.requests} requests in "
                    f"{phase.wall_s:.2f} s ({phase.requests / phase.wall_s:,.0f}/s), hub CPU {phase.cpu_s:.3f} s, "
                    f"{phase.us_per_request:.1f} µs/request",
                    file=sys.stderr,
                    flush=True,
                )
        return result
    finally:
        procs.close()
        shutil.rmtree(workdir, ignore_errors=True)


def start_profile(pid: int, out: Path) -> subprocess.Popen[bytes]:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise BenchError("py-spy is not installed (it is in the dev extras)")
    argv = [spy, "record", "--rate", "250", "--format", "raw", "--nonblocking", "--pid", str(pid), "-o", str(out)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # py-spy attaches
    return proc


def stop_profile(proc: subprocess.Popen[bytes], out: Path) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    print(f"  profile written to {out}", file=sys.stderr)


# ---- report -----------------------------------------------------------------------------------------------


def med(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def spread(values: list[float], fmt: str = "{:.1f}") -> str:
    text = fmt.format(med(values))
    if len(values) > 1 and min(values) != max(values):
        text += f" ({fmt.format(min(values))}\N{EN DASH}{fmt.format(max(values))})"
    return text


def revision(path: str) -> str:
    """A checkout's commit, and whether its hub/ or plugins/ differ from it."""
    if not Path(path).is_dir():
        return "a console script"
    git = ["git", "-C", path]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", "hub", "plugins"], capture_output=True, text=True
        ).stdout.strip()
        return commit + (" + uncommitted changes in hub/ or plugins/" if dirty else "")
    return "?"


def report(args: argparse.Namespace, builds: list[Build], results: list[RunResult]) -> str:
    lines: list[str] = []
    info = machine()
    lines.append(
        f"{info.get('cpu', '?')}, {info['nproc']} CPUs, Python {info['python']}; "
        f"{args.connections} publishers x {args.requests} requests each awaiting its ok, {args.points}-point "
        f"strokes, runs: {len(results) // max(len(builds), 1)}"
    )
    for build in builds:
        lines.append(f"- {build.label}: {build.source} ({revision(build.source)})")
    lines.append("")
    lines.append(
        "| build | subscribers/room | chat.send µs/req | draw.put µs/req | draw/chat | chat req/s | draw req/s |"
    )
    lines.append("|---|---|---|---|---|---|---|")
    medians: dict[tuple[str, int], float] = {}
    for build in builds:
        runs = [r for r in results if r.build == build.label]
        for s in args.subscribers:
            per = {kind: [p for r in runs for p in r.phases if p.kind == kind and p.subscribers == s] for kind in KINDS}
            chat_us = [p.us_per_request for p in per["chat"]]
            draw_us = [p.us_per_request for p in per["draw"]]
            ratios = [
                d.us_per_request / c.us_per_request
                for r in runs
                for c in r.phases
                for d in r.phases
                if c.kind == "chat" and d.kind == "draw" and c.subscribers == s == d.subscribers
            ]
            medians[(build.label, s)] = med(draw_us)
            lines.append(
                f"| {build.label} | {s} | {spread(chat_us)} | {spread(draw_us)} | "
                f"{TIMES}{med(draw_us) / med(chat_us):.2f} (per run {', '.join(f'{x:.2f}' for x in ratios)}) | "
                f"{med([p.requests / p.wall_s for p in per['chat']]):,.0f} | "
                f"{med([p.requests / p.wall_s for p in per['draw']]):,.0f} |"
            )
    if len(builds) > 1:
        lines.append("")
        base = builds[0].label
        for build in builds[1:]:
            for s in args.subscribers:
                ratio = medians[(build.label, s)] / medians[(base, s)]
                lines.append(f"draw.put µs/req {build.label}/{base}, S={s}: {TIMES}{ratio:.2f}")
    lines.append("")
    lines.append(f"target (issue 17): draw.put ≤ 2{TIMES} chat.send; draw/chat: median draw / median chat of one build")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=10, help="publisher connections (one room each)")
    parser.add_argument("--requests", type=int, default=300, help="requests per publisher per phase")
    parser.add_argument("--points", type=int, default=200, help="points per stroke")
    parser.add_argument(
        "--subscribers",
        type=lambda text: [int(x) for x in text.split(",")],
        default=[0],
        help="subscribers per room, comma-separated (a pair of phases each)",
    )
    parser.add_argument("--checkout", action="append", help="LABEL=PATH: a checkout's hub (repeatable; interleaved)")
    parser.add_argument("--python", default=sys.executable, help="the interpreter for --checkout")
    parser.add_argument("--hub-bin", help="a `hub` console script to run instead of a checkout")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds for one phase")
    parser.add_argument("--profile", type=Path, help="record the draw.put flood of one extra run with py-spy")
    parser.add_argument("--markdown", action="store_true", help="the report as markdown (the default: plain)")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    if args.seed is not None:
        random.seed(args.seed)
    builds = builds_of(args)
    # SIGTERM (a `timeout`, a CI job's end) unwinds like Ctrl-C, so each run's finally stops the hub it started.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    results: list[RunResult] = []
    try:
        for run in range(args.runs):
            for build in builds if run % 2 == 0 else list(reversed(builds)):
                results.append(one_run(args, build, run))
        if args.profile is not None:
            one_run(args, builds[-1], args.runs, profile=args.profile)
    except BenchError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    if results:
        text = report(args, builds, results)
        if not args.markdown:
            rows = [line.strip("| ").replace(" | ", "  ") for line in text.splitlines() if line != "|---" * 7 + "|"]
            text = "\n".join(rows)
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
