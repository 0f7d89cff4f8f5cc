"""Redis and Redis Cluster process control for this repo's tests and benchmarks: a private ``redis-server`` or
three-primary cluster on free ports, a RESP one-liner to drive them, and the pytest fixtures that start them.

Not part of the installed package (``hub.testing`` is the plugin author's kit). Registered for the tests in
tests/conftest.py (``pytest_plugins``); benchmarks/fanout.py imports ``RedisClusterServer`` from here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest


class RedisServer:
    """A throwaway ``redis-server`` on 127.0.0.1 and a free port, without persistence (like a cache node).

    ``restart()`` stops it and starts it again on the same port with empty memory, which is what a Redis
    crash without AOF looks like to the hub.
    """

    def __init__(self, binary: str, port: int | None = None) -> None:
        self.binary = binary
        self.port = port or _free_port()
        self._dir = tempfile.mkdtemp(prefix="hub-redis-")
        self.process: subprocess.Popen[bytes] | None = None
        self.extra_args: list[str] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", self._dir, "--daemonize", "no", "--loglevel", "warning", *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return self
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


class RedisClusterServer:
    """A throwaway Redis Cluster on 127.0.0.1: ``size`` primaries (no replicas) on free ports, slots split
    evenly, no persistence. Built with CLUSTER ADDSLOTSRANGE and CLUSTER MEET (no redis-cli needed).

    ``url`` is ``redis+cluster://`` naming the first node. ``move_slot(name)`` migrates the slot of a key or
    channel name to another primary, as a resharding does. ``stop_node``/``start_node`` take one primary down
    and bring it back with its cluster identity (nodes.conf) and empty memory.
    """

    SLOTS = 16384

    def __init__(self, binary: str, size: int = 3) -> None:
        self.nodes = [RedisServer(binary, _free_cluster_port()) for _ in range(size)]
        self.ids: list[str] = []

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    ARGS = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
                "--cluster-require-full-coverage", "no", "--cluster-allow-pubsubshard-when-down", "yes"]  # fmt: skip

    def start(self) -> RedisClusterServer:
        for node in self.nodes:
            node.extra_args = list(self.ARGS)
            node.start()
        self.ids = [self.command(index, "CLUSTER", "MYID").decode() for index in range(len(self.nodes))]
        share = self.SLOTS // len(self.nodes)
        for index in range(len(self.nodes)):
            first = index * share
            last = self.SLOTS - 1 if index == len(self.nodes) - 1 else first + share - 1
            self.command(index, "CLUSTER", "ADDSLOTSRANGE", str(first), str(last))
        for node in self.nodes[1:]:
            self.command(0, "CLUSTER", "MEET", "127.0.0.1", str(node.port))
        self.wait_ok()
        return self

    def wait_ok(self, timeout: float = 15.0) -> None:
        """Until every node reports ``cluster_state:ok`` and knows every other node."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, RuntimeError):
                infos = [self.command(index, "CLUSTER", "INFO") for index in range(len(self.nodes))]
                if all(b"cluster_state:ok" in info and f"cluster_known_nodes:{len(self.nodes)}".encode() in info
                       for info in infos):  # fmt: skip
                    return
            time.sleep(0.05)
        raise RuntimeError("the Redis Cluster did not become ok")

    def command(self, index: int, *args: str) -> Any:
        """One command on one node, over a plain socket (RESP), for the fixture's own use."""
        return _resp_command(self.nodes[index].port, *args)

    def owner(self, name: str) -> int:
        """The index of the primary that owns ``name``'s slot."""
        slot = int(self.command(0, "CLUSTER", "KEYSLOT", name))
        for entry in self.command(0, "CLUSTER", "SLOTS"):
            if int(entry[0]) <= slot <= int(entry[1]):
                port = int(entry[2][1])
                return next(index for index, node in enumerate(self.nodes) if node.port == port)
        raise RuntimeError(f"no node owns slot {slot}")

    def move_slot(self, name: str, to: int | None = None) -> int:
        """Migrate the slot of ``name`` (keys and all) to node ``to`` (default: the next one); returns ``to``."""
        source = self.owner(name)
        target = (source + 1) % len(self.nodes) if to is None else to
        slot = str(self.command(0, "CLUSTER", "KEYSLOT", name))
        self.command(target, "CLUSTER", "SETSLOT", slot, "IMPORTING", self.ids[source])
        self.command(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", self.ids[target])
        while keys := self.command(source, "CLUSTER", "GETKEYSINSLOT", slot, "100"):
            self.command(source, "MIGRATE", "127.0.0.1", str(self.nodes[target].port), "", "0", "5000",
                         "KEYS", *(key.decode() for key in keys))  # fmt: skip
        for index in range(len(self.nodes)):
            self.command(index, "CLUSTER", "SETSLOT", slot, "NODE", self.ids[target])
        return target

    def stop_node(self, index: int) -> None:
        self.nodes[index].stop()

    def start_node(self, index: int) -> None:
        self.nodes[index].start()
        self.wait_ok()

    def close(self) -> None:
        for node in self.nodes:
            node.close()


def _free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    while True:
        port = _free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def _resp_command(port: int, *args: str) -> Any:
    payload = f"*{len(args)}\r\n".encode() + b"".join(
        f"${len(arg.encode())}\r\n".encode() + arg.encode() + b"\r\n" for arg in args
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        reader = sock.makefile("rb")
        return _resp_read(reader)


def _resp_read(reader: Any) -> Any:
    line = reader.readline()
    if not line:
        raise OSError("connection closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        length = int(rest)
        if length < 0:
            return None
        data = reader.read(length + 2)
        return data[:-2]
    if kind == b"*":
        count = int(rest)
        return None if count < 0 else [_resp_read(reader) for _ in range(count)]
    raise RuntimeError(f"unexpected RESP reply {line!r}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_server_binary() -> str | None:
    return os.environ.get("HUB_TEST_REDIS_SERVER") or shutil.which("redis-server")


# ---- pytest fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis for the whole test session: a private ``redis-server`` when the binary exists, else the
    server HUB_TEST_REDIS_URL names. Neither is a failure (not a skip): the tests that need Redis must run."""
    binary = redis_server_binary()
    if binary is None:
        url = os.environ.get("HUB_TEST_REDIS_URL")
        if not url:
            pytest.fail("these tests need Redis: install redis-server or set HUB_TEST_REDIS_URL")
        yield url
        return
    server = RedisServer(binary).start()
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    """A three-primary Redis Cluster for the whole test session (``redis+cluster://``)."""
    binary = redis_server_binary()
    if binary is None:
        pytest.fail("these tests need the redis-server binary (Debian package redis-server)")
    cluster = RedisClusterServer(binary).start()
    try:
        yield cluster.url
    finally:
        cluster.close()


@pytest.fixture
def redis_cluster() -> Iterator[RedisClusterServer]:
    """A private Redis Cluster for one test that moves slots or stops nodes."""
    binary = redis_server_binary()
    if binary is None:
        pytest.fail("this test needs the redis-server binary (Debian package redis-server)")
    cluster = RedisClusterServer(binary).start()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A private ``redis-server`` for one test that stops or restarts it."""
    binary = redis_server_binary()
    if binary is None:
        pytest.fail("this test needs the redis-server binary (Debian package redis-server)")
    server = RedisServer(binary).start()
    try:
        yield server
    finally:
        server.close()
