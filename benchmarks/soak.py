#!/usr/bin/env python3
"""Soak: hundreds of churning sockets against a real `hub serve` for minutes; do the hub's memory, file
descriptors and asyncio tasks stay bounded, and come back once the clients have left?

    .venv/bin/python benchmarks/soak.py                              # 300 sockets, 5 minutes, memory://
    .venv/bin/python benchmarks/soak.py --duration 1800 --redis      # 30 minutes on a private redis-server
    .venv/bin/python benchmarks/soak.py --sockets 20 --duration 6 --warmup 2 --sample-interval 0.5   # smoke

It starts `hub serve` (every built-in plugin, the hub's default limits, HUB_LOG_LEVEL=warning) on a free
127.0.0.1 port, with a fresh data directory, and nothing else runs against it. Then:

1. **Baseline**: one client touches every plugin (chat, draw, livedata, notifications, docedit) and leaves;
   once the hub's open file descriptors (/proc/<pid>/fd) and asyncio tasks (`hub_tasks` on /metrics) hold
   still, they are the idle hub's baseline.
2. **Load** for --duration seconds: --sockets slots, each a client that connects (half the time with the
   resume token of its previous guest identity), subscribes across the plugins (1-2 chat rooms, resuming with
   `since`; a draw board; a livedata symbol; its notifications and @all; a docedit document with a sync step
   1), acts about every --action-interval seconds (chat.send, chat.typing, presence, draw.cursor, draw.stroke,
   draw.put then draw.delete of its own object, notifications.send to itself, ping, and subscription churn:
   unsub one channel, sub another), and after a random lifetime (--lifetime MIN MAX) leaves: a close
   handshake, a TCP abort without a close frame, or unsub of everything then close; then it comes back.
   Every --sample-interval seconds the hub's RSS, fds, tasks and connections are sampled.
3. **Leave**: every client leaves; the hub must get back to 0 connections and to the baseline's fds and
   tasks within --settle-timeout seconds. With --redis, the hub's connections to Redis are counted apart
   (matched by port in /proc/<pid>/net/tcp): its pools keep a connection open once made, so they need only
   stay within --max-redis-connections.

Pass (exit 0) when all of: RSS drift from the first sample at or after --warmup to the last sample under load
is at most --max-rss-drift (10%); fds and tasks back to the baseline (plus --fd-slack / --task-slack, 0 by
default) and no connection left after the clients leave; no traceback in the hub's log; no `internal` error
reply; the hub alive throughout. Error replies and server closes by code are reported either way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import websockets
from harness import Processes, hub_revision, machine, redis_version, start_redis, wait_ready
from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

from hub.bench.client import BenchError
from hub.bench.procstat import cpu_seconds, rss_bytes
from hub.bench.server import free_port, http_get, hub_command, tail
from hub.protocol import SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX

PLUGINS = "chat,draw,livedata,notifications,docedit"
CHAT_ROOMS = 20
DRAW_BOARDS = 8
DOCS = 3
SYMBOLS = ("ACME", "GLOBX", "HOOLI", "INITECH", "STARK", "UMBRL")  # livedata's default simulated market
STEP1_EMPTY = "AAEA"  # a y-protocols sync step 1 with an empty state vector, base64 (docs/docedit.md §3)
EVENT_PREFIX = '{"op":"ev"'  # events are counted, never parsed: the client shares the cores with the hub
MiB = 1024 * 1024
# The broker's and the store's connection pools (64 each, hub/broker/redis.py and hub/store/redis.py) plus the
# broker's pub/sub connection and its probe: redis-py keeps a pooled connection open once it has been made.
REDIS_POOLS = 64 + 64 + 8


# ---- what the hub process looks like -------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the load started (negative: before it)
    phase: str  # baseline, load, leave
    rss_bytes: int
    fds: int  # every open file descriptor, Redis connections included
    redis_fds: int  # TCP connections to the --redis server (its clients' pools; bounded, never shrink)
    tasks: int
    connections: int
    client_sockets: int
    cpu_s: float  # the hub's user + system CPU since it started
    load1: float  # the machine's 1-minute load average (other work shares the cores)

    @property
    def own_fds(self) -> int:
        """The fds that must come back to the baseline: all but the Redis pools' connections."""
        return self.fds - self.redis_fds


@dataclass(frozen=True)
class HubProcess:
    pid: int
    port: int
    redis_port: int | None  # with --redis


def count_fds(pid: int, redis_port: int | None) -> tuple[int, int]:
    """(open fds, TCP connections to ``redis_port``): socket fds matched by inode to the process's
    /proc/<pid>/net/tcp and tcp6 tables, whose third column is the remote address."""
    sockets: set[str] = set()
    total = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        total += 1
        with contextlib.suppress(OSError):  # closed since the listing
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:["):
                sockets.add(link[len("socket:[") : -1])
    if redis_port is None:
        return total, 0
    to_redis = 0
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if fields[9] in sockets and int(fields[2].rpartition(":")[2], 16) == redis_port:
                    to_redis += 1
    return total, to_redis


def scrape(port: int) -> dict[str, float]:
    """The unlabelled samples of /metrics."""
    status, body = http_get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    if status != 200:
        raise BenchError(f"/metrics answered {status}")
    values: dict[str, float] = {}
    for line in body.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, _, value = line.partition(" ")
            values[name] = float(value)
    return values


async def sample(hub: HubProcess, t: float, phase: str, client_sockets: int) -> Sample:
    metrics = await asyncio.to_thread(scrape, hub.port)
    if "hub_tasks" not in metrics:
        raise BenchError("/metrics has no hub_tasks gauge (a hub older than this script?)")
    fds, redis_fds = count_fds(hub.pid, hub.redis_port)
    return Sample(
        round(t, 2),
        phase,
        rss_bytes(hub.pid),
        fds,
        redis_fds,
        int(metrics["hub_tasks"]),
        int(metrics.get("hub_connections", -1)),
        client_sockets,
        round(cpu_seconds(hub.pid), 2),
        os.getloadavg()[0],
    )


# ---- the clients ---------------------------------------------------------------------------------------------


@dataclass
class Stats:
    connects: int = 0
    connect_failures: int = 0
    leaves: Counter[str] = field(default_factory=Counter)  # close, abort, unsub+close
    actions: Counter[str] = field(default_factory=Counter)
    replies: int = 0
    events: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # err replies by code
    server_closes: Counter[int] = field(default_factory=Counter)  # closes the client did not start, by code
    recovered: Counter[str] = field(default_factory=Counter)  # chat resubscribes with since: true / false
    timeouts: int = 0
    problems: list[str] = field(default_factory=list)  # the first few, for the report
    open_sockets: int = 0

    def problem(self, text: str) -> None:
        if len(self.problems) < 20:
            self.problems.append(text)


class Session:
    """One connection: requests matched to replies by id, events counted, the hub's pings answered."""

    def __init__(self, ws: ClientConnection, hello: dict[str, Any], stats: Stats) -> None:
        self.ws = ws
        self.hello = hello
        self.stats = stats
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.subscribed: set[str] = set()
        self.leaving = False
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str, stats: Stats, resume: str | None) -> Session:
        protocols = [Subprotocol(SUBPROTOCOL)]
        if resume is not None:
            protocols.append(Subprotocol(TOKEN_SUBPROTOCOL_PREFIX + resume))
        ws = await websockets.connect(
            url, subprotocols=protocols, compression=None, ping_interval=None, max_size=2**22, open_timeout=20
        )
        try:
            hello = orjson.loads(await asyncio.wait_for(ws.recv(), 20))
        except BaseException:
            ws.transport.abort()
            raise
        if hello.get("op") != "hello":
            ws.transport.abort()
            raise BenchError(f"expected hello, got {str(hello)[:200]}")
        return cls(ws, hello["data"], stats)

    @property
    def user(self) -> str:
        return str(self.hello["user"]["user"])

    async def _read(self) -> None:
        stats = self.stats
        try:
            async for raw in self.ws:
                if isinstance(raw, str) and raw.startswith(EVENT_PREFIX):
                    stats.events += 1
                    continue
                frame = orjson.loads(raw)
                op = frame.get("op")
                if op == "ping":
                    await self.ws.send('{"op":"pong"}')
                elif op == "err" and frame.get("id") is None:
                    stats.errors[frame.get("code", "?")] += 1
                    stats.problem(f"err without id: {frame}")
                else:
                    future = self.pending.pop(frame.get("id"), None)
                    if future is not None and not future.done():
                        future.set_result(frame)
        except websockets.ConnectionClosed:
            pass
        finally:
            code = self.ws.close_code
            if not self.leaving and code is not None:
                stats.server_closes[code] += 1
                stats.problem(f"server closed {code} {self.ws.close_reason!r}")
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("closed before the reply"))

    async def request(self, frame: dict[str, Any], timeout: float = 20.0) -> dict[str, Any] | None:
        """The reply, or None if it was an error (counted by code) or did not come."""
        request_id = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        await self.ws.send(orjson.dumps({**frame, "id": request_id}).decode())
        try:
            reply = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            self.pending.pop(request_id, None)
            self.stats.timeouts += 1
            self.stats.problem(f"no reply within {timeout:.0f} s to {str(frame)[:120]}")
            return None
        self.stats.replies += 1
        if reply.get("op") == "err":
            code = str(reply.get("code"))
            self.stats.errors[code] += 1
            if code not in ("rate_limited",):
                self.stats.problem(f"err {code} {reply.get('msg')!r} to {str(frame)[:120]}")
            return None
        return reply

    async def sub(self, channel: str, since: dict[str, Any] | None = None) -> dict[str, Any] | None:
        frame: dict[str, Any] = {"op": "sub", "ch": channel}
        if since is not None:
            frame["since"] = since
        reply = await self.request(frame)
        if reply is not None:
            self.subscribed.add(channel)
        return reply

    async def unsub(self, channel: str) -> None:
        self.subscribed.discard(channel)
        await self.request({"op": "unsub", "ch": channel})

    async def pub(self, channel: str, message_type: str, data: Any) -> dict[str, Any] | None:
        return await self.request({"op": "pub", "ch": channel, "type": message_type, "data": data})

    async def leave(self, how: str) -> None:
        self.leaving = True
        if how == "unsub+close":
            for channel in sorted(self.subscribed):
                with contextlib.suppress(websockets.ConnectionClosed, ConnectionError):
                    await self.unsub(channel)
        if how == "abort":
            self.ws.transport.abort()  # no close frame: the hub finds out from the TCP connection alone
        else:
            with contextlib.suppress(websockets.ConnectionClosed, OSError):
                await asyncio.wait_for(self.ws.close(), 10)
            if self.ws.transport is not None and not self.ws.transport.is_closing():
                self.ws.transport.abort()
        with contextlib.suppress(Exception):  # the reader's end is all that is awaited here
            await asyncio.wait_for(self.reader, 10)
        self.stats.leaves[how] += 1


@dataclass
class Slot:
    """One of the --sockets clients, across its reconnects: its guest identity and chat positions."""

    index: int
    rng: random.Random
    resume: str | None = None
    chat_since: dict[str, dict[str, Any]] = field(default_factory=dict)  # room -> {"epoch", "offset"}
    object_seq: int = 0


def random_channel(rng: random.Random, user: str) -> str:
    kind = rng.choice(("chat", "chat", "draw", "livedata", "notifications", "docedit"))
    if kind == "chat":
        return f"chat:soak-{rng.randrange(CHAT_ROOMS)}"
    if kind == "draw":
        return f"draw:soak-{rng.randrange(DRAW_BOARDS)}"
    if kind == "livedata":
        return f"livedata:{rng.choice(SYMBOLS)}"
    if kind == "notifications":
        return rng.choice((f"notifications:{user}", "notifications:@all"))
    return f"docedit:soak-{rng.randrange(DOCS)}"


async def subscribe(session: Session, slot: Slot, channel: str) -> None:
    if channel in session.subscribed:
        return
    since = slot.chat_since.get(channel) if channel.startswith("chat:") and slot.rng.random() < 0.7 else None
    reply = await session.sub(channel, since)
    if reply is None:
        return
    data = reply.get("data") or {}
    if channel.startswith("chat:") and "epoch" in data:
        slot.chat_since[channel] = {"epoch": data["epoch"], "offset": data["offset"]}
        if since is not None:
            session.stats.recovered[str(data.get("recovered")).lower()] += 1
    elif channel.startswith("docedit:"):
        await session.pub(channel, "docedit.sync", {"m": STEP1_EMPTY})


async def act(session: Session, slot: Slot) -> None:
    """One action, picked at random among what this connection's subscriptions allow."""
    rng, stats = slot.rng, session.stats
    subs = sorted(session.subscribed)
    chats = [ch for ch in subs if ch.startswith("chat:")]
    boards = [ch for ch in subs if ch.startswith("draw:")]
    roll = rng.random()
    if roll < 0.25 and chats:
        stats.actions["chat.send"] += 1
        await session.pub(rng.choice(chats), "chat.send", {"text": f"soak {slot.index} {time.time():.3f}"})
    elif roll < 0.32 and chats:
        stats.actions["chat.typing"] += 1
        await session.pub(rng.choice(chats), "chat.typing", {"active": rng.random() < 0.7})
    elif roll < 0.40 and (chats or boards):
        stats.actions["presence"] += 1
        await session.request({"op": "presence", "ch": rng.choice(chats + boards)})
    elif roll < 0.62 and boards:
        stats.actions["draw.cursor"] += 1
        point = {"x": round(rng.uniform(0, 1000), 1), "y": round(rng.uniform(0, 700), 1)}
        await session.pub(rng.choice(boards), "draw.cursor", point)
    elif roll < 0.67 and boards:
        stats.actions["draw.stroke"] += 1
        points = [[round(rng.uniform(0, 500), 1), round(rng.uniform(0, 500), 1)] for _ in range(8)]
        await session.pub(
            rng.choice(boards), "draw.stroke", {"id": f"s{slot.index}x{slot.object_seq}", "points": points}
        )
    elif roll < 0.70 and boards:
        stats.actions["draw.put+delete"] += 1
        board = rng.choice(boards)
        slot.object_seq += 1
        object_id = f"soak{slot.index}x{slot.object_seq}x{rng.getrandbits(32):x}"
        rect = {"kind": "rect", "id": object_id, "version": 1, "nonce": rng.getrandbits(48), "left": 10, "top": 10}
        reply = await session.pub(board, "draw.put", {"gen": 0, "objects": [rect | {"width": 40, "height": 30}]})
        gen = ((reply or {}).get("data") or {}).get("gen", 0)
        deletion = {"id": object_id, "version": 2, "nonce": rng.getrandbits(48)}
        await session.pub(board, "draw.delete", {"gen": gen, "objects": [deletion]})
    elif roll < 0.73 and f"notifications:{session.user}" in session.subscribed:
        stats.actions["notifications.send"] += 1
        title = f"soak {slot.index}"
        await session.pub(f"notifications:{session.user}", "notifications.send", {"title": title, "ttl": 60})
    elif roll < 0.77:
        stats.actions["ping"] += 1
        await session.request({"op": "ping"})
    else:
        stats.actions["churn"] += 1
        if subs and (len(subs) > 2 or rng.random() < 0.5):
            await session.unsub(rng.choice(subs))
        await subscribe(session, slot, random_channel(rng, session.user))


async def live(session: Session, slot: Slot, until: float, stop: asyncio.Event, action_interval: float) -> None:
    rng = slot.rng
    rooms = rng.sample(range(CHAT_ROOMS), 2 if rng.random() < 0.5 else 1)
    first = [f"chat:soak-{room}" for room in rooms]
    if rng.random() < 0.7:
        first.append(f"draw:soak-{rng.randrange(DRAW_BOARDS)}")
    if rng.random() < 0.3:
        first.append(f"livedata:{rng.choice(SYMBOLS)}")
    if rng.random() < 0.4:
        first.append(f"notifications:{session.user}")
    if rng.random() < 0.2:
        first.append("notifications:@all")
    if rng.random() < 0.15:
        first.append(f"docedit:soak-{rng.randrange(DOCS)}")
    for channel in first:
        await subscribe(session, slot, channel)
    while not stop.is_set():
        wait = min(rng.expovariate(1 / action_interval), until - time.monotonic())
        if wait <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)
            return
        await act(session, slot)


async def run_slot(slot: Slot, url: str, stats: Stats, stop: asyncio.Event, args: argparse.Namespace) -> None:
    rng = slot.rng
    await asyncio.sleep(rng.uniform(0, args.ramp))  # spread the first connects
    while not stop.is_set():
        resume = slot.resume if rng.random() < 0.5 else None
        try:
            session = await Session.open(url, stats, resume)
        except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.ConnectionClosed, BenchError) as exc:
            stats.connect_failures += 1
            stats.problem(f"connect: {type(exc).__name__}: {exc}")
            await asyncio.sleep(1.0)
            continue
        stats.connects += 1
        stats.open_sockets += 1
        slot.resume = session.hello.get("resume") or slot.resume
        try:
            until = time.monotonic() + rng.uniform(*args.lifetime)
            await live(session, slot, until, stop, args.action_interval)
        except (websockets.ConnectionClosed, ConnectionError):
            pass  # the reader counted a close the client did not start
        except Exception as exc:  # task boundary: one client's bug is reported, and the slot carries on
            stats.problem(f"client {slot.index}: {type(exc).__name__}: {exc}")
        finally:
            how = rng.choices(("close", "abort", "unsub+close"), weights=(60, 25, 15))[0]
            await session.leave(how)
            stats.open_sockets -= 1
        if not stop.is_set():
            await asyncio.sleep(rng.uniform(0.05, 0.5))


async def prime(url: str) -> None:
    """One client touches every plugin once and leaves, so what a hub creates on first use is in the baseline."""
    stats = Stats()
    session = await Session.open(url, stats, None)
    slot = Slot(-1, random.Random(0))
    for channel in ("chat:soak-0", "draw:soak-0", f"livedata:{SYMBOLS[0]}", f"notifications:{session.user}"):
        await subscribe(session, slot, channel)
    await subscribe(session, slot, "docedit:soak-0")
    await session.pub("chat:soak-0", "chat.send", {"text": "soak baseline"})
    await session.pub("draw:soak-0", "draw.cursor", {"x": 1, "y": 1})
    await session.pub(f"notifications:{session.user}", "notifications.send", {"title": "soak baseline", "ttl": 60})
    await asyncio.sleep(1.5)  # a livedata tick or two
    await session.leave("unsub+close")
    if stats.errors or stats.problems:
        raise BenchError(f"the baseline client failed: {stats.problems or dict(stats.errors)}")


# ---- the run -------------------------------------------------------------------------------------------------


async def settle(hub: HubProcess, t0: float, phase: str, timeout: float, target: Sample | None) -> list[Sample]:
    """Sample every 0.5 s until fds (but Redis connections) and tasks hold still for 2 s (no target) or are back
    at the target's and no connection is left; or until the timeout. Returns the samples, the last one the
    result."""
    samples: list[Sample] = []
    deadline = time.monotonic() + timeout
    while True:
        now = await sample(hub, time.monotonic() - t0, phase, 0)
        samples.append(now)
        if target is None:
            recent = [s for s in samples if s.t >= now.t - 2.0]
            if now.t - samples[0].t >= 2.0 and len({(s.own_fds, s.tasks) for s in recent}) == 1:
                return samples
        elif now.connections == 0 and now.own_fds <= target.own_fds and now.tasks <= target.tasks:
            return samples
        if time.monotonic() > deadline:
            return samples
        await asyncio.sleep(0.5)


async def soak(args: argparse.Namespace, hub: HubProcess, alive: Any) -> dict[str, Any]:
    url = f"ws://127.0.0.1:{hub.port}/ws"
    await prime(url)
    t0 = time.monotonic()
    baseline_samples = await settle(hub, t0, "baseline", 30.0, None)
    baseline = baseline_samples[-1]
    print(
        f"baseline: RSS {baseline.rss_bytes / MiB:.1f} MiB, {baseline.own_fds} fds (+{baseline.redis_fds} to Redis), "
        f"{baseline.tasks} tasks",
        flush=True,
    )

    stats = Stats()
    stop = asyncio.Event()
    master = random.Random(args.seed)
    slots = [Slot(index, random.Random(master.getrandbits(64))) for index in range(args.sockets)]
    t0 = time.monotonic()
    client_cpu = time.process_time()
    tasks = [asyncio.create_task(run_slot(slot, url, stats, stop, args)) for slot in slots]
    samples: list[Sample] = []
    next_print = 0.0
    try:
        while (elapsed := time.monotonic() - t0) < args.duration:
            if not alive():
                raise BenchError("the hub exited during the load")
            now = await sample(hub, elapsed, "load", stats.open_sockets)
            samples.append(now)
            if elapsed >= next_print:
                next_print = elapsed + args.print_interval
                print(
                    f"t={elapsed:6.0f}s RSS {now.rss_bytes / MiB:6.1f} MiB  fds {now.own_fds:4d}"
                    + (f" +{now.redis_fds} to Redis" if hub.redis_port else "")
                    + f"  tasks {now.tasks:5d}  "
                    f"hub connections {now.connections:4d}  client sockets {now.client_sockets:4d}  "
                    f"connects {stats.connects}  events {stats.events}  errors {sum(stats.errors.values())}",
                    flush=True,
                )
            await asyncio.sleep(max(0.0, args.sample_interval - (time.monotonic() - t0 - elapsed)))
    finally:
        stop.set()
        done, pending = await asyncio.wait(tasks, timeout=60)
        for task in pending:
            task.cancel()
        for task in done:
            if task.exception() is not None:
                stats.problem(f"client slot failed: {task.exception()!r}")
    left_at = time.monotonic() - t0
    client_cpu = time.process_time() - client_cpu
    after_samples = await settle(hub, t0, "leave", args.settle_timeout, baseline)
    after = after_samples[-1]
    return {
        "baseline": baseline,
        "samples": baseline_samples + samples + after_samples,
        "load": samples,
        "after": after,
        "settle_s": round(after.t - left_at, 1),
        "client_cpu_cores": round(client_cpu / left_at, 2),
        "stats": stats,
    }


def verdict(args: argparse.Namespace, result: dict[str, Any], log_text: str) -> tuple[dict[str, Any], list[str]]:
    baseline: Sample = result["baseline"]
    after: Sample = result["after"]
    load: list[Sample] = result["load"]
    stats: Stats = result["stats"]
    steady = [s for s in load if s.t >= args.warmup]
    failures: list[str] = []
    numbers: dict[str, Any] = {}
    if not steady:
        failures.append(f"no sample at or after the warmup ({args.warmup:g} s): run longer")
    else:
        first, last = steady[0], steady[-1]
        drift = (last.rss_bytes - first.rss_bytes) / first.rss_bytes
        numbers.update(
            rss_first_steady_mib=round(first.rss_bytes / MiB, 1),
            rss_first_steady_t=first.t,
            rss_last_mib=round(last.rss_bytes / MiB, 1),
            rss_last_t=last.t,
            rss_drift=round(drift, 4),
            rss_max_mib=round(max(s.rss_bytes for s in load) / MiB, 1),
        )
        if drift > args.max_rss_drift:
            failures.append(f"RSS drift {drift:+.1%} > {args.max_rss_drift:.0%}")
    numbers.update(
        baseline_fds=baseline.own_fds,
        baseline_tasks=baseline.tasks,
        baseline_rss_mib=round(baseline.rss_bytes / MiB, 1),
        after_fds=after.own_fds,
        after_tasks=after.tasks,
        after_connections=after.connections,
        after_rss_mib=round(after.rss_bytes / MiB, 1),
        settle_s=result["settle_s"],
        max_fds=max((s.own_fds for s in load), default=0),
        baseline_redis_fds=baseline.redis_fds,
        max_redis_fds=max((s.redis_fds for s in load), default=0),
        after_redis_fds=after.redis_fds,
        max_tasks=max((s.tasks for s in load), default=0),
        max_connections=max((s.connections for s in load), default=0),
        client_cpu_cores=result["client_cpu_cores"],
    )
    if len(load) >= 2 and load[-1].t > load[0].t:
        numbers["hub_cpu_cores"] = round((load[-1].cpu_s - load[0].cpu_s) / (load[-1].t - load[0].t), 2)
        numbers["load1_mean"] = round(sum(s.load1 for s in load) / len(load), 2)
    if after.connections != 0:
        failures.append(f"{after.connections} connections still open after the clients left")
    if after.own_fds > baseline.own_fds + args.fd_slack:
        failures.append(f"fds {after.own_fds} after the clients left > baseline {baseline.own_fds} + {args.fd_slack}")
    if after.redis_fds > args.max_redis_connections:
        failures.append(f"{after.redis_fds} connections to Redis > {args.max_redis_connections}")
    if after.tasks > baseline.tasks + args.task_slack:
        failures.append(f"tasks {after.tasks} after the clients left > baseline {baseline.tasks} + {args.task_slack}")
    tracebacks = log_text.count("Traceback (most recent call last)")
    if tracebacks:
        failures.append(f"{tracebacks} traceback(s) in the hub's log")
    if stats.errors.get("internal"):
        failures.append(f"{stats.errors['internal']} 'internal' error replies")
    if stats.connects == 0:
        failures.append("no client ever connected")
    return numbers, failures


def report(args: argparse.Namespace, result: dict[str, Any], numbers: dict[str, Any], failures: list[str]) -> str:
    stats: Stats = result["stats"]
    lines = [
        "",
        f"soak: {args.sockets} sockets for {args.duration:g} s on {'redis' if args.redis else 'memory://'}, "
        f"plugins {PLUGINS}; samples every {args.sample_interval:g} s, steady state from t={args.warmup:g} s",
        f"clients: {stats.connects} connects ({stats.connect_failures} failed), leaves {dict(stats.leaves)}, "
        f"{stats.replies} replies, {stats.events} events, {stats.timeouts} timeouts",
        f"actions: {dict(stats.actions)}",
        f"chat resubscribes with since, recovered: {dict(stats.recovered)}",
        f"error replies: {dict(stats.errors) or 'none'}; server closes: {dict(stats.server_closes) or 'none'}",
        f"max under load: {numbers['max_connections']} connections, {numbers['max_fds']} fds, "
        f"{numbers['max_tasks']} tasks, RSS {numbers.get('rss_max_mib', '-')} MiB"
        + (f", {numbers['max_redis_fds']} connections to Redis" if args.redis else ""),
        f"CPU: hub {numbers.get('hub_cpu_cores', '-')} cores, this client {numbers['client_cpu_cores']} cores; "
        f"machine load average (1 min) {numbers.get('load1_mean', '-')} mean over the load, {os.cpu_count()} CPUs",
    ]
    if "rss_drift" in numbers:
        lines.append(
            f"RSS: first steady {numbers['rss_first_steady_mib']} MiB (t={numbers['rss_first_steady_t']:g} s), "
            f"last {numbers['rss_last_mib']} MiB (t={numbers['rss_last_t']:g} s): drift {numbers['rss_drift']:+.1%} "
            f"(limit {args.max_rss_drift:.0%}); baseline {numbers['baseline_rss_mib']} MiB, "
            f"after the clients left {numbers['after_rss_mib']} MiB"
        )
    lines.append(
        f"fds: baseline {numbers['baseline_fds']}, after {numbers['after_fds']}; tasks: baseline "
        f"{numbers['baseline_tasks']}, after {numbers['after_tasks']}; connections after {numbers['after_connections']}"
        f" (settled {numbers['settle_s']:g} s after the clients left)"
    )
    if args.redis:
        lines.append(
            f"connections to Redis (not in the fds above): baseline {numbers['baseline_redis_fds']}, "
            f"max {numbers['max_redis_fds']}, after {numbers['after_redis_fds']} (limit {args.max_redis_connections})"
        )
    for problem in stats.problems[:10]:
        lines.append(f"note: {problem}")
    lines += [f"FAIL: {failure}" for failure in failures] or ["PASS"]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=300, help="clients connected at once (each reconnects)")
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load")
    parser.add_argument("--warmup", type=float, default=60.0, help="steady state starts this many seconds in")
    parser.add_argument("--sample-interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--print-interval", type=float, default=30.0, help="seconds between progress lines")
    parser.add_argument("--lifetime", type=float, nargs=2, default=(5.0, 60.0), metavar=("MIN", "MAX"))
    parser.add_argument("--action-interval", type=float, default=1.5, help="mean seconds between a client's actions")
    parser.add_argument("--ramp", type=float, default=10.0, help="the first connects spread over this many seconds")
    parser.add_argument("--settle-timeout", type=float, default=60.0, help="bound on the return to the baseline")
    parser.add_argument("--max-rss-drift", type=float, default=0.10)
    parser.add_argument("--fd-slack", type=int, default=0)
    parser.add_argument("--task-slack", type=int, default=0)
    parser.add_argument(
        "--max-redis-connections",
        type=int,
        default=REDIS_POOLS,
        help="--redis: bound on the hub's connections to Redis, which its pools keep open once made",
    )
    parser.add_argument("--redis", action="store_true", help="run the hub on a private redis-server")
    parser.add_argument("--redis-server", default="redis-server", help="the redis-server binary for --redis")
    parser.add_argument("--hub-env", action="append", default=[], metavar="KEY=VALUE", help="hub setting; repeat")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", dest="json_file", type=Path, help="write samples and numbers here")
    args = parser.parse_args()
    if args.ramp > args.duration:
        args.ramp = args.duration / 2

    workdir = Path(tempfile.mkdtemp(prefix="hub-soak-"))
    procs = Processes(workdir)
    interrupted = False

    def on_signal(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        env = {key: value for key, value in os.environ.items() if not key.startswith("HUB_") or key == "HUB_LOOP"}
        env["HUB_LOG_LEVEL"] = "warning"
        for item in args.hub_env:
            key, _, value = item.partition("=")
            env[key] = value
        port = free_port()
        argv = [*hub_command(), "serve", "--host", "127.0.0.1", "--port", str(port), "--plugins", PLUGINS]
        argv += ["--data-dir", str(workdir / "data")]
        redis_port = None
        if args.redis:
            _redis_proc, redis_url = start_redis(procs, args.redis_server)
            argv += ["--redis", redis_url]
            redis_port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
        hub = procs.spawn("hub0", argv, env)
        wait_ready(procs, [(hub, port)], 60.0)
        print(f"hub pid {hub.pid} on 127.0.0.1:{port}: {' '.join(['hub', *argv[len(hub_command()) :]])}", flush=True)
        target = HubProcess(hub.pid, port, redis_port)
        result = asyncio.run(soak(args, target, lambda: hub.poll() is None))
        log_text = (workdir / "hub0.log").read_text(errors="replace")
        numbers, failures = verdict(args, result, log_text)
        if hub.poll() is not None:
            failures.append(f"the hub exited with {hub.returncode}")
        print(report(args, result, numbers, failures))
        if failures and "Traceback" in log_text:
            print("hub log (end):\n" + tail(workdir / "hub0.log", 40), file=sys.stderr)
        if args.json_file:
            info = {"machine": machine(), "hub_revision": hub_revision(), "argv": sys.argv[1:]}
            if args.redis:
                info["redis"] = redis_version(args.redis_server)
            document = {
                **info,
                "numbers": numbers,
                "failures": failures,
                # (not asdict: it rebuilds a Counter from (key, value) pairs, counting the pairs)
                "stats": {key: value for key, value in vars(result["stats"]).items()},
                "samples": [asdict(s) for s in result["samples"]],
            }
            args.json_file.write_text(json.dumps(document, indent=1) + "\n")
        return 1 if failures else 0
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted; the hub was stopped", file=sys.stderr)
        return 130
    finally:
        procs.close()
        if not interrupted:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
