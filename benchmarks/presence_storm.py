#!/usr/bin/env python3
"""Filling one presence room: what N joiners of one chat room cost the hub, in CPU and in frames (issue 17).

Each fill starts its own `hub serve --plugins chat` on 127.0.0.1 (memory broker and SQLite, or `--redis` for a
private redis-server), with the rate and connection limits lifted. N clients then connect with the `hub.v1`
subprotocol as guests and `sub` to ONE room (`chat:storm`), --batch at a time: a batch's clients connect and
subscribe concurrently, and the next batch starts once every reply of the last one is in. Every client stays
subscribed. After the last reply the fill ends when no client has received a frame for --quiet s and every
client's view of the room size is N (or, failing that, after --settle s of quiet).

Before each fill, --warmup clients join another room and leave, so the hub's code paths have run once.
Measured per fill: the hub's CPU from the first connect to the end, per joiner (the run time of its threads
from /proc/<pid>/task/*/schedstat, in ns; /proc/<pid>/stat's 10 ms ticks are the check); every frame received
by every client, by kind (hello, reply, joined, left, presence count, other), and their payload bytes; the
wall time from the first connect to the last frame; the client processes' own CPU (they share the machine's
cores with the hub: a client process near 100 % of a core bounds the wall time, not the hub's CPU).

A client's view of the room size is its `sub` reply's `presence_count` (else the length of its `presence`
list), +1 per `<ns>.joined` of a client not in that list, -1 per `<ns>.left`, and the `count` of a
`<ns>.presence` event.

    .venv/bin/python benchmarks/presence_storm.py --sizes 100,250 --runs 1             # quick check, seconds
    .venv/bin/python benchmarks/presence_storm.py --runs 3 --markdown                  # 100..2,000 joiners
    .venv/bin/python benchmarks/presence_storm.py --sizes 10000 --run-timeout 120      # the big room
    .venv/bin/python benchmarks/presence_storm.py --sizes 1000 --runs 0 \\
        --profile benchmarks/profiles/presence-storm.folded                            # one fill under py-spy

--hub-bin picks the `hub` console script (another checkout's venv, for before/after); --hub-env KEY=VALUE adds
to the hub's environment (e.g. HUB_PRESENCE_LIST_LIMIT=100).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import multiprocessing
import multiprocessing.connection
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson
from harness import ROOT, Processes, machine, start_hub, start_redis, wait_ready

from hub.bench.client import BenchError
from hub.bench.procstat import ProcessGroup, cpu_seconds

ROOM = "chat:storm"
WARMUP_ROOM = "chat:warmup"
# Besides harness.HUB_ENV (rate limits lifted): one address opens every socket, heartbeats stay out of the
# measurement (a slow fill would otherwise count pings), and a client that falls behind is not closed (4009).
STORM_ENV = {
    "HUB_MAX_CONNECTIONS_PER_ADDRESS": "0",
    "HUB_HEARTBEAT_INTERVAL": "600",
    "HUB_HEARTBEAT_TIMEOUT": "1200",
    "HUB_SEND_QUEUE_MAX_BYTES": str(256 * 1024 * 1024),
}
MAX_JOINERS = 20_000
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
ANSWERS = {"join": "joined", "warm": "warmed", "stats": "stats", "stop": "stopped"}
KINDS = ("hello", "reply", "joined", "left", "presence", "ping", "error", "other")


# ---- the client processes --------------------------------------------------------------------------------------


def masked(opcode: int, payload: bytes) -> bytes:
    """One client frame (RFC 6455 §5.3: a client masks everything it sends)."""
    key = os.urandom(4)
    size = len(payload)
    mask = (key * (size // 4 + 1))[:size]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(size, "big")
    length = bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + size.to_bytes(2, "big")
    return bytes([0x80 | opcode]) + length + key + body


class Tally:
    """What one client process has received so far, over all its sockets."""

    def __init__(self) -> None:
        self.kinds = dict.fromkeys(KINDS, 0)
        self.bytes = 0
        self.last_recv = 0.0
        self.closes: dict[str, int] = {}
        self.errors: list[str] = []
        self.duplicates = 0  # joined events of clients already in the reply's list
        self.listed: list[int] = []  # the length of each reply's presence list
        self.counted: list[int] = []  # each reply's presence_count (absent before issue 17)


class Joiner(asyncio.Protocol):
    """One guest socket on a bare asyncio.Protocol with its own framing, so the clients cost the shared cores
    as little as possible: the server's frames are unmasked and uncompressed, most are only classified by their
    first bytes, and only replies (and presence counts) are decoded as JSON."""

    def __init__(self, tally: Tally, host: str, port: int, room: str = ROOM) -> None:
        self.tally = tally
        self.room = room
        self.key = base64.b64encode(os.urandom(16))
        self.request = (
            f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self.key.decode()}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: hub.v1\r\n\r\n"
        ).encode()
        self.buffer = bytearray()
        self.upgraded = False
        self.fragments = bytearray()
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.joined: asyncio.Future[None] = loop.create_future()
        self.view = -1  # the room size as this client knows it; -1 until its reply
        self.reply_ids: set[str] | None = None  # the reply's members, kept while later joins may repeat them

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(f"connection lost: {exc}")

    def _fail(self, reason: str) -> None:
        if not self.joined.done():
            self.joined.set_exception(BenchError(reason))
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        self.tally.last_recv = time.monotonic()
        buf = self.buffer
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).decode("latin-1").lower()
            accept = base64.b64encode(hashlib.sha1(self.key + WS_GUID).digest()).decode().lower()
            if (
                not head.startswith("http/1.1 101")
                or accept not in head
                or "sec-websocket-protocol: hub.v1" not in head
            ):
                self._fail(f"handshake refused: {head.splitlines()[0] if head else '?'}")
                return
            del buf[: end + 4]
            self.upgraded = True
        pos, size = 0, len(buf)
        while size - pos >= 2:
            first, second = buf[pos], buf[pos + 1]
            length, header = second & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, header = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, header = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if size - pos < header + length:
                break
            start, pos = pos + header, pos + header + length
            self.tally.bytes += length
            opcode = first & 0x0F
            if opcode in (0x1, 0x0):
                if first & 0x80 and not self.fragments:
                    self._text(buf, start, pos)
                else:
                    self.fragments += buf[start:pos]
                    if first & 0x80:
                        whole, self.fragments = self.fragments, bytearray()
                        self._text(whole, 0, len(whole))
            elif opcode == 0x9 and self.transport is not None:
                self.transport.write(masked(0xA, bytes(buf[start:pos])))
            elif opcode == 0x8:
                code = int.from_bytes(buf[start : start + 2], "big") if length >= 2 else 1005
                key = f"{code} {bytes(buf[start + 2 : pos]).decode(errors='replace')}".strip()
                self.tally.closes[key] = self.tally.closes.get(key, 0) + 1
                self._fail(f"closed by the hub: {key}")
                return
        del buf[:pos]

    def _text(self, buf: bytearray, start: int, end: int) -> None:
        kinds = self.tally.kinds
        if buf.startswith(b'{"op":"ev"', start, end):
            at = buf.find(b'"type":"', start, end) + 8
            event_type = bytes(buf[at : buf.find(b'"', at, end)])
            if event_type.endswith(b".joined"):
                kinds["joined"] += 1
                if self.reply_ids is not None:
                    at = buf.find(b'"client":"', at, end) + 10
                    if bytes(buf[at : buf.find(b'"', at, end)]).decode() in self.reply_ids:
                        self.tally.duplicates += 1
                        return
                self.view += 1
            elif event_type.endswith(b".left"):
                kinds["left"] += 1
                self.view -= 1
            elif event_type.endswith(b".presence"):
                kinds["presence"] += 1
                self.view = int(orjson.loads(bytes(buf[start:end]))["data"]["count"])
            else:
                kinds["other"] += 1
            return
        frame = orjson.loads(bytes(buf[start:end]))
        op = frame.get("op")
        if op == "hello":
            kinds["hello"] += 1
            self._send({"op": "sub", "ch": self.room, "id": 1})
        elif op == "ok" and frame.get("id") == 1:
            kinds["reply"] += 1
            data = frame.get("data") or {}
            members = data.get("presence") or []
            self.reply_ids = {member["client"] for member in members}
            self.tally.listed.append(len(members))
            count = data.get("presence_count")
            if isinstance(count, int):
                self.tally.counted.append(count)
            self.view = count if isinstance(count, int) else len(members)
            if not self.joined.done():
                self.joined.set_result(None)
        elif op == "ping":
            kinds["ping"] += 1
            self._send({"op": "pong"})
        elif op == "err":
            kinds["error"] += 1
            if len(self.tally.errors) < 5:
                self.tally.errors.append(f"{frame.get('code')}: {frame.get('msg')}")
            self._fail(f"error reply: {frame.get('code')}")
        else:
            kinds["other"] += 1

    def _send(self, frame: dict[str, Any]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(masked(0x1, orjson.dumps(frame)))


async def _join(tally: Tally, joiners: list[Joiner], host: str, port: int, count: int, timeout: float) -> list[str]:
    loop = asyncio.get_running_loop()
    for joiner in joiners:  # the batches before this one are in: later joins cannot be in their lists
        joiner.reply_ids = None
    batch: list[Joiner] = []

    async def one() -> None:
        _transport, joiner = await loop.create_connection(lambda: Joiner(tally, host, port), host, port)
        batch.append(joiner)
        await joiner.joined

    results = await asyncio.gather(*(asyncio.wait_for(one(), timeout) for _ in range(count)), return_exceptions=True)
    joiners.extend(batch)
    return [f"{type(result).__name__}: {result}" for result in results if isinstance(result, BaseException)]


def client_main(conn: Connection, host: str, port: int, timeout: float) -> None:
    """A client process: obeys ("warm", count), ("join", count), ("stats", room size) and ("stop",) from the
    coordinator, and answers each (``ANSWERS``)."""
    _raise_nofile(MAX_JOINERS + 100)
    asyncio.run(_serve(conn, host, port, timeout))


async def _serve(conn: Connection, host: str, port: int, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    tally = Tally()
    joiners: list[Joiner] = []
    stopped = loop.create_future()
    pending: set[asyncio.Task[None]] = set()

    async def join(count: int) -> None:
        errors = await _join(tally, joiners, host, port, count, timeout)
        conn.send(("joined", errors[:5], len(errors)))

    async def warm(count: int) -> None:
        """Joiners of another room, closed again: the hub's code paths run once before the measurement."""
        warm_tally, warmed = Tally(), []
        try:
            for _ in range(count):
                warmed.append(
                    (await loop.create_connection(lambda: Joiner(warm_tally, host, port, WARMUP_ROOM), host, port))[1]
                )
            await asyncio.wait_for(asyncio.gather(*(joiner.joined for joiner in warmed)), timeout)
        except (OSError, BenchError, TimeoutError) as exc:
            conn.send(("warmed", f"{type(exc).__name__}: {exc}"))
            return
        finally:
            for joiner in warmed:
                if joiner.transport is not None:
                    joiner.transport.close()
        conn.send(("warmed", ""))

    def command() -> None:
        while conn.poll():
            message = conn.recv()
            if message[0] in ("join", "warm"):
                task = loop.create_task((join if message[0] == "join" else warm)(message[1]))
                pending.add(task)
                task.add_done_callback(pending.discard)
            elif message[0] == "stats":
                correct = sum(1 for joiner in joiners if joiner.view == message[1])
                conn.send(("stats", _snapshot(tally), correct, len(joiners)))
            elif message[0] == "stop":
                if not stopped.done():
                    stopped.set_result(None)
                return

    loop.add_reader(conn.fileno(), command)
    try:
        await stopped
    finally:
        loop.remove_reader(conn.fileno())
        for joiner in joiners:
            if joiner.transport is not None:
                joiner.transport.abort()
        conn.send(("stopped",))


def _snapshot(tally: Tally) -> dict[str, Any]:
    return {
        "kinds": dict(tally.kinds),
        "bytes": tally.bytes,
        "last_recv": tally.last_recv,
        "closes": dict(tally.closes),
        "errors": list(tally.errors),
        "duplicates": tally.duplicates,
        "listed_max": max(tally.listed, default=0),
        "counted_max": max(tally.counted, default=0),
        "listed_last": tally.listed[-1] if tally.listed else 0,
    }


def _raise_nofile(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


# ---- the coordinator ---------------------------------------------------------------------------------------


@dataclass
class Fill:
    """One fill of one room: what it cost and what the clients received."""

    size: int
    run: int
    joined: int = 0
    hub_cpu_s: float = 0.0  # the hub's threads' run time (schedstat, ns)
    hub_cpu_ticks_s: float = 0.0  # utime + stime from /proc/<pid>/stat (10 ms ticks), the check
    client_cpu_s: float = 0.0
    client_busy: float = 0.0  # the busiest client process's CPU / the fill's wall time
    wall_s: float = 0.0  # first connect to last frame received
    joins_wall_s: float = 0.0  # first connect to the last batch's last reply
    frames: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    views_correct: int = 0
    duplicates: int = 0
    listed_max: int = 0
    counted_max: int = 0
    hub_rss_mib: float = 0.0
    redis_cpu_s: float = 0.0  # --redis: the redis-server's CPU over the fill (10 ms ticks)
    load_average: float = 0.0  # the machine's 1-minute load average at the end (a shared machine's noise)
    failure: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def us_per_joiner(self) -> float:
        return self.hub_cpu_s / self.size * 1e6


class Clients:
    """The client processes of one fill; ``stop`` ends them whatever happened."""

    def __init__(self, count: int, port: int, timeout: float) -> None:
        context = multiprocessing.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs: list[multiprocessing.process.BaseProcess] = []
        for _ in range(count):
            parent, child = context.Pipe()
            proc = context.Process(target=client_main, args=(child, "127.0.0.1", port, timeout), daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self.procs if proc.pid is not None]

    def ask(self, messages: list[tuple[Any, ...] | None], timeout: float) -> list[tuple[Any, ...]]:
        """Send one message to each process (None: skip it) and wait for each one's answer."""
        waiting: dict[Connection, int] = {}
        expected: dict[Connection, str] = {}
        for conn, message in zip(self.conns, messages, strict=True):
            if message is not None:
                conn.send(message)
                waiting[conn] = len(waiting)
                expected[conn] = ANSWERS[message[0]]
        answers: list[tuple[Any, ...]] = [()] * len(waiting)
        deadline = time.monotonic() + timeout
        while waiting:
            left = deadline - time.monotonic()
            ready = multiprocessing.connection.wait(list(waiting), timeout=max(0.0, left))
            if not ready:
                raise BenchError(f"a client process did not answer within {timeout:.0f} s")
            for ready_conn in ready:
                assert isinstance(ready_conn, Connection)
                conn = ready_conn
                try:
                    answer = conn.recv()
                except EOFError as exc:
                    raise BenchError("a client process died") from exc
                if answer[0] == expected[conn]:  # else the late answer of an abandoned request
                    answers[waiting.pop(conn)] = answer
        return answers

    def stop(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(("stop",))
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for conn in self.conns:
            conn.close()


def run_seconds(pid: int) -> float:
    """CPU time of a process's live threads in nanoseconds (/proc/<pid>/task/*/schedstat), so the small fills
    are not measured in /proc/<pid>/stat's 10 ms ticks. A thread that exits takes its time with it; the ticks
    are kept as a check (``Fill.problems``)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total


def fill(args: argparse.Namespace, size: int, run: int, profile: Path | None = None) -> Fill:
    result = Fill(size, run)
    workdir = Path(tempfile.mkdtemp(prefix="presence-storm-"))
    procs = Processes(workdir)
    clients: Clients | None = None
    spy: subprocess.Popen[bytes] | None = None
    try:
        redis_url, redis_pids = None, []
        if args.redis:
            redis_proc, redis_url = start_redis(procs, args.redis_server)
            redis_pids = [redis_proc.pid]
        hub = start_hub(procs, args.hub_bin, 0, redis_url, hub_env(args))
        wait_ready(procs, [hub], args.ready_timeout)
        hub_group = ProcessGroup([hub[0].pid])
        clients = Clients(args.client_procs, hub[1], args.batch_timeout)
        clients.ask([("stats", size)] * args.client_procs, 30)  # every client process is up
        if profile is not None:
            spy = start_py_spy(args, hub[0].pid, profile)
        result = measure(args, size, run, hub_group, clients, redis_pids)
        if spy is not None:
            stop_py_spy(spy, profile)
            spy = None
    except BenchError as exc:
        result.failure = str(exc)
    finally:
        if spy is not None:
            spy.kill()
            spy.wait()
        # The hub first, at once: closing N subscribed sockets in front of it would make it announce N leaves
        # to everyone left (another O(N^2) after the measurement).
        for name, proc, _log in procs.popens:
            if name != "redis" and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if clients is not None:
            clients.stop()
        procs.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def measure(
    args: argparse.Namespace, size: int, run: int, hub: ProcessGroup, clients: Clients, redis_pids: list[int]
) -> Fill:
    result = Fill(size, run)
    workers = len(clients.conns)
    if args.warmup:
        warmed = clients.ask([("warm", args.warmup) if i == 0 else None for i in range(workers)], 60)[0]
        if warmed[1]:
            raise BenchError(f"the warm-up failed: {warmed[1]}")
    time.sleep(0.3)  # the warm-up's leaves announced
    hub_before = sum(run_seconds(pid) for pid in hub.pids)
    ticks_before, clients_before = hub.sample().cpu_s, [_cpu([pid]) for pid in clients.pids]
    redis_before = _cpu(redis_pids)
    start = time.monotonic()
    deadline = start + args.run_timeout
    try:
        for first in range(0, size, args.batch):
            count = min(args.batch, size - first)
            shares = [count // workers + (1 if i < count % workers else 0) for i in range(workers)]
            left = deadline - time.monotonic()
            try:
                answers = clients.ask(
                    [("join", share) if share else None for share in shares], min(left, args.batch_timeout + 10)
                )
            except BenchError:
                if time.monotonic() < deadline:
                    raise
                raise BenchError(f"--run-timeout {args.run_timeout:g} s: {result.joined} of {size} joined") from None
            failed = sum(answer[2] for answer in answers)
            result.joined += count - failed
            if failed:
                errors = [error for answer in answers for error in answer[1]]
                raise BenchError(f"{failed} of a batch of {count} did not join: {'; '.join(errors[:3])}")
            if time.monotonic() > deadline:
                raise BenchError(f"--run-timeout {args.run_timeout:g} s: {result.joined} of {size} joined")
        result.joins_wall_s = time.monotonic() - start
        # the traffic quiet for --quiet s and every view right, or quiet for --settle s
        while True:
            time.sleep(0.05)
            answers = clients.ask([("stats", size)] * workers, 30)
            last = max(answer[1]["last_recv"] for answer in answers)
            correct = sum(answer[2] for answer in answers)
            quiet = time.monotonic() - last
            if quiet >= args.quiet and (correct == size or quiet >= args.settle):
                break
            if time.monotonic() > deadline:
                raise BenchError(f"--run-timeout {args.run_timeout:g} s: still receiving after the last join")
    except BenchError as exc:
        result.failure = str(exc)
        answers = clients.ask([("stats", size)] * workers, 30)
        last, correct = max(answer[1]["last_recv"] for answer in answers), sum(answer[2] for answer in answers)
    sample = hub.sample()
    result.hub_cpu_s = sum(run_seconds(pid) for pid in hub.pids) - hub_before
    result.hub_cpu_ticks_s = sample.cpu_s - ticks_before
    if abs(result.hub_cpu_ticks_s - result.hub_cpu_s) > max(0.03, 0.1 * result.hub_cpu_ticks_s):
        result.problems.append(
            f"hub CPU {result.hub_cpu_s:.3f} s by its threads' schedstat, {result.hub_cpu_ticks_s:.2f} s by "
            "/proc/<pid>/stat (a thread exited during the fill?)"
        )
    result.hub_rss_mib = sample.rss_bytes / 2**20
    result.load_average = os.getloadavg()[0]
    result.redis_cpu_s = _cpu(redis_pids) - redis_before
    spent = [_cpu([pid]) - before for pid, before in zip(clients.pids, clients_before, strict=True)]
    result.client_cpu_s = sum(spent)
    result.wall_s = max(last, start) - start
    result.client_busy = max(spent) / result.wall_s if result.wall_s > 0 else 0.0
    result.views_correct = correct
    result.kinds = dict.fromkeys(KINDS, 0)
    for _tag, stats, _correct, _count in answers:
        for kind, value in stats["kinds"].items():
            result.kinds[kind] += value
        result.bytes += stats["bytes"]
        result.duplicates += stats["duplicates"]
        result.listed_max = max(result.listed_max, stats["listed_max"])
        result.counted_max = max(result.counted_max, stats["counted_max"])
        result.problems += [f"close {key} x{value}" for key, value in stats["closes"].items()]
        result.problems += [f"error reply {error}" for error in stats["errors"]]
    result.frames = sum(result.kinds.values())
    if result.views_correct != size and not result.failure:
        result.problems.append(f"{size - result.views_correct} clients' view of the room size is not {size}")
    return result


def hub_env(args: argparse.Namespace) -> dict[str, str]:
    env = dict(STORM_ENV)
    if args.loop:
        env["HUB_LOOP"] = args.loop
    for item in args.hub_env:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("HUB_"):
            raise SystemExit(f"--hub-env {item!r}: expected HUB_NAME=VALUE")
        env[key] = value
    return env


def start_py_spy(args: argparse.Namespace, pid: int, out: Path) -> subprocess.Popen[bytes]:
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = [args.py_spy, "record", "--rate", str(args.profile_rate), "--format", "raw", "--nonblocking"]
    argv += ["--pid", str(pid), "--output", str(out)]
    spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    time.sleep(1.0)  # attached and sampling before the first join
    if spy.poll() is not None:
        stderr = spy.stderr.read().decode(errors="replace") if spy.stderr else ""
        raise BenchError(f"py-spy exited with {spy.returncode}: {stderr.strip()[-500:]}")
    return spy


def stop_py_spy(spy: subprocess.Popen[bytes], out: Path | None) -> None:
    spy.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
    try:
        spy.wait(timeout=60)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait()
        raise BenchError("py-spy did not finish within 60 s of SIGINT") from None
    if out is not None and not out.exists():
        raise BenchError(f"py-spy wrote no {out}")


# ---- reporting ---------------------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: list[float], fmt: str) -> str:
    text = fmt.format(median(values))
    if len(values) > 1 and min(values) != max(values):
        text += f" ({fmt.format(min(values))}\N{EN DASH}{fmt.format(max(values))})"
    return text


def report(results: list[Fill], sizes: list[int], markdown: bool) -> str:
    done = {size: [r for r in results if r.size == size and not r.failure] for size in sizes}
    base_size = 100 if done.get(100) else next((size for size in sizes if done[size]), None)
    base = median([r.us_per_joiner for r in done[base_size]]) if base_size is not None else float("nan")
    head = [
        "joiners",
        "runs",
        "hub CPU s",
        "hub CPU µs/joiner",
        f"÷ at {base_size}",
        "frames received",
        "frames/joiner",
        "MB received",
        "fill wall s",
        "client CPU s",
        "client busy",
        "views = N",
    ]
    rows = []
    for size in sizes:
        fills = done[size]
        if not fills:
            failures = [r.failure for r in results if r.size == size]
            rows.append([f"{size:,}", "FAILED", "; ".join(failures)[:200]] + [""] * (len(head) - 3))
            continue
        per = [r.us_per_joiner for r in fills]
        rows.append(
            [
                f"{size:,}",
                str(len(fills)),
                spread([r.hub_cpu_s for r in fills], "{:.2f}"),
                spread(per, "{:,.0f}"),
                f"x{median(per) / base:.2f}",
                spread([float(r.frames) for r in fills], "{:,.0f}"),
                f"{median([r.frames / size for r in fills]):,.1f}",
                f"{median([r.bytes / 1e6 for r in fills]):,.1f}",
                spread([r.wall_s for r in fills], "{:.2f}"),
                f"{median([r.client_cpu_s for r in fills]):.2f}",
                f"{median([r.client_busy for r in fills]) * 100:.0f} %",
                f"{min(r.views_correct for r in fills):,}/{size:,}",
            ]
        )
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" for _ in head) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    else:
        widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
        lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in [head, *rows]]
    kinds = []
    for size in sizes:
        if done[size]:
            fill_ = done[size][0]
            parts = ", ".join(f"{kind} {value:,}" for kind, value in fill_.kinds.items() if value)
            kinds.append(
                f"- {size:,} (run {fill_.run}): {parts}; joined events of members already listed {fill_.duplicates:,}; "
                f"longest presence list in a reply {fill_.listed_max:,}"
                + (f", largest presence_count {fill_.counted_max:,}" if fill_.counted_max else "")
                + f"; hub RSS {fill_.hub_rss_mib:.0f} MiB"
                + (f"; redis-server CPU {fill_.redis_cpu_s:.2f} s" if fill_.redis_cpu_s else "")
            )
    lines += ["", "Frames by kind (first run of each size):", *kinds]
    problems = [
        f"- {r.size:,} run {r.run}: {p}" for r in results for p in ([r.failure] if r.failure else []) + r.problems
    ]
    if problems:
        lines += ["", "PROBLEMS:", *problems]
    return "\n".join(lines)


def hub_revision_of(hub_bin: str) -> str:
    """The git commit of the checkout the ``hub`` script runs from (its venv's parent), with local changes."""
    checkout = Path(hub_bin).resolve().parent.parent.parent
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        git = ["git", "-C", str(checkout)]
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", "hub", "plugins"], capture_output=True, text=True, timeout=10
        )
        if commit.returncode == 0:
            changes = " +uncommitted changes in hub/ or plugins/" if dirty.stdout.strip() else ""
            return f"{commit.stdout.strip()}{changes} ({checkout})"
    return f"unknown ({checkout})"


def hub_loop(args: argparse.Namespace) -> str:
    """The event loop the hub will run (``auto`` resolved by the hub's own settings, in its own venv)."""
    python = Path(args.hub_bin).parent / "python"
    env = {key: value for key, value in os.environ.items() if not key.startswith("HUB_")}
    if args.loop:
        env["HUB_LOOP"] = args.loop
    code = "from hub.settings import HubSettings; print(HubSettings().resolved_loop())"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=30, env=env)
        if out.returncode == 0:
            return out.stdout.strip()
    return "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,250,500,1000,2000", help="joiners per fill (default 100..2000)")
    parser.add_argument("--runs", type=int, default=1, help="fills of every size, interleaved (default 1)")
    parser.add_argument("--batch", type=int, default=50, help="concurrent joins per batch (default 50)")
    parser.add_argument("--quiet", type=float, default=0.5, help="no frame for this long ends a fill, s (0.5)")
    parser.add_argument(
        "--settle", type=float, default=5.0, help="quiet this long ends a fill even if views are wrong, s (5)"
    )
    parser.add_argument("--warmup", type=int, default=50, help="joiners of another room before each fill (50)")
    parser.add_argument("--client-procs", type=int, default=1, help="client processes (default 1)")
    parser.add_argument("--batch-timeout", type=float, default=60.0, help="bound on one join, s (default 60)")
    parser.add_argument("--run-timeout", type=float, default=600.0, help="bound on one fill, s (default 600)")
    parser.add_argument("--ready-timeout", type=float, default=30.0, help="bound on the hub's start, s (30)")
    parser.add_argument("--hub-bin", default=str(ROOT / ".venv" / "bin" / "hub"), help="the hub console script")
    parser.add_argument("--hub-env", action="append", default=[], help="HUB_NAME=VALUE for the hub (repeatable)")
    parser.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), help="HUB_LOOP (default: the hub's)")
    parser.add_argument("--redis", action="store_true", help="the hub on a private redis-server")
    parser.add_argument("--redis-server", default="redis-server", help="the redis-server binary")
    parser.add_argument("--profile", type=Path, help="one more fill under py-spy, folded stacks to this file")
    parser.add_argument("--profile-size", type=int, default=1000, help="joiners of the profiled fill (1000)")
    parser.add_argument("--profile-rate", type=int, default=250, help="py-spy samples per second (250)")
    parser.add_argument("--py-spy", default=str(ROOT / ".venv" / "bin" / "py-spy"), help="the py-spy binary")
    parser.add_argument("--markdown", action="store_true", help="a Markdown table")
    parser.add_argument("--json-file", type=Path, help="every fill's numbers as JSON")
    args = parser.parse_args()
    sizes = [int(part) for part in args.sizes.split(",") if part.strip()]
    if not sizes or min(sizes) < 1 or max(sizes) > MAX_JOINERS or args.batch < 1 or args.client_procs < 1:
        parser.error(f"sizes 1..{MAX_JOINERS:,}, --batch and --client-procs at least 1")
    if args.profile is not None and not Path(args.py_spy).exists() and shutil.which(args.py_spy) is None:
        parser.error(f"--profile: no py-spy at {args.py_spy}")
    if args.redis and shutil.which(args.redis_server) is None:
        parser.error(f"--redis: no {args.redis_server} on PATH")
    _raise_nofile(MAX_JOINERS + 1000)  # the hub inherits it

    info = machine()
    load = os.getloadavg()
    print(
        f"hub {hub_revision_of(args.hub_bin)}, {hub_loop(args)} loop; {'redis' if args.redis else 'memory'} broker; "
        f"room {ROOM}; "
        f"batches of {args.batch}; {args.client_procs} client process(es); "
        f"{info.get('cpu', '?')}, {info['nproc']} CPUs, Python {info['python']}; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        flush=True,
    )
    print("hub environment: " + " ".join(f"{k}={v}" for k, v in hub_env(args).items()), flush=True)
    results: list[Fill] = []
    interrupted = False
    try:
        for run in range(1, args.runs + 1):
            for size in sizes:
                result = fill(args, size, run)
                results.append(result)
                status = f"FAILED: {result.failure}" if result.failure else "ok"
                print(
                    f"run {run} size {size:,}: hub CPU {result.hub_cpu_s:.2f} s "
                    f"({result.us_per_joiner:,.0f} µs/joiner), "
                    f"{result.frames:,} frames, wall {result.wall_s:.2f} s, client CPU {result.client_cpu_s:.2f} s, "
                    f"views {result.views_correct:,}/{size:,}, load average {result.load_average:.2f} [{status}]",
                    flush=True,
                )
        if args.profile is not None:
            profiled = fill(args, args.profile_size, 0, profile=args.profile)
            status = f"FAILED: {profiled.failure}" if profiled.failure else f"written to {args.profile}"
            print(f"profiled fill of {args.profile_size:,}: hub CPU {profiled.hub_cpu_s:.2f} s, {status}", flush=True)
    except KeyboardInterrupt:
        interrupted = True
    if results:
        print()
        print(report(results, sizes, args.markdown))
    if args.json_file is not None:
        args.json_file.write_text(json.dumps([asdict(r) for r in results], indent=1))
    failed = interrupted or any(r.failure for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
