"""Chaos proofs with real processes: `hub serve` nodes on a redis-server of the test's own, clients on the real SDK
(hub/static/hub.js in Node, tests/node/chaos_client.mjs), kills and restarts in the middle of the traffic.

Sizes are environment variables so the default suite stays short while the full proof is one command away
(docs/operations.md, "Guarantees under failure"); every test here carries the ``chaos`` marker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.testing import TEST_SECRET

ROOT = Path(__file__).resolve().parents[2]
HUB = Path(sys.executable).with_name("hub")
DRIVER = ROOT / "tests" / "node" / "chaos_client.mjs"
FILE_LIMIT = 16384  # sockets: 1,000 clients, their hub, the proxy, Redis


def size(name: str, default: int) -> int:
    """A proof's size: ``HUB_CHAOS_<NAME>`` from the environment, else the default-suite size."""
    return int(os.environ.get(f"HUB_CHAOS_{name}", default))


@pytest.fixture(scope="session", autouse=True)
def file_limit() -> None:
    """Raise this process's descriptor limit (inherited by the hub and Node children) toward FILE_LIMIT."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = FILE_LIMIT if hard == resource.RLIM_INFINITY else min(FILE_LIMIT, hard)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def report(request: pytest.FixtureRequest, text: str) -> None:
    """A run's figures on the terminal, also without -s (the operations guide quotes them)."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\n[chaos] {text}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServeNode:
    """One ``hub serve --plugins chat`` process on a fixed port, so it can be killed and started again there."""

    def __init__(self, name: str, redis_url: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.redis_url = redis_url
        self.env = env
        self.log = log_dir / f"{name}.log"
        self.data_dir = log_dir / f"{name}-data"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.address}/ws"

    def start(self) -> None:
        command = [str(HUB), "serve", "--plugins", "chat", "--port", str(self.port), "--redis", self.redis_url,
                   "--data-dir", str(self.data_dir)]  # fmt: skip
        with self.log.open("ab") as log:
            # A session of its own, so a kill reaches the whole process group.
            self.process = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.starts += 1

    async def ready(self, timeout: float = 20.0) -> float:
        """Wait for /readyz 200; returns the seconds it took."""
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=0.5) as http:
            while time.monotonic() - started < timeout:
                assert self.process is not None
                assert self.process.poll() is None, self.tail()
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"http://{self.address}/readyz")).status_code == 200:
                        return time.monotonic() - started
                await asyncio.sleep(0.05)
        raise AssertionError(f"{self.name} not ready within {timeout} s\n{self.tail()}")

    async def signal(self, sig: signal.Signals, timeout: float = 20.0) -> int:
        """Send ``sig`` to the process group and wait for the exit; returns the exit status."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        status = await asyncio.to_thread(self.process.wait, timeout)
        self.process = None
        return status

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} log ---\n" + "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None


def node_env(**settings: object) -> dict[str, str]:
    """The environment of a chaos node: the test secret, no rate limits in the way, fast timers, and the caller's
    settings (``presence_ttl=1.0`` -> ``HUB_PRESENCE_TTL=1.0``)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("HUB_")}
    values: dict[str, object] = {
        "secret": TEST_SECRET,
        "log_level": "warning",
        "redis_prefix": f"chaos{uuid.uuid4().hex[:8]}",
        "rate_limit": 1_000_000,
        "rate_burst": 1_000_000,
        "chat_send_rate": 1_000_000,
        "chat_send_burst": 1_000_000,
        "max_connections_per_address": 0,  # no cap: every client comes from 127.0.0.1
        "heartbeat_interval": 1.0,
        "heartbeat_timeout": 10.0,
        **settings,
    }
    env.update({f"HUB_{key.upper()}": str(value) for key, value in values.items()})
    return env


@pytest.fixture
def serve_nodes(tmp_path: Path) -> Iterator[list[ServeNode]]:
    """Nodes the test creates (``serve_nodes.append(ServeNode(...))``); all killed at the end."""
    nodes: list[ServeNode] = []
    yield nodes
    for node in nodes:
        node.close()


class Driver:
    """``node tests/node/chaos_client.mjs --mode …``: JSON lines on stdout, commands on stdin, the record in a file."""

    def __init__(self, process: asyncio.subprocess.Process, out: Path, stderr: Path) -> None:
        self.process = process
        self.out = out
        self.stderr = stderr

    @classmethod
    async def start(cls, tmp_path: Path, **options: object) -> Driver:
        node = shutil.which("node")
        if node is None:
            pytest.fail("the chaos tests need Node.js (Debian package nodejs) and `npm ci` (the ws package)")
        out, stderr = tmp_path / "driver.json", tmp_path / "driver.stderr"
        argv = [str(part) for key, value in {**options, "out": out}.items() for part in (f"--{key}", value)]
        with stderr.open("wb") as errors:
            process = await asyncio.create_subprocess_exec(
                node, str(DRIVER), *argv, cwd=ROOT, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=errors,
            )  # fmt: skip
        return cls(process, out, stderr)

    async def line(self, timeout: float = 60.0) -> dict[str, Any]:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not raw:
            raise AssertionError(f"the driver ended without output:\n{self.stderr.read_text()[-3000:]}")
        line: dict[str, Any] = json.loads(raw)
        if line.get("ok") is False:
            raise AssertionError(f"the driver failed: {line['error']}\n{self.stderr.read_text()[-3000:]}")
        return line

    async def until(self, predicate: Any, timeout: float = 60.0) -> dict[str, Any]:
        """The first line for which ``predicate(line)`` holds (lines before it are read and dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            line = await self.line(max(0.1, deadline - time.monotonic()))
            if predicate(line):
                return line

    async def send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text.encode() + b"\n")
        await self.process.stdin.drain()

    async def result(self, timeout: float = 90.0) -> dict[str, Any]:
        """The driver's final line; then the full record from its file."""
        await self.until(lambda line: line.get("ok") is True, timeout)
        assert await asyncio.wait_for(self.process.wait(), 10) == 0
        record: dict[str, Any] = json.loads(self.out.read_text())
        return record

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


@pytest.fixture
async def drivers() -> AsyncIterator[list[Driver]]:
    started: list[Driver] = []
    yield started
    for driver in started:
        driver.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(driver.process.wait(), 5)


def assert_no_repeat(verdict: dict[str, Any]) -> None:
    """No event delivered twice or replayed (test_join_race.py has the regression tests of what did that)."""
    assert verdict["replayed"] == 0, verdict
    assert verdict["duplicated"] == 0, verdict
    assert verdict["out_of_order"] == 0, verdict


def check_follower(follower: dict[str, Any], final: int) -> dict[str, int]:
    """Walk one client's record (its events and its sub replies, interleaved as they came) and count:

    - ``lost``: offsets neither received nor inside a gap the hub declared (a resubscribe with ``recovered:
      false``), including the ones missing at the end (``final`` is the channel's last offset);
    - ``out_of_order``: an event at or below an offset already passed (a duplicate or a reordering);
    - ``duplicated``: a message number received twice (replayed events apart);
    - ``replayed``: a live event at or below the offset of the ``sub`` reply before it, which said the reply
      already accounted for it (protocol §5.2, §6); counted apart from the others.
    """
    replies = iter(follower["subscribes"])
    reply = next(replies)
    upcoming = next(replies, None)
    floor = next_offset = 0
    missed_left = 0
    counts = {"lost": 0, "out_of_order": 0, "duplicated": 0, "replayed": 0}
    numbers: set[int] = set()

    def apply(sub: dict[str, Any]) -> None:
        nonlocal floor, next_offset, missed_left
        if not sub["resubscribed"]:
            next_offset = sub["offset"] + 1
        elif not sub["recovered"]:
            next_offset = sub["offset"] + 1  # the declared gap: everything up to the reply's offset
        floor, missed_left = sub["offset"], sub["missed"]

    apply(reply)
    for index, offset in enumerate(follower["offsets"]):
        while upcoming is not None and upcoming["events"] == index:
            apply(upcoming)
            upcoming = next(replies, None)
        if missed_left:
            missed_left -= 1
        elif offset <= floor:
            counts["replayed"] += 1
            continue
        number = follower["numbers"][index]
        counts["duplicated"] += number in numbers
        numbers.add(number)
        if offset < next_offset:
            counts["out_of_order"] += 1
        else:
            counts["lost"] += offset - next_offset
            next_offset = offset + 1
    while upcoming is not None:
        apply(upcoming)
        upcoming = next(replies, None)
    counts["lost"] += max(0, final + 1 - next_offset)
    return counts
