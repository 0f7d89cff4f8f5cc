"""Graceful shutdown (issue 18, item 7), on a real ``hub serve`` process: on SIGTERM (or SIGINT, the same) the node
stops accepting, answers what it had already read (a ``pub`` being handled gets its ``ok`` and its event goes out,
its store write committed), then closes every socket with 1001 and a reason; a frame sent after that is never
handled; and the process exits within HUB_SHUTDOWN_TIMEOUT (+ HUB_CLOSE_TIMEOUT for the tasks of dropped sockets)
even when a client has stopped reading.

The node serves tests/shutdown_plugin.py (``slow:<room>``: a handler that holds for ``hold`` seconds), installed
for the child process as an entry point: a ``.dist-info`` on its PYTHONPATH.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.asgi_extensions import SHUTDOWN_REASON
from hub.testing import TEST_SECRET, HubClient, wait_until

ROOT = Path(__file__).resolve().parents[1]
HUB = Path(sys.executable).with_name("hub")
SLOW = "slow:room"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def install_test_plugin(directory: Path) -> Path:
    """A distribution on ``directory`` whose ``hub.plugins`` entry point ``slow`` is tests/shutdown_plugin.py."""
    info = directory / "hub_shutdown_test_plugin-0.0.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hub-shutdown-test-plugin\nVersion: 0.0.0\n")
    (info / "entry_points.txt").write_text("[hub.plugins]\nslow = tests.shutdown_plugin\n")
    return directory


class Node:
    """One ``hub serve --plugins <plugins>`` process on a fixed port and data directory (so it can start again)."""

    def __init__(self, tmp_path: Path, name: str = "node", plugins: str = "slow", **settings: object) -> None:
        self.port = free_port()
        self.data_dir = tmp_path / f"{name}-data"
        self.log = tmp_path / f"{name}.log"
        self.plugins = plugins
        env = {key: value for key, value in os.environ.items() if not key.startswith("HUB_")}
        values: dict[str, object] = {"secret": TEST_SECRET, "log_level": "info", **settings}
        env.update({f"HUB_{key.upper()}": str(value) for key, value in values.items()})
        packages = install_test_plugin(tmp_path / "site")
        env["PYTHONPATH"] = os.pathsep.join([str(packages), str(ROOT)])
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def spawn(self) -> None:
        command = [str(HUB), "serve", "--plugins", self.plugins, "--port", str(self.port),
                   "--data-dir", str(self.data_dir)]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    async def start(self) -> None:
        """Spawn the process and wait for /readyz."""
        self.spawn()
        assert self.process is not None
        deadline = time.monotonic() + 60  # a loaded machine starts a process slowly
        async with httpx.AsyncClient(timeout=0.5) as http:
            while time.monotonic() < deadline:
                assert self.process.poll() is None, self.tail()
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{self.url}/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.05)
        raise AssertionError(f"the node did not become ready\n{self.tail()}")

    def send(self, sig: signal.Signals) -> float:
        """Send ``sig``; returns when it was sent (time.monotonic)."""
        assert self.process is not None
        self.process.send_signal(sig)
        return time.monotonic()

    async def stopped_accepting(self, timeout: float = 5.0) -> None:
        """Until a TCP connect to the port is refused: the server has closed its listening socket, and (uvicorn does
        both in one step) handed every open connection its shutdown."""

        def refused() -> bool:
            with socket.socket() as sock:
                try:
                    sock.connect(("127.0.0.1", self.port))
                except ConnectionRefusedError:
                    return True
            return False

        await wait_until(refused, timeout=timeout, interval=0.005, what="the node to stop accepting")

    async def exited(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        status = await asyncio.to_thread(self.process.wait, timeout)
        self.process = None
        return status

    async def metric(self, name: str) -> float:
        async with httpx.AsyncClient(timeout=2.0) as http:
            text = (await http.get(f"{self.url}/metrics")).text
        values = [line.split()[-1] for line in text.splitlines() if line.startswith((f"{name} ", f"{name}{{"))]
        assert values, f"{name} is not in /metrics"
        return sum(float(value) for value in values)

    def tail(self, lines: int = 60) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "--- hub serve log ---\n" + "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[Node]]:
    made: list[Node] = []
    yield made
    for node in made:
        node.kill()


def post(n: int, hold: float = 0.0, pad: str = "") -> dict[str, Any]:
    return {"op": "pub", "ch": SLOW, "type": "slow.post", "data": {"n": n, "hold": hold, "pad": pad}}


def exited_on(sig: signal.Signals, status: int) -> bool:
    """uvicorn re-raises the signal once it has shut down: SIGTERM ends the process with it; SIGINT becomes
    KeyboardInterrupt, which the CLI turns into an exit status."""
    return status == -sig if sig == signal.SIGTERM else status in (-sig, 130)


def assert_clean_log(node: Node) -> None:
    log = node.log.read_text(errors="replace")
    assert "Traceback" not in log, node.tail()
    assert "Exception in ASGI application" not in log, node.tail()
    assert "timeout graceful shutdown exceeded" not in log, node.tail()  # no task had to be cancelled


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_publish_in_flight_is_answered_and_stored_then_the_socket_closes_with_1001(
    tmp_path: Path, nodes: list[Node], sig: signal.Signals
) -> None:
    node = Node(tmp_path, shutdown_timeout=10.0, close_timeout=1.0)
    nodes.append(node)
    await node.start()
    alice = await HubClient.connect(node.ws_url)
    await alice.sub(SLOW)
    bob = await HubClient.connect(node.ws_url)  # idle: only told to go away
    first = asyncio.create_task(alice.request(post(1, hold=1.0), timeout=15))
    queued = asyncio.create_task(alice.request(post(2), timeout=15))  # read before the signal, not yet handled
    # Both posts were written to the hub's socket before it announced the first; it reads the second at once
    # (its loop is idle while the handler holds), well before uvicorn's next look at the signal (every 0.1 s).
    assert (await alice.next_event(SLOW, "slow.started"))["data"] == {"n": 1}

    signalled = node.send(sig)
    await node.stopped_accepting()
    assert not first.done(), "the handler must still be running when the node stops"
    late = asyncio.create_task(alice.request(post(3), timeout=15))  # sent once the node stopped reading

    assert (await first)["op"] == "ok"
    assert (await first)["data"] == {"n": 1}
    assert (await queued)["data"] == {"n": 2}
    posted = [(await alice.next_event(SLOW, "slow.posted"))["data"]["n"] for _ in range(2)]
    assert posted == [1, 2]
    assert await alice.closed() == (1001, SHUTDOWN_REASON)
    assert await bob.closed() == (1001, SHUTDOWN_REASON)
    with pytest.raises(ConnectionError):
        await late  # never handled: the socket closed without an answer
    status = await node.exited()
    took = time.monotonic() - signalled
    assert exited_on(sig, status), (status, node.tail())
    assert took < 10.0, f"every client left at once, yet the node waited out its bound ({took:.2f} s)"
    assert_clean_log(node)

    # What was acknowledged is in the store (the SQLite group commit was flushed); the late post never ran.
    await node.start()
    carol = await HubClient.connect(node.ws_url)
    assert (await carol.sub(SLOW))["snapshot"] == {"posts": [1, 2]}
    await carol.close()


async def _at_least(value: Any, minimum: float) -> bool:
    return float(await value) >= minimum


class SilentClient:
    """A WebSocket client over a raw socket with a tiny receive buffer that subscribes, then never reads again."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(5.0)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: hub.v1\r\n\r\n".encode()
        )
        self.received = b""
        self.read_until(b"\r\n\r\n")
        assert self.received.startswith(b"HTTP/1.1 101"), self.received[:200]

    def read_until(self, marker: bytes) -> None:
        while marker not in self.received:
            chunk = self.sock.recv(65536)
            assert chunk, "the hub closed the socket"
            self.received += chunk

    def send_text(self, text: str) -> None:
        payload = text.encode()
        assert len(payload) < 126
        mask = os.urandom(4)
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        self.sock.sendall(bytes((0x81, 0x80 | len(payload))) + mask + masked)

    def close(self) -> None:
        self.sock.close()


async def test_a_client_that_never_reads_cannot_hold_the_exit_past_the_timeout(
    tmp_path: Path, nodes: list[Node]
) -> None:
    shutdown_timeout, close_timeout = 1.5, 0.5
    node = Node(tmp_path, shutdown_timeout=shutdown_timeout, close_timeout=close_timeout, send_buffer_bytes=4096,
                send_queue_max_bytes=64 * 1024 * 1024)  # fmt: skip
    nodes.append(node)
    await node.start()
    silent = await asyncio.to_thread(SilentClient, node.port)
    silent.send_text(f'{{"op":"sub","ch":"{SLOW}","id":1}}')
    await asyncio.to_thread(silent.read_until, b'"op":"ok"')
    writer = await HubClient.connect(node.ws_url)
    for n in range(24):  # about 720 KB for the silent client: far more than its socket buffers hold
        await writer.call(post(n, pad="x" * 30_000))
    await wait_until(
        lambda: _at_least(node.metric("hub_send_queue_frames"), 1), timeout=10, what="frames to wait for the reader"
    )

    signalled = node.send(signal.SIGTERM)
    assert await writer.closed() == (1001, SHUTDOWN_REASON)  # the client that reads is told at once
    status = await node.exited()
    took = time.monotonic() - signalled
    silent.close()
    assert status == -signal.SIGTERM, node.tail()
    # The silent client's close frame could never be written: the node waited for it until the deadline, then
    # dropped the socket and went on.
    assert shutdown_timeout - 0.2 <= took <= shutdown_timeout + close_timeout + 5.0, (took, node.tail())
    assert_clean_log(node)
