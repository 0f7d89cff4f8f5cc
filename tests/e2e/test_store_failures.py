"""The embedded SQLite store broken under a running `hub serve`, and at start-up: refused, reported, logged once.

A data directory removed, or a WAL index (``-shm``) truncated, while the hub runs: writes answer
``unavailable`` instead of being acknowledged into a file that is gone (or killing the process with SIGBUS),
``/readyz`` says why, and the log says it once. Files the store cannot use stop ``hub serve`` at start with
one line and a non-zero exit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hub.auth import Authenticator
from hub.testing import HubClient, ReplyError, wait_until

HUB = Path(sys.executable).with_name("hub")
SECRET = "store-failures-test-secret-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Serve:
    """One `hub serve --plugins chat` on a data directory, its output in a log file."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.data_dir = data_dir
        self.log = log
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def launch(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, "HUB_SECRET": SECRET, "HUB_LOG_LEVEL": "warning"}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(HUB), "serve", "--port", str(self.port), "--data-dir", str(self.data_dir), "--plugins", "chat"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        return self.process

    def start(self) -> None:
        process = self.launch()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/readyz", timeout=0.5).status_code == 200:
                    return
            time.sleep(0.05)
        raise AssertionError(f"hub serve did not become ready:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=15)

    async def client(self, user: str) -> HubClient:
        token = Authenticator(SECRET).issue(user)
        return await HubClient.connect(self.url.replace("http", "ws") + "/ws", token=token)

    def store_log_lines(self) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if "hub.store:" in line]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    process = Serve(tmp_path / "data", tmp_path / "serve.log")
    yield process
    if process.process is not None and process.process.poll() is None:
        process.process.kill()
        process.process.wait()


async def readyz(url: str) -> tuple[int, dict[str, object]]:
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.get("/readyz")
    return response.status_code, response.json()


async def test_a_removed_data_directory_refuses_writes_reports_not_ready_and_logs_once(serve: Serve) -> None:
    serve.start()
    alice = await serve.client("alice")
    await alice.sub("chat:lobby")
    await alice.pub("chat:lobby", "chat.send", {"text": "before"})
    assert (await readyz(serve.url))[0] == 200

    shutil.rmtree(serve.data_dir)

    for text in ("after", "again"):  # never acknowledged into a file that is gone
        with pytest.raises(ReplyError) as refused:
            await alice.pub("chat:lobby", "chat.send", {"text": text})
        assert refused.value.code == "unavailable"
    status, body = await readyz(serve.url)
    assert status == 503
    assert body["ready"] is False
    assert body["started"] is True
    assert body["broker"] == "ok"
    assert body["store"] == "unavailable"
    assert "removed" in str(body["reason"])
    assert str(serve.data_dir) in str(body["reason"])
    assert await alice.call({"op": "ping"}) is None  # the socket survives
    assert not serve.data_dir.exists()  # never silently recreated under the running hub

    lines = serve.store_log_lines()
    assert len(lines) == 1, lines  # why, once, however many requests were refused
    assert "removed" in lines[0]
    assert "restart" in lines[0]
    assert "Traceback" not in serve.log.read_text()

    # Recovery is a restart: the hub starts on a new, empty database (or on one restored from a backup).
    serve.stop()
    serve.start()
    again = await serve.client("alice")
    assert (await again.sub("chat:lobby"))["snapshot"]["messages"] == []
    await again.pub("chat:lobby", "chat.send", {"text": "after the restart"})
    await again.close()
    await alice.close()


async def test_a_truncated_wal_index_is_unavailable_not_a_sigbus(serve: Serve) -> None:
    serve.start()
    alice = await serve.client("alice")
    await alice.sub("chat:lobby")
    await alice.pub("chat:lobby", "chat.send", {"text": "before"})
    shm = serve.data_dir / "hub.sqlite3-shm"
    assert shm.stat().st_size > 0

    os.truncate(shm, 0)  # the WAL index is mmap'd: touching it now would be a SIGBUS

    with pytest.raises(ReplyError) as refused:
        await alice.pub("chat:lobby", "chat.send", {"text": "after"})
    assert refused.value.code == "unavailable"
    assert serve.process is not None
    assert serve.process.poll() is None
    status, body = await readyz(serve.url)
    assert status == 503
    assert body["store"] == "unavailable"
    assert "hub.sqlite3-shm" in str(body["reason"])
    lines = serve.store_log_lines()
    [line] = lines
    assert "hub.sqlite3-shm" in line
    await alice.close()

    serve.stop()  # a clean shutdown, no SIGBUS while closing the database either
    assert serve.process is not None
    assert serve.process.returncode == -signal.SIGTERM
    assert "Traceback" not in serve.log.read_text()
    serve.start()  # and the data is intact after the restart
    bob = await serve.client("bob")
    assert [m["text"] for m in (await bob.sub("chat:lobby"))["snapshot"]["messages"]] == ["before"]
    await bob.close()


async def test_an_unwritable_wal_index_under_a_running_hub_is_unavailable_not_a_sigbus(serve: Serve) -> None:
    """chattr +i on the -shm: SQLite's next write through its mapping would be a SIGBUS, at shutdown too."""
    serve.start()
    alice = await serve.client("alice")
    await alice.sub("chat:lobby")
    await alice.pub("chat:lobby", "chat.send", {"text": "before"})
    with unwritable(serve.data_dir / "hub.sqlite3-shm"):
        for text in ("after", "again"):
            with pytest.raises(ReplyError) as refused:
                await alice.pub("chat:lobby", "chat.send", {"text": text})
            assert refused.value.code == "unavailable"
        status, body = await readyz(serve.url)
        assert status == 503
        assert "hub.sqlite3-shm" in str(body["reason"])
        await alice.close()
        serve.stop()
        assert serve.process is not None
        assert serve.process.returncode == -signal.SIGTERM  # not -SIGBUS
    refused_line, shutdown_line = serve.store_log_lines()
    assert "no longer writable" in refused_line
    assert "leaving" in shutdown_line  # the database is not closed: that would checkpoint through the mapping
    assert "Traceback" not in serve.log.read_text()
    serve.start()  # the WAL left behind is replayed: nothing acknowledged is lost
    bob = await serve.client("bob")
    assert [m["text"] for m in (await bob.sub("chat:lobby"))["snapshot"]["messages"]] == ["before"]
    await bob.close()


async def test_readyz_turns_red_without_any_write(serve: Serve) -> None:
    serve.start()
    (serve.data_dir / "hub.sqlite3-wal").unlink()  # the WAL the hub writes into is gone from the directory

    async def not_ready() -> bool:
        status, body = await readyz(serve.url)
        return status == 503 and "hub.sqlite3-wal" in str(body["reason"])

    await wait_until(not_ready, timeout=2)
    assert len(serve.store_log_lines()) == 1


def run_until_exit(serve: Serve) -> str:
    process = serve.launch()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"hub serve kept running:\n{serve.log.read_text()}") from None
    assert process.returncode != 0
    return serve.log.read_text()


def test_a_wal_index_that_is_not_a_regular_file_stops_serve_with_one_line(serve: Serve) -> None:
    serve.data_dir.mkdir()
    (serve.data_dir / "hub.sqlite3-shm").mkdir()
    output = run_until_exit(serve)
    assert "Traceback" not in output
    [line] = [line for line in output.splitlines() if "hub.sqlite3-shm" in line]
    assert "not a regular file" in line


def test_a_data_directory_that_is_a_file_stops_serve_with_one_line(serve: Serve) -> None:
    serve.data_dir.write_text("not a directory")
    output = run_until_exit(serve)
    assert "Traceback" not in output
    assert "is not a directory" in output


@contextlib.contextmanager
def unwritable(path: Path) -> Iterator[None]:
    """Make ``path`` unwritable for this process: chmod for a normal user; root needs the immutable flag."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        yield
        path.chmod(0o644)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
        reason = "running as root on a file system without chattr +i: no way to make a file unwritable"
        if os.environ.get("CI"):  # under CI the proof must run (.ci/run sets CI)
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_an_unwritable_wal_index_stops_serve_with_one_line(serve: Serve) -> None:
    serve.data_dir.mkdir()
    shm = serve.data_dir / "hub.sqlite3-shm"
    shm.write_bytes(b"")
    with unwritable(shm):
        output = run_until_exit(serve)
    assert "Traceback" not in output
    [line] = [line for line in output.splitlines() if "hub.sqlite3-shm" in line]
    assert "read and write" in line
