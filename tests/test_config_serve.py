"""A real ``hub serve`` run from a config file: a plugin's table reaches the running plugin (in one process and in
every worker of ``--workers``), unknown variables are logged with the nearest name, and ``--log-format json``
makes every line of stderr one JSON object, uvicorn's and the access log's included."""

from __future__ import annotations

import asyncio
import json
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

from hub.auth import Authenticator
from hub.testing import HubClient

HUB = Path(sys.executable).with_name("hub")
SECRET = "config-serve-test-secret-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    """One ``hub serve`` process in a directory of its own, its stderr in a file."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.log = workdir / "stderr.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *args: str, env: dict[str, str] | None = None) -> Served:
        clean = {key: value for key, value in os.environ.items() if not key.upper().startswith("HUB_")}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(HUB), "serve", "--port", str(self.port), *args],
                cwd=self.workdir,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env={**clean, "HUB_SECRET": SECRET, **(env or {})},
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"hub serve exited:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=0.5).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError(f"hub serve did not become ready:\n{self.log.read_text()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> str:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        return self.log.read_text()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    hub = Served(tmp_path)
    yield hub
    hub.kill()


async def snapshot_sizes(served: Served, connections: int) -> list[int]:
    sizes = []
    for _ in range(connections):
        client = await HubClient.connect(f"ws://127.0.0.1:{served.port}/ws")
        reply = await client.sub("chat:lobby")
        sizes.append(len(reply["snapshot"]["messages"]))
        await client.close()
    return sizes


async def post(served: Served, count: int) -> None:
    client = await HubClient.connect(f"ws://127.0.0.1:{served.port}/ws")
    await client.sub("chat:lobby")
    for index in range(count):
        await client.pub("chat:lobby", "chat.send", {"text": f"message {index}"})
    await client.close()


async def test_a_plugin_table_reaches_the_running_plugin(served: Served) -> None:
    (served.workdir / "hub.toml").write_text("plugins = ['chat']\ndata_dir = 'data'\n\n[chat]\nsnapshot_size = 2\n")
    await asyncio.to_thread(served.start, "--config", "hub.toml")
    await post(served, 3)
    assert await snapshot_sizes(served, 1) == [2]
    await asyncio.to_thread(served.stop)


async def test_every_worker_reads_the_plugin_table_and_the_flags(served: Served, redis_url: str) -> None:
    (served.workdir / "hub.toml").write_text(f"plugins = ['chat']\nredis_prefix = 'cfg-{os.getpid()}'\n\n[chat]\n")
    await asyncio.to_thread(
        served.start,
        *("--config", "hub.toml", "--redis", redis_url, "--workers", "2", "--set", "chat.snapshot_size=2"),
        "--log-format",
        "json",
    )
    await post(served, 3)
    assert await snapshot_sizes(served, 6) == [2] * 6  # whichever worker each connection landed on
    text = await asyncio.to_thread(served.stop)
    entries = [json.loads(line) for line in text.splitlines()]  # the workers' lines are JSON too
    assert sum(entry["message"].startswith("hub started") for entry in entries) == 2  # one per worker


async def test_json_logs_are_one_object_per_line(served: Served) -> None:
    await asyncio.to_thread(
        served.start, "--plugins", "chat", "--log-format", "json", "--data-dir", "data", env={"HUB_PORTT": "1"}
    )
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{served.url}/healthz?token=secret-in-the-query")).status_code == 200
    token = Authenticator(SECRET).issue("alice")
    client = await HubClient.connect(f"ws://127.0.0.1:{served.port}/ws", token=token, token_via="query")
    await client.close()
    text = await asyncio.to_thread(served.stop)
    entries: list[dict[str, Any]] = [json.loads(line) for line in text.splitlines()]  # every line, or it fails
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= set(entry), entry
        assert entry["time"].endswith("Z")
    loggers = {entry["logger"] for entry in entries}
    assert {"uvicorn.error", "hub", "hub.access", "hub.config"} <= loggers
    [warning] = [entry for entry in entries if entry["logger"] == "hub.config"]
    assert warning["level"] == "WARNING"
    assert warning["message"] == "HUB_PORTT is not a setting; did you mean HUB_PORT?"
    [access] = [entry for entry in entries if entry["logger"] == "hub.access" and entry.get("path") == "/healthz"]
    assert (access["method"], access["status"], access["client"]) == ("GET", 200, "127.0.0.1")
    assert isinstance(access["duration_ms"], float)
    assert access["message"].startswith('127.0.0.1 "GET /healthz" 200 ')
    assert any("Uvicorn running on" in entry["message"] for entry in entries)
    assert any(entry["message"] == "Application startup complete." for entry in entries)
    assert any('"WebSocket /ws?…" [accepted]' in entry["message"] for entry in entries)  # redacted
    assert token.split(".")[2] not in text
    assert "secret-in-the-query" not in text


async def test_text_logs_say_where_they_listen_before_starting(served: Served) -> None:
    await asyncio.to_thread(served.start, "--plugins", "chat", "--data-dir", "data", env={"HUB_CHAT_SNAPSHOT_SIZ": "1"})
    text = await asyncio.to_thread(served.stop)
    lines = text.splitlines()
    running = next(i for i, line in enumerate(lines) if "Uvicorn running on" in line)
    started = next(i for i, line in enumerate(lines) if "hub started" in line)
    assert running < started  # the port was taken before anything started
    assert "WARNING:  hub.config: HUB_CHAT_SNAPSHOT_SIZ is not a setting; did you mean HUB_CHAT_SNAPSHOT_SIZE?" in lines
