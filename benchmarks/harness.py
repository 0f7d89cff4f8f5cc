"""What the benchmark scripts share (fanout.py, compare.py, livedata.py): processes started and always stopped, a
private redis-server, `hub serve` processes, readiness, statistics cells, and the machine and versions they ran on."""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from hub.bench.client import BenchError
from hub.bench.server import LIFTED_LIMITS, free_port, http_get, tail

ROOT = Path(__file__).resolve().parent.parent

# Limits lifted in every hub's environment (hub.bench.server.LIFTED_LIMITS): the defaults (5 chat.send/s, 50
# frames/s per connection, 1000 queued frames per client) are meant for browsers, and would throttle or close
# the benchmark's clients.
HUB_ENV = {**LIFTED_LIMITS, "HUB_LOG_LEVEL": "warning"}


# ---- processes under test --------------------------------------------------------------------------------


class Processes:
    """Everything one run starts; ``close`` ends all of it, in reverse order, whatever happened."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.popens: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = self.workdir / f"{name}.log"
        with open(log, "wb") as out:
            # Own session: a Ctrl-C in the terminal reaches only this script, which then stops them itself.
            proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.workdir, start_new_session=True
            )
        self.popens.append((name, proc, log))
        return proc

    def close(self) -> None:
        # Hubs first (together), Redis last: a hub that outlived its Redis would log a lost connection.
        for group in (
            [proc for name, proc, _log in self.popens if name != "redis"],
            [proc for name, proc, _log in self.popens if name == "redis"],
        ):
            for proc in group:
                if proc.poll() is None:
                    proc.terminate()
            for proc in group:
                try:
                    proc.wait(timeout=8)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def start_redis(procs: Processes, binary: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    argv += ["--dir", str(procs.workdir)]
    proc = procs.spawn("redis", argv, dict(os.environ))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"redis-server exited with {proc.returncode}:\n{tail(procs.workdir / 'redis.log')}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            if sock.recv(64).startswith(b"+PONG"):
                return proc, f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    raise BenchError("redis-server did not answer PING within 10 s")


def start_hub(
    procs: Processes,
    hub_bin: str,
    index: int,
    redis_url: str | None,
    extra_env: dict[str, str] | None = None,
    plugins: str = "chat",
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    data_dir = procs.workdir / f"hub{index}"
    argv = [hub_bin, "serve", "--port", str(port), "--plugins", plugins, "--data-dir", str(data_dir)]
    if redis_url is not None:
        argv += ["--redis", redis_url]
    # HUB_LOOP passes through, so `HUB_LOOP=asyncio benchmarks/<load>.py` measures the hub on that loop.
    env = {key: value for key, value in os.environ.items() if not key.startswith("HUB_") or key == "HUB_LOOP"}
    env.update(HUB_ENV)
    env.update(extra_env or {})
    return procs.spawn(f"hub{index}", argv, env), port


def wait_ready(procs: Processes, hubs: list[tuple[subprocess.Popen[bytes], int]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for index, (proc, port) in enumerate(hubs):
        while True:
            if proc.poll() is not None:
                log = tail(procs.workdir / f"hub{index}.log")
                raise BenchError(f"hub{index} exited with {proc.returncode} before it was ready:\n{log}")
            with contextlib.suppress(OSError):
                status, _body = http_get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                if status == 200:
                    break
            if time.monotonic() > deadline:
                raise BenchError(f"hub{index} not ready (/readyz != 200) within {timeout:.0f} s")
            time.sleep(0.05)


def redis_commandstats(url: str) -> dict[str, int]:
    """Calls per command (lower case) from Redis ``INFO commandstats``, over a raw socket."""
    host_port = url.split("://", 1)[1].split("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"INFO commandstats\r\n")
        data = b""
        while b"\r\n" not in data:
            data += sock.recv(65536)
        head, _, rest = data.partition(b"\r\n")
        length = int(head[1:])
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
    calls: dict[str, int] = {}
    for line in rest[:length].decode().splitlines():
        if line.startswith("cmdstat_"):
            name, _, fields = line[len("cmdstat_") :].partition(":")
            for field in fields.split(","):
                key, _, value = field.partition("=")
                if key == "calls":
                    calls[name.lower()] = int(value)
    return calls


# ---- reporting -----------------------------------------------------------------------------------------------


def cell(stats: dict[str, float] | None, fmt: str, runs: int) -> str:
    if stats is None:
        return "\N{EN DASH}"
    text = fmt.format(stats["median"])
    if runs > 1 and stats["min"] != stats["max"]:
        text += f" ({fmt.format(stats['min'])}\N{EN DASH}{fmt.format(stats['max'])})"
    return text


def machine() -> dict[str, Any]:
    versions = {}
    for package in ("uvicorn", "websockets", "h11", "redis", "fastapi", "orjson", "pydantic", "uvloop", "httptools"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "hub_loop": os.environ.get("HUB_LOOP", "auto"),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.partition(":")[2].strip()
                break
    return info


def hub_revision() -> str | None:
    """The git commit the hub was run from, with "+uncommitted changes" when hub/ or plugins/ differ from it."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10, cwd=ROOT
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "hub", "plugins"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=ROOT,
        ).stdout.strip()
        return (commit + (" +uncommitted changes in hub/ or plugins/" if dirty else "")) or None
    return None


def redis_version(binary: str) -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
        for part in out.split():
            if part.startswith("v="):
                return part[2:]
    return None
