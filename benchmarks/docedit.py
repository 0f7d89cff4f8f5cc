#!/usr/bin/env python3
"""Collaborative documents (docedit): how many small Yjs updates one document takes per second with readers
watching, how fast they reach the readers, and how long a late joiner and a cold hub take to sync 100 KB.

Each run starts its own `hub serve --plugins docedit` on 127.0.0.1 (SQLite store in a temporary directory), with
the hub's and docedit's rate limits lifted; runs are interleaved (throughput, sync, throughput, sync, ...).

  throughput  --writers clients each send --updates small inserts (one character or a short word at a random
              place in their replica, one `docedit.sync` update message each, at most W unanswered per
              writer, one load per W in --windows) to one document that --readers clients follow. Every
              client is a pycrdt replica that applies every `docedit.update` it gets. Measured: updates/s
              accepted (replies `applied`), send -> reader-receive latency (the event's `m` is the bytes the
              writer sent, so it is matched exactly), hub CPU per update; at the end every replica and a fresh
              sync from the hub must hold one text. Each load runs on /ws (the hub protocol, `docedit.sync` and
              `docedit.update`) and on /yjs/{doc} (--endpoints): there the clients are stock y-websocket
              WebsocketProviders in one Node process (YJS_CLIENTS, the repo's node_modules), a writer waiting while
              some client lags more than writers x W updates behind (y-websocket has no acks); hub CPU from the
              first insert until every client had every update; the text checked against a /ws sync.
  sync        two documents of ~--doc-chars characters: "blocks", built through the hub by 1,000 updates that
              each append 100 characters (pipelined); "typed", built locally by four pycrdt authors typing one
              character per transaction at random places, with backspaces (so the CRDT holds many small items
              from several clients), then sent to the hub as one chunked step 2. Measured: a late joiner's time
              from `sub` to the applied step 2 reply (connection already open; --joins per document), the step 2
              size, and a cold join: the first join after the hub was restarted, the document read from SQLite.

    .venv/bin/python benchmarks/docedit.py --runs 1 --updates 300 --joins 5   # quick check, about 15 s
    .venv/bin/python benchmarks/docedit.py --runs 3 --markdown                # the default load, about 2 min
    .venv/bin/python benchmarks/docedit.py --runs 3 --no-sync --updates 1000  # CPU per update, /ws and /yjs
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import websockets
from harness import HUB_ENV, ROOT, Processes, cell, hub_revision, machine, start_hub, wait_ready
from pycrdt import Doc, Text
from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

from hub.bench.client import BenchError
from hub.bench.procstat import ProcessGroup
from hub.protocol import SUBPROTOCOL
from hub_realtime_plugins.docedit.yprotocol import (
    SyncKind,
    b64decode,
    b64encode,
    parse_sync,
    step1,
    step2,
    update_message,
)

DOCEDIT_ENV = {"HUB_DOCEDIT_SYNC_RATE": "1000000", "HUB_DOCEDIT_SYNC_BURST": "1000000"}
PART_CHARS = 32768  # docs/docedit.md §5: longer base64 goes in parts
WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "it",
    "you",
    "that",
    "was",
    "for",
    "on",
    "are",
    "with",
    "as",
    "his",
    "they",
    "be",
    "at",
    "one",
    "have",
    "this",
    "from",
]
BLOCKS, BLOCK_CHARS = 1000, 100
TYPED_AUTHORS = 4


# ---- a hub client and a replica ------------------------------------------------------------------------------


class Conn:
    """One /ws connection: requests answered through futures, events handed to ``on_event`` with their receive
    time (time.monotonic()), pings answered."""

    def __init__(self, ws: ClientConnection, on_event: Callable[[dict[str, Any], float], None] | None) -> None:
        self.ws = ws
        self.on_event = on_event
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.next_id = 0
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, port: int, on_event: Callable[[dict[str, Any], float], None] | None = None) -> Conn:
        ws = await websockets.connect(
            f"ws://127.0.0.1:{port}/ws",
            subprotocols=[Subprotocol(SUBPROTOCOL)],
            compression=None,
            proxy=None,
            max_size=None,  # replies are not chunked: a 100 KB document's step 2 comes in one frame
            open_timeout=20,
            close_timeout=1,
        )
        hello = orjson.loads(await ws.recv())
        if hello.get("op") != "hello":
            raise BenchError(f"expected hello, got {hello}")
        return cls(ws, on_event)

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                now = time.monotonic()
                frame = orjson.loads(raw)
                op = frame.get("op")
                if op in ("ok", "err"):
                    future = self.pending.pop(frame["id"], None)
                    if future is not None and not future.done():
                        if op == "ok":
                            future.set_result(frame.get("data"))
                        else:
                            future.set_exception(BenchError(f"{frame.get('code')}: {frame.get('msg')}"))
                elif op == "ev" and self.on_event is not None:
                    self.on_event(frame, now)
                elif op == "ping":
                    await self.ws.send('{"op":"pong"}')
        for future in self.pending.values():
            if not future.done():
                future.set_exception(BenchError("the connection closed"))

    async def send(self, frame: dict[str, Any]) -> asyncio.Future[Any]:
        """Send a request; the future is its reply's data (BenchError for an err)."""
        self.next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        frame["id"] = self.next_id
        await self.ws.send(orjson.dumps(frame).decode())
        return future

    async def request(self, frame: dict[str, Any]) -> Any:
        return await (await self.send(frame))

    async def send_sync(self, channel: str, m: str, part: dict[str, Any] | None = None) -> asyncio.Future[Any]:
        data: dict[str, Any] = {"m": m} if part is None else {"m": m, "part": part}
        return await self.send({"op": "pub", "ch": channel, "type": "docedit.sync", "data": data})

    async def close(self) -> None:
        with contextlib.suppress(TimeoutError, websockets.ConnectionClosed, OSError):
            await asyncio.wait_for(self.ws.close(), 2)
        self.reader.cancel()
        await asyncio.gather(self.reader, return_exceptions=True)


class Replica:
    """A pycrdt copy of one document: applies every docedit.update; ``insert`` returns the update it made."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.ydoc: Doc[Any] = Doc()
        self.text = self.ydoc.get("content", type=Text)
        self.received = 0
        self._made: list[bytes] = []
        self.ydoc.observe(lambda event: self._made.append(event.update))
        self.conn: Conn | None = None

    def on_event(self, frame: dict[str, Any], _now: float) -> None:
        if frame.get("type") == "docedit.update" and frame.get("ch") == self.channel:
            self.received += 1
            self.apply(parse_sync(b64decode(frame["data"]["m"])).payload)

    def apply(self, update: bytes) -> None:
        self.ydoc.apply_update(update)
        self._made.clear()

    def insert(self, index: int, chunk: str) -> bytes:
        self.text.insert(index, chunk)
        update = self._made[-1]
        self._made.clear()
        return update

    async def attach(self, port: int, on_event: Callable[[dict[str, Any], float], None] | None = None) -> None:
        """Connect, subscribe, and apply the hub's step 2 (sub, then step 1 -> step 2)."""
        self.conn = await Conn.open(port, on_event or self.on_event)
        await self.join()

    async def join(self) -> int:
        """sub + step 1 -> step 2 applied, on an open connection; returns the step 2's size in bytes."""
        assert self.conn is not None
        await self.conn.request({"op": "sub", "ch": self.channel})
        reply = await (await self.conn.send_sync(self.channel, b64encode(step1(self.ydoc.get_state()))))
        message = parse_sync(b64decode(reply["m"]))
        if message.kind is not SyncKind.STEP2:
            raise BenchError(f"step 1 was answered with {message.kind!r}")
        self.apply(message.payload)
        return len(b64decode(reply["m"]))

    @property
    def content(self) -> str:
        return str(self.text)


def percentile(values: list[float], q: float) -> float:
    """Nearest rank; nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


# ---- throughput ------------------------------------------------------------------------------------------------


@dataclass
class Latencies:
    sent_at: dict[str, float] = field(default_factory=dict)  # base64 m -> send time
    ms: list[float] = field(default_factory=list)


async def write(replica: Replica, count: int, window: int, rng: random.Random, lat: Latencies) -> int:
    """Send ``count`` small inserts, at most ``window`` unanswered; returns the characters inserted."""
    assert replica.conn is not None
    slots = asyncio.Semaphore(window)
    futures: list[asyncio.Future[Any]] = []
    chars = 0
    for _ in range(count):
        await slots.acquire()
        chunk = rng.choice(WORDS) + " " if rng.random() < 0.5 else rng.choice("abcdefghijklmnopqrstuvwxyz")
        update = replica.insert(rng.randint(0, len(replica.text)), chunk)
        chars += len(chunk)
        m = b64encode(update_message(update))
        lat.sent_at[m] = time.monotonic()
        future = await replica.conn.send_sync(replica.channel, m)
        future.add_done_callback(lambda _f: slots.release())
        futures.append(future)
    for reply in await asyncio.gather(*futures):
        if reply != {"applied": True}:
            raise BenchError(f"an update was answered {reply}")
    return chars


async def throughput(args: argparse.Namespace, window: int, port: int, pid: int) -> dict[str, Any]:
    channel = "docedit:tput"
    lat = Latencies()
    readers = [Replica(channel) for _ in range(args.readers)]
    writers = [Replica(channel) for _ in range(args.writers)]

    def reader_event(replica: Replica) -> Callable[[dict[str, Any], float], None]:
        def on_event(frame: dict[str, Any], now: float) -> None:
            if frame.get("type") == "docedit.update":
                sent = lat.sent_at.get(frame["data"]["m"])
                if sent is not None:
                    lat.ms.append((now - sent) * 1000)
            replica.on_event(frame, now)

        return on_event

    for replica in readers:
        await replica.attach(port, reader_event(replica))
    for replica in writers:
        await replica.attach(port)
    everyone = [*readers, *writers]
    total = args.writers * args.updates
    group = ProcessGroup([pid])
    try:
        cpu_before, own_before = group.sample().cpu_s, time.process_time()
        started = time.monotonic()
        chars = await asyncio.gather(
            *(write(w, args.updates, window, random.Random(i), lat) for i, w in enumerate(writers))
        )
        accepted = time.monotonic()
        await wait_until(lambda: all(r.received >= total for r in everyone), 60, "every update at every replica")
        delivered = time.monotonic()
        cpu_after, own_after = group.sample().cpu_s, time.process_time()
        fresh = Replica(channel)
        await fresh.attach(port)
        everyone.append(fresh)
        texts = {r.content for r in everyone}
    finally:
        await asyncio.gather(*(r.conn.close() for r in everyone if r.conn is not None))
    return {
        "updates": total,
        "chars": sum(chars),
        "updates_per_s": total / (accepted - started),
        "delivered_s": delivered - started,
        "p50_ms": percentile(lat.ms, 50),
        "p99_ms": percentile(lat.ms, 99),
        "max_ms": max(lat.ms, default=math.nan),
        "latency_samples": len(lat.ms),
        "hub_cpu_us_per_update": (cpu_after - cpu_before) / total * 1e6,
        "hub_cpu_pct": (cpu_after - cpu_before) / (delivered - started) * 100,
        "client_cpu_pct": (own_after - own_before) / (delivered - started) * 100,
        "converged": len(texts) == 1 and len(texts.pop()) == sum(chars),
    }


# ---- /yjs: stock y-websocket clients in Node ----------------------------------------------------------------

# Run as `node --input-type=module -e YJS_CLIENTS URL DOC WRITERS READERS UPDATES WINDOW` from the repo root (its
# node_modules: yjs, y-websocket, ws). Every client is a stock WebsocketProvider; writers type like the /ws
# writers (a letter or a word and a space at a random place, one transaction and so one update each). y-websocket
# has no acks, so a writer waits while some client lags more than WRITERS x WINDOW updates behind. Lines out:
# {"ready"} once all are synced; {"started"} before the first insert; {"done", ...} when every client has every
# update and the texts agree (or after 120 s without progress).
YJS_CLIENTS = r"""
import WebSocket from "ws";
import * as Y from "yjs";
import { WebsocketProvider } from "y-websocket";

const [url, room, nWriters, nReaders, nUpdates, windowSize] = process.argv.slice(1);
const writers = Number(nWriters), readers = Number(nReaders), updates = Number(nUpdates), win = Number(windowSize);
const WORDS = ["the", "of", "and", "to", "in", "is", "it", "you", "that", "was", "for", "on", "are", "with"];
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
let seed = 1;
const random = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
let wake = [];
const notify = () => {
  const w = wake;
  wake = [];
  for (const f of w) f();
};
const latencies = [];
const clients = [];
// A client has writer w's k-th update once its state for w's clientID reaches w's clock after it: counted from
// state vectors, so it holds however the hub sends them (one frame each, or merged).
const advance = (client) => {
  const now = performance.now();
  for (const w of clients) {
    if (!w.writer || w === client) continue;
    const have = Y.getState(client.doc.store, w.doc.clientID);
    let seen = client.seen.get(w) ?? 0;
    while (seen < w.sent && w.clockAfter[seen] <= have) {
      if (!client.writer) latencies.push(now - w.sentAt[seen]);
      seen++;
    }
    client.received += seen - (client.seen.get(w) ?? 0);
    client.seen.set(w, seen);
  }
};
for (let i = 0; i < writers + readers; i++) {
  const doc = new Y.Doc();
  const provider = new WebsocketProvider(url, room, doc, { WebSocketPolyfill: WebSocket, disableBc: true });
  const text = doc.getText("content");
  const client = { doc, provider, text, writer: i < writers, sent: 0, received: 0, closes: [], seen: new Map() };
  client.clockAfter = [];
  client.sentAt = [];
  doc.on("update", (_update, origin) => {
    if (origin !== provider) return;
    advance(client);
    notify();
  });
  provider.on("connection-close", (event) => client.closes.push(event ? event.code : "local"));
  clients.push(client);
}
const until = async (predicate, ms) => {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => { wake.push(resolve); setTimeout(resolve, 50); });
  }
  return true;
};
if (!(await until(() => clients.every((c) => c.provider.synced), 20000))) {
  emit({ error: "not every client synced", closes: clients.map((c) => c.closes) });
  process.exit(1);
}
emit({ ready: true });
const total = () => clients.reduce((n, c) => n + c.sent, 0);
const lag = () => Math.max(...clients.map((c) => total() - c.sent - c.received));
const limit = writers * win;
emit({ started: true });
let chars = 0;
await Promise.all(
  clients
    .filter((c) => c.writer)
    .map(async (c) => {
      for (let k = 0; k < updates; k++) {
        while (lag() >= limit) await new Promise((resolve) => wake.push(resolve));
        const letter = "abcdefghijklmnopqrstuvwxyz"[Math.floor(random() * 26)];
        const chunk = random() < 0.5 ? WORDS[Math.floor(random() * WORDS.length)] + " " : letter;
        c.text.insert(Math.floor(random() * (c.text.length + 1)), chunk);
        chars += chunk.length;
        c.clockAfter.push(Y.getState(c.doc.store, c.doc.clientID));
        c.sentAt.push(performance.now());
        c.sent++;
        if (k % 16 === 15) await new Promise((resolve) => setImmediate(resolve));
      }
    }),
);
const accepted = performance.now();
const everyone = writers * updates;
const complete = await until(() => clients.every((c) => c.received === everyone - c.sent), 120000);
const texts = new Set(clients.map((c) => c.text.toString()));
latencies.sort((a, b) => a - b);
const rank = (q) => Math.min(latencies.length - 1, Math.max(0, Math.ceil((q / 100) * latencies.length) - 1));
const pick = (q) => (latencies.length ? latencies[rank(q)] : null);
emit({
  done: true, complete, updates: everyone, chars, text: clients[0].text.toString(), agree: texts.size === 1,
  closes: clients.map((c) => c.closes).flat(), latency_samples: latencies.length,
  p50_ms: pick(50), p99_ms: pick(99), max_ms: latencies.length ? latencies[latencies.length - 1] : null,
});
for (const c of clients) c.provider.destroy();
process.exit(0);
"""


async def yjs_throughput(args: argparse.Namespace, window: int, port: int, pid: int) -> dict[str, Any]:
    """The throughput load over /yjs/{doc} with stock y-websocket clients (YJS_CLIENTS in Node): the hub's CPU
    from the first insert until every client had every update, then the text checked against a /ws sync."""
    room = "tputyjs"
    node = shutil.which("node")
    if node is None:
        raise BenchError("the /yjs load needs Node.js and the repo's node_modules (npm ci)")
    proc = await asyncio.create_subprocess_exec(
        node,
        "--input-type=module",
        "-e",
        YJS_CLIENTS,
        f"ws://127.0.0.1:{port}/yjs",
        room,
        str(args.writers),
        str(args.readers),
        str(args.updates),
        str(window),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    group = ProcessGroup([pid])
    node_group = ProcessGroup([proc.pid])
    try:
        assert proc.stdout is not None
        lines: dict[str, dict[str, Any]] = {}
        marks: dict[str, tuple[float, float, float]] = {}
        while "done" not in lines:
            raw = await proc.stdout.readline()
            if not raw:
                assert proc.stderr is not None
                err = (await proc.stderr.read()).decode()[-2000:]
                raise BenchError(f"the y-websocket clients ended early: {lines} {err}")
            line = orjson.loads(raw)
            if "error" in line:
                raise BenchError(f"the y-websocket clients failed: {line}")
            key = next(iter(line))
            lines[key] = line
            if key in ("started", "done"):
                marks[key] = (time.monotonic(), group.sample().cpu_s, node_group.sample().cpu_s)
        await asyncio.wait_for(proc.wait(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    done = lines["done"]
    fresh = Replica(f"docedit:{room}")
    await fresh.attach(port)
    assert fresh.conn is not None
    await fresh.conn.close()
    (t0, cpu0, node0), (t1, cpu1, node1) = marks["started"], marks["done"]
    total = done["updates"]
    return {
        "updates": total,
        "chars": done["chars"],
        "updates_per_s": total / (t1 - t0),
        "delivered_s": t1 - t0,
        "p50_ms": done["p50_ms"] if done["p50_ms"] is not None else math.nan,
        "p99_ms": done["p99_ms"] if done["p99_ms"] is not None else math.nan,
        "max_ms": done["max_ms"] if done["max_ms"] is not None else math.nan,
        "latency_samples": done["latency_samples"],
        "hub_cpu_us_per_update": (cpu1 - cpu0) / total * 1e6,
        "hub_cpu_pct": (cpu1 - cpu0) / (t1 - t0) * 100,
        "client_cpu_pct": (node1 - node0) / (t1 - t0) * 100,
        "converged": bool(
            done["complete"]
            and done["agree"]
            and not done["closes"]
            and fresh.content == done["text"]
            and len(done["text"]) == done["chars"]
        ),
    }


# ---- sync of a 100 KB document ----------------------------------------------------------------------------------


def typed_document(target_chars: int, seed: int) -> tuple[bytes, int]:
    """~target_chars of text typed by four authors, one character per transaction, at random places, with
    backspaces; each author catches up with the others before each burst. Returns (state, transactions)."""
    rng = random.Random(seed)
    merged: Doc[Any] = Doc(client_id=1)
    merged_text = merged.get("content", type=Text)
    authors: list[Doc[Any]] = [Doc(client_id=100 + i) for i in range(TYPED_AUTHORS)]
    texts = [author.get("content", type=Text) for author in authors]
    transactions = 0
    while len(merged_text) < target_chars:
        index = rng.randrange(TYPED_AUTHORS)
        author, text = authors[index], texts[index]
        author.apply_update(merged.get_update(author.get_state()))
        pos = rng.randint(0, len(text))
        typed = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 40))) + " "
        for char in typed:
            text.insert(pos, char)
            pos += 1
            transactions += 1
            if rng.random() < 0.02 and pos > 5:  # a typo: backspace a few characters, then type on
                back = rng.randint(1, 5)
                del text[pos - back : pos]
                pos -= back
                transactions += 1
        merged.apply_update(author.get_update(merged.get_state()))
    return merged.get_update(), transactions


async def send_step2(conn: Conn, channel: str, state: bytes) -> None:
    text = b64encode(step2(state))
    chunks = [text[i : i + PART_CHARS] for i in range(0, len(text), PART_CHARS)]
    part_id = secrets.token_hex(4)
    for index, chunk in enumerate(chunks):
        await (await conn.send_sync(channel, chunk, {"id": part_id, "index": index, "count": len(chunks)}))


async def build_blocks(port: int, channel: str) -> tuple[Replica, float]:
    """1,000 appends of 100 characters through the hub, 32 unanswered at most; returns the replica and its s."""
    replica = Replica(channel)
    await replica.attach(port)
    assert replica.conn is not None
    rng = random.Random(7)
    slots = asyncio.Semaphore(32)
    futures = []
    started = time.monotonic()
    for _ in range(BLOCKS):
        await slots.acquire()
        block = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz      ") for _ in range(BLOCK_CHARS))
        m = b64encode(update_message(replica.insert(len(replica.text), block)))
        future = await replica.conn.send_sync(channel, m)
        future.add_done_callback(lambda _f: slots.release())
        futures.append(future)
    await asyncio.gather(*futures)
    return replica, time.monotonic() - started


async def timed_join(port: int, channel: str, expected: str) -> tuple[float, int]:
    """A late joiner on an open connection: seconds from sub to the applied step 2, and the step 2's bytes."""
    joiner = Replica(channel)
    joiner.conn = await Conn.open(port, joiner.on_event)
    try:
        started = time.monotonic()
        size = await joiner.join()
        elapsed = time.monotonic() - started
    finally:
        await joiner.conn.close()
    if joiner.content != expected:
        raise BenchError(f"a joiner of {channel} got {len(joiner.content)} characters, not {len(expected)}")
    return elapsed, size


async def build_and_join(args: argparse.Namespace, port: int, typed: bytes) -> dict[str, Any]:
    """Both documents built, then --joins late joiners each; returns per document and the expected texts."""
    blocks, build_s = await build_blocks(port, "docedit:blocks")
    typed_replica = Replica("docedit:typed")
    await typed_replica.attach(port)
    assert typed_replica.conn is not None
    typed_replica.apply(typed)
    await send_step2(typed_replica.conn, typed_replica.channel, typed)
    out: dict[str, Any] = {"blocks_build_s": build_s}
    try:
        for name, replica in (("blocks", blocks), ("typed", typed_replica)):
            times, sizes = [], set()
            for _ in range(args.joins):
                elapsed, size = await timed_join(port, replica.channel, replica.content)
                times.append(elapsed * 1000)
                sizes.add(size)
            out[name] = {"text": replica.content, "joins_ms": times, "step2_bytes": max(sizes)}
    finally:
        for conn in (blocks.conn, typed_replica.conn):
            if conn is not None:
                await conn.close()
    return out


async def cold_join(port: int, channel: str, expected: str) -> float:
    """The first join of ``channel`` on a freshly started hub, after a `docedit:@index` sub opened its store."""
    warm = await Conn.open(port)
    try:
        await warm.request({"op": "sub", "ch": "docedit:@index"})
        elapsed, _size = await timed_join(port, channel, expected)
    finally:
        await warm.close()
    return elapsed * 1000


def sync_run(args: argparse.Namespace, procs: Processes, typed: bytes) -> dict[str, Any]:
    hub = start_hub(procs, args.hub_bin, 0, None, DOCEDIT_ENV, plugins="docedit")
    wait_ready(procs, [hub], 60)
    built = asyncio.run(asyncio.wait_for(build_and_join(args, hub[1], typed), 300))
    result: dict[str, Any] = {"blocks_build_s": built["blocks_build_s"]}
    for name in ("blocks", "typed"):
        # restart: the document is not in memory, only in the store (SQLite) of the same data directory
        hub[0].terminate()
        hub[0].wait(timeout=15)
        (procs.workdir / "hub0.log").rename(procs.workdir / f"hub0-before-{name}.log")
        hub = start_hub(procs, args.hub_bin, 0, None, DOCEDIT_ENV, plugins="docedit")
        wait_ready(procs, [hub], 60)
        cold = asyncio.run(asyncio.wait_for(cold_join(hub[1], f"docedit:{name}", built[name]["text"]), 120))
        joins = built[name]["joins_ms"]
        result[name] = {
            "chars": len(built[name]["text"]),
            "step2_bytes": built[name]["step2_bytes"],
            "join_p50_ms": statistics.median(joins),
            "join_max_ms": max(joins),
            "cold_ms": cold,
        }
    return result


# ---- runs and reporting ---------------------------------------------------------------------------------------


def start_profile(args: argparse.Namespace, kind: str, pid: int) -> subprocess.Popen[bytes] | None:
    """With --profile PREFIX: py-spy records the hub during the load into PREFIX-<kind>.folded (the last run's)."""
    if args.profile is None:
        return None
    spy = str(Path(sys.executable).parent / "py-spy")
    out = f"{args.profile}-{kind}.folded"
    argv = [spy, "record", "--rate", "250", "--format", "raw", "--nonblocking", "--pid", str(pid), "-o", out]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profile(spy: subprocess.Popen[bytes] | None) -> None:
    if spy is not None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output when interrupted
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()


def run_once(kind: str, args: argparse.Namespace, typed: bytes) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"hub-bench-docedit-{kind}-"))
    procs = Processes(workdir)
    try:
        if kind != "sync":
            hub = start_hub(procs, args.hub_bin, 0, None, DOCEDIT_ENV, plugins="docedit")
            wait_ready(procs, [hub], 60)
            endpoint, _, window_text = kind.partition("-window-")
            load = throughput if endpoint == "ws" else yjs_throughput
            spy = start_profile(args, kind, hub[0].pid)
            try:
                result = asyncio.run(asyncio.wait_for(load(args, int(window_text), hub[1], hub[0].pid), 300))
            finally:
                stop_profile(spy)
        else:
            result = sync_run(args, procs, typed)
        for _name, proc, _log in procs.popens:
            if proc.poll() not in (None, 0, -15):
                raise BenchError(f"a hub exited with {proc.returncode} during the run")
        return result
    finally:
        procs.close()
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def stats(values: list[float]) -> dict[str, float] | None:
    values = [value for value in values if not math.isnan(value)]
    return {"median": statistics.median(values), "min": min(values), "max": max(values)} if values else None


TPUT_COLUMNS = [
    ("updates_per_s", "updates/s accepted", "{:,.0f}"),
    ("p50_ms", "p50 ms", "{:.1f}"),
    ("p99_ms", "p99 ms", "{:.1f}"),
    ("max_ms", "max ms", "{:.0f}"),
    ("hub_cpu_us_per_update", "hub CPU µs/update", "{:,.0f}"),
    ("hub_cpu_pct", "hub CPU %", "{:.0f}"),
    ("client_cpu_pct", "bench CPU %", "{:.0f}"),
]
SYNC_COLUMNS = [
    ("chars", "characters", "{:,.0f}"),
    ("step2_bytes", "step 2 bytes", "{:,.0f}"),
    ("join_p50_ms", "late join p50 ms", "{:.1f}"),
    ("join_max_ms", "late join max ms", "{:.1f}"),
    ("cold_ms", "cold join ms", "{:.1f}"),
]


def render(header: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.rjust(widths[i]) if i else c.ljust(widths[i]) for i, c in enumerate(r)) for r in [header, *rows]
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="docedit: update throughput and latency to readers, and the sync of a 100 KB document "
        "(late joiner, cold hub). Starts and stops every hub it measures (127.0.0.1 only).",
    )
    parser.add_argument("--writers", type=int, default=4, help="writer clients (default 4)")
    parser.add_argument("--readers", type=int, default=4, help="reader clients (default 4)")
    parser.add_argument("--updates", type=int, default=2000, help="updates per writer (default 2000)")
    parser.add_argument(
        "--windows", default="32,1", help="unanswered updates per writer, one throughput load each (default 32,1)"
    )
    parser.add_argument(
        "--endpoints",
        default="ws,yjs",
        help="the throughput loads' endpoints: ws (the hub protocol), yjs (stock y-websocket clients) (default ws,yjs)",
    )
    parser.add_argument("--no-sync", action="store_true", help="skip the 100 KB sync measurement")
    parser.add_argument(
        "--profile", help="record the hub of each throughput load with py-spy into PROFILE-<load>.folded"
    )
    parser.add_argument("--doc-chars", type=int, default=100_000, help="characters of the typed document (100000)")
    parser.add_argument("--joins", type=int, default=20, help="late joins per document and run (default 20)")
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs (default 3)")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    parser.add_argument("--json-file", type=Path, help="write every run and the summaries as JSON")
    parser.add_argument("--hub-bin", default=str(ROOT / ".venv" / "bin" / "hub"), help="the hub console script")
    parser.add_argument("--keep", action="store_true", help="keep each run's working directory (hub logs)")
    args = parser.parse_args()
    args.window_list = [int(w) for w in args.windows.split(",") if w.strip()]
    args.endpoint_list = [e.strip() for e in args.endpoints.split(",") if e.strip()]
    if not set(args.endpoint_list) <= {"ws", "yjs"}:
        parser.error("--endpoints takes ws and/or yjs")
    if min(args.writers, args.readers, args.updates, *args.window_list, args.joins, args.runs, args.doc_chars) < 1:
        parser.error("every count must be positive")
    if not Path(args.hub_bin).exists():
        parser.error(f"no hub console script at {args.hub_bin}; run scripts/setup")
    return args


def main() -> int:
    args = parse_args()

    def on_term(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    revision = hub_revision()
    started = time.monotonic()
    typed, typed_transactions = typed_document(args.doc_chars, seed=1) if not args.no_sync else (b"", 0)
    if not args.no_sync:
        print(f"typed document: {len(typed):,} bytes from {typed_transactions:,} transactions", file=sys.stderr)
    runs: dict[str, list[dict[str, Any]]] = {
        f"{e}-window-{w}": [] for e in args.endpoint_list for w in args.window_list
    }
    if not args.no_sync:
        runs["sync"] = []
    failures: list[str] = []
    try:
        for run in range(args.runs):  # interleaved: a shared machine's drift spreads over both parts
            for kind in runs:
                print(f"[{time.monotonic() - started:6.1f}s] {kind} run {run + 1}/{args.runs} ...", file=sys.stderr)
                try:
                    result = run_once(kind, args, typed)
                except (BenchError, OSError, TimeoutError, websockets.InvalidHandshake) as exc:
                    failures.append(f"{kind} run {run + 1} could not run: {exc!r}")
                    print(f"         FAILED: {exc!r}", file=sys.stderr)
                    continue
                runs[kind].append(result)
                if kind != "sync":
                    print(
                        f"         {result['updates_per_s']:,.0f} updates/s, p50 {result['p50_ms']:.1f} ms, "
                        f"p99 {result['p99_ms']:.1f} ms, converged {result['converged']}",
                        file=sys.stderr,
                    )
                    if not result["converged"]:
                        failures.append(f"{kind} run {run + 1}: the replicas' texts differ")
                else:
                    print(
                        "         "
                        + "; ".join(
                            f"{name}: join {result[name]['join_p50_ms']:.1f} ms, cold {result[name]['cold_ms']:.1f} ms"
                            for name in ("blocks", "typed")
                        ),
                        file=sys.stderr,
                    )
    except KeyboardInterrupt:
        print("interrupted; every process started was stopped", file=sys.stderr)
        return 130

    windows = [kind for kind in runs if kind != "sync"]
    tput = {kind: {key: stats([r[key] for r in runs[kind]]) for key, _t, _f in TPUT_COLUMNS} for kind in windows}
    sync = {
        name: {key: stats([r[name][key] for r in runs.get("sync", [])]) for key, _t, _f in SYNC_COLUMNS}
        for name in ("blocks", "typed")
    }
    info = machine()
    info["hub_revision"] = revision
    config = {
        key: getattr(args, key)
        for key in ("writers", "readers", "updates", "windows", "endpoints", "doc_chars", "joins", "runs")
    }
    config["hub_env"] = {**HUB_ENV, **DOCEDIT_ENV}
    config["typed"] = {"bytes": len(typed), "transactions": typed_transactions, "authors": TYPED_AUTHORS}
    if args.json_file is not None:
        document = {"config": config, "machine": info, "summaries": {"throughput": tput, "sync": sync}, "runs": runs}
        args.json_file.write_text(json.dumps(document, indent=2) + "\n")
    print(
        f"{args.writers} writers x {args.updates} updates, {args.readers} readers; {args.joins} late joins per "
        f"document; {args.runs} run(s)" + ("; median (min\N{EN DASH}max)" if args.runs > 1 else "")
    )
    print(f"hub {revision}, {info['nproc']} CPUs ({info.get('cpu', '?')}), Python {info['python']}")
    rows = []
    for kind in windows:
        n = len(runs[kind])
        if n:
            converged = sum(r["converged"] for r in runs[kind])
            endpoint, _, window_text = kind.partition("-window-")
            row = [f"/{endpoint}, window {window_text}"]
            rows.append([*row, *(cell(tput[kind][key], fmt, n) for key, _t, fmt in TPUT_COLUMNS), f"{converged}/{n}"])
    if rows:
        header = ["endpoint, writers' window", *(title for _k, title, _f in TPUT_COLUMNS), "converged"]
        print(render(header, rows, args.markdown))
        print()
    if runs.get("sync"):
        m = len(runs["sync"])
        blocks_built = stats([r["blocks_build_s"] for r in runs["sync"]])
        made = {
            "blocks": f"{BLOCKS:,} appends of {BLOCK_CHARS}",
            "typed": f"{typed_transactions:,} typed, {TYPED_AUTHORS} authors",
        }
        header = ["document", "built from", *(title for _k, title, _f in SYNC_COLUMNS)]
        rows = [
            [name, made[name], *(cell(s[key], fmt, m) for key, _t, fmt in SYNC_COLUMNS)] for name, s in sync.items()
        ]
        print(render(header, rows, args.markdown))
        print(f"\nblocks built through the hub in {cell(blocks_built, '{:.2f}', m)} s")
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
