"""`hub serve --workers 2` on a private Redis: traffic to both workers is summed on /metrics whichever worker
answers, and a killed worker's counts stay in the sums while its connections leave the gauges."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hub.testing import TEST_SECRET, HubClient, wait_until

HUB = Path(sys.executable).with_name("hub")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
CHAT_SEND = frozenset({("plugin", "chat"), ("type", "chat.send")})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def workers(tmp_path: Path, redis_url: str) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    port = free_port()
    data_dir = tmp_path / "node"
    env = {
        **os.environ,
        "HUB_SECRET": TEST_SECRET,
        "HUB_REDIS_PREFIX": f"t{uuid.uuid4().hex[:10]}",
        "HUB_METRICS_INTERVAL": "0.05",
        "HUB_LOG_LEVEL": "warning",
    }
    command = [str(HUB), "serve", "--port", str(port), "--redis", redis_url, "--data-dir", str(data_dir)]
    # a session of its own, so the whole group (the workers too) can be killed at the end
    process = subprocess.Popen([*command, "--plugins", "chat", "--workers", "2"], env=env, start_new_session=True)
    try:
        yield process, f"http://127.0.0.1:{port}", data_dir / "metrics" / f"workers-{process.pid}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def snapshot_counts(directory: Path) -> dict[int, float]:
    """Worker pid -> its pub frames of chat.send, from the snapshots the workers write."""
    counts: dict[int, float] = {}
    for path in directory.glob("[0-9]*.json"):
        with contextlib.suppress(OSError, ValueError):  # replaced while read
            families = json.loads(path.read_text())["families"]
            counts[int(path.stem)] = sum(
                value
                for family in families
                if family["name"] == "hub_messages_in"
                for _name, labels, value in family["samples"]
                if labels.get("type") == "chat.send"
            )
    return counts


async def scrape(url: str) -> tuple[int, Samples]:
    """One scrape on a new connection (so either worker may take it): which worker answered, and its samples."""
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.get("/metrics")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return int(response.headers["x-hub-worker"]), samples


async def ready(url: str) -> bool:
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            return (await http.get("/readyz")).status_code == 200
    except httpx.TransportError:
        return False


async def test_every_worker_answers_with_the_sum_of_both(workers: tuple[subprocess.Popen[bytes], str, Path]) -> None:
    _process, url, directory = workers
    # generous bounds (not sleeps): the workers start and restart as new processes, on a shared machine
    await wait_until(lambda: ready(url), timeout=60, what="the workers ready")
    await wait_until(lambda: len(snapshot_counts(directory)) == 2, timeout=60, what="two workers' snapshots")

    clients: list[HubClient] = []
    try:
        # Connections until both workers carry some (the kernel hands each new one to either worker).
        while len(clients) < 60:
            for _ in range(4):
                client = await HubClient.connect(url.replace("http", "ws") + "/ws")
                await client.pub("chat:workers", "chat.send", {"text": "hi"})
                clients.append(client)
            sent = len(clients)
            await wait_until(
                lambda: sum(snapshot_counts(directory).values()) == sent,  # noqa: B023
                timeout=30,
                what="the snapshots",
            )
            per_worker = snapshot_counts(directory)
            if all(per_worker.values()):
                break
        assert all(per_worker.values()), f"one worker got every connection: {per_worker}"
        pids = set(per_worker)

        answered: set[int] = set()
        for _ in range(100):
            worker, found = await scrape(url)
            answered.add(worker)
            assert found[("hub_messages_in_total", CHAT_SEND)] == sent
            assert found[("hub_connections_opened_total", frozenset())] == sent
            assert found[("hub_connections", frozenset())] == sent
            assert found[("hub_publish_latency_seconds_count", frozenset({("plugin", "chat")}))] == sent
            assert found[("hub_workers", frozenset())] == 2
            cpu = {dict(labels)["worker"] for name, labels in found if name == "process_cpu_seconds_total"}
            assert cpu == {str(pid) for pid in pids}
            if answered == pids:
                break
        assert answered == pids, "every scrape went to one worker"

        # A worker killed: the supervisor starts another; the sums keep the dead one's counts, not its sockets.
        doomed = min(pids, key=lambda pid: per_worker[pid])
        os.kill(doomed, signal.SIGKILL)

        async def replaced() -> bool:
            live = snapshot_counts(directory)
            return doomed not in live and len(live) == 2 and (await scrape(url))[1][("hub_workers", frozenset())] == 2

        await wait_until(replaced, timeout=60, what="the killed worker retired and replaced")
        survivors = sent - int(per_worker[doomed])
        for _ in range(10):
            _worker, found = await scrape(url)
            assert found[("hub_messages_in_total", CHAT_SEND)] == sent  # never goes back
            assert found[("hub_connections_opened_total", frozenset())] == sent
            assert found[("hub_connections", frozenset())] == survivors
            cpu = {dict(labels)["worker"] for name, labels in found if name == "process_cpu_seconds_total"}
            assert str(doomed) not in cpu
    finally:
        await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)
