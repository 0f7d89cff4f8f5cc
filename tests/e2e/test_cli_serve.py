"""`hub serve` as an operator runs it: a real process, SIGTERM, a restart on the same data directory."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hub.asgi_extensions import SHUTDOWN_REASON
from hub.testing import HubClient

HUB = Path(sys.executable).with_name("hub")
SECRET = "cli-serve-test-secret-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServeProcess:
    def __init__(self, data_dir: Path, log: Path) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "HUB_SECRET": SECRET}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(HUB), "serve", "--port", str(self.port), "--data-dir", str(self.data_dir), "--plugins", "chat"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=0.5).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"hub serve did not become ready:\n{self.log.read_text()}")

    def stop(self) -> None:
        """SIGTERM; uvicorn shuts down gracefully, then re-raises the signal, so the exit status is -SIGTERM."""
        assert self.process is not None
        shutdowns = self.log.read_text().count("Application shutdown complete")
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=15) == -signal.SIGTERM
        assert self.log.read_text().count("Application shutdown complete") == shutdowns + 1

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeProcess]:
    process = ServeProcess(tmp_path / "data", tmp_path / "serve.log")
    yield process
    if process.process is not None and process.process.poll() is None:
        process.process.kill()
        process.process.wait()


def token_for(user: str) -> str:
    result = subprocess.run(
        [str(HUB), "token", "--user", user, "--secret", SECRET], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


async def test_serve_chat_sigterm_restart_keeps_history_and_logs_no_token(serve: ServeProcess):
    serve.start()
    alice_token = token_for("alice")
    alice = await HubClient.connect(serve.ws_url, token=alice_token, token_via="query")
    bob = await HubClient.connect(serve.ws_url, token=token_for("bob"))
    await alice.sub("chat:lobby")
    await bob.sub("chat:lobby")
    await alice.pub("chat:lobby", "chat.send", {"text": "before the restart"})
    assert (await bob.next_event("chat:lobby", "chat.posted"))["data"]["text"] == "before the restart"

    serve.stop()
    assert await bob.closed() == (1001, SHUTDOWN_REASON)  # going away, from the hub itself (protocol.md §13)
    await alice.close()

    serve.start()
    carol = await HubClient.connect(serve.ws_url)
    snapshot = (await carol.sub("chat:lobby"))["snapshot"]
    assert [m["text"] for m in snapshot["messages"]] == ["before the restart"]
    await carol.close()
    serve.stop()

    log = serve.log.read_text()
    assert '"WebSocket /ws?…" [accepted]' in log  # the query-string connection was logged, redacted
    assert alice_token not in log
    assert alice_token.split(".")[2] not in log


async def test_unknown_plugin_is_a_one_line_error(tmp_path: Path):
    result = await asyncio.to_thread(
        subprocess.run, [str(HUB), "serve", "--plugins", "chat,nope"], capture_output=True, text=True
    )
    assert result.returncode == 2
    available = "chat, docedit, draw, livedata, notifications"
    assert result.stderr.strip() == f"error: unknown plugin 'nope'; available: {available}"
