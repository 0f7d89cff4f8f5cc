"""``--spawn``: a ``hub serve --plugins chat`` of its own on a free 127.0.0.1 port, with the limits a flood
needs lifted through its environment, stopped (with its workers) when the run ends."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from hub.bench.client import BenchError

# The defaults (5 chat.send/s, 50 frames/s per connection, 1000 queued frames per client) are meant for
# browsers: a benchmark's publisher and subscribers would be refused (rate_limited, then 4008) or closed (4009).
LIFTED_LIMITS = {
    "HUB_CHAT_SEND_RATE": "100000",
    "HUB_CHAT_SEND_BURST": "100000",
    "HUB_RATE_LIMIT": "100000",
    "HUB_RATE_BURST": "100000",
    "HUB_SEND_QUEUE_MAX_FRAMES": "100000",
}
DEFAULT_LIMITS = {
    "HUB_CHAT_SEND_RATE": "5",
    "HUB_CHAT_SEND_BURST": "10",
    "HUB_RATE_LIMIT": "50",
    "HUB_RATE_BURST": "100",
    "HUB_SEND_QUEUE_MAX_FRAMES": "1000",
}
QUIET_LOG = {"HUB_LOG_LEVEL": "warning"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def hub_command() -> list[str]:
    """The ``hub`` console script beside this Python, else the one on PATH, else ``python -c`` the CLI."""
    beside = Path(sys.executable).parent / "hub"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("hub")
    return [found] if found else [sys.executable, "-c", "from hub.cli import main; main()"]


def wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise BenchError(f"the hub exited with {proc.returncode} before it was ready:\n{tail(log)}")
        with contextlib.suppress(OSError):
            if http_get(f"http://127.0.0.1:{port}/readyz", timeout=1)[0] == 200:
                return
        if time.monotonic() > deadline:
            raise BenchError(f"the hub was not ready (/readyz != 200) within {timeout:.0f} s:\n{tail(log)}")
        time.sleep(0.05)


class SpawnedHub:
    """A context manager: ``hub serve`` started on enter (ready when it returns), stopped on exit."""

    def __init__(self, workers: int = 1, redis_url: str | None = None, ready_timeout: float = 60.0) -> None:
        self.workers = workers
        self.redis_url = redis_url
        self.ready_timeout = ready_timeout
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="hub-bench-"))
        self.log = self.workdir / "hub.log"
        self.settings = {**LIFTED_LIMITS, **QUIET_LOG}
        self.proc: subprocess.Popen[bytes] | None = None
        self.command = ""

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> SpawnedHub:
        argv = [*hub_command(), "serve", "--plugins", "chat", "--host", "127.0.0.1", "--port", str(self.port)]
        argv += ["--data-dir", str(self.workdir / "data")]
        if self.workers > 1:
            argv += ["--workers", str(self.workers)]
        if self.redis_url:
            argv += ["--redis", self.redis_url]
        self.command = " ".join(["hub", *argv[len(hub_command()) :]])
        # A clean hub environment, except the event loop, which a benchmark may choose (HUB_LOOP=asyncio|uvloop).
        env = {key: value for key, value in os.environ.items() if not key.startswith("HUB_") or key == "HUB_LOOP"}
        env.update(self.settings)
        with open(self.log, "wb") as out:
            # own session: a Ctrl-C in the terminal reaches only ``hub bench``, which then stops it itself
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.workdir, start_new_session=True
            )
        try:
            wait_ready(self.proc, self.port, self.log, self.ready_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: the workers go with it
            proc.wait()

    def log_lines(self, limit: int = 10) -> list[str]:
        lines = [line for line in tail(self.log, 200).splitlines() if line.strip()]
        return lines[:limit]
