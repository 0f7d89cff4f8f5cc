"""Start one named peer server in the foreground, so an orchestrator can spawn every peer the same way.

    python benchmarks/peers/run.py ws|fastapi|socketio|channels|channels-redis --port P
        [--host 127.0.0.1] [--workers N] [--redis redis://127.0.0.1:6379/0]

`--port 0` picks free consecutive ports. Prints one line per server process,
`pid <PID> port <PORT> url <URL> protocol <PROTOCOL>` (the port actually used), then `ready` once every port accepts
connections, and stays in the foreground until SIGINT or SIGTERM, which it passes on to the servers. If a
server exits on its own, the others are stopped and run.py exits with its code.

`--workers N` starts N independent server processes on ports P, P+1, ..., P+N-1 (not uvicorn's workers
sharing one socket), so the load generator decides which process each client talks to and can read each
PID's CPU time. More than one process only makes sense for `channels-redis`, whose processes share groups
through Redis (workload W5); the other peers keep their rooms in one process.

Only the standard library is used here: run it with any Python 3.11. The servers run on the peers' own
environment, benchmarks/peers/.venv (made by benchmarks/peers/setup), unless --python says otherwise.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV_PYTHON = HERE / ".venv" / "bin" / "python"


@dataclass(frozen=True)
class Peer:
    module: str
    protocol: str  # "plain" or "socketio": what the load generator speaks to it
    path: str
    needs_redis: bool = False


PEERS: dict[str, Peer] = {
    "ws": Peer("ws_broadcast", "plain", "/ws"),
    "fastapi": Peer("fastapi_manager", "plain", "/ws"),
    "socketio": Peer("socketio_server", "socketio", "/socket.io/"),
    "channels": Peer("channels_app", "plain", "/ws"),
    "channels-redis": Peer("channels_app", "plain", "/ws", needs_redis=True),
}


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", choices=sorted(PEERS))
    parser.add_argument(
        "--port", type=int, required=True, help="port of the first (or only) process; 0 picks free consecutive ports"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--workers", type=int, default=1, help="server processes, on consecutive ports")
    parser.add_argument("--redis", help="Redis URL for channels-redis (CHANNELS_REDIS_URL)")
    parser.add_argument("--python", help=f"interpreter of the servers (default: {VENV_PYTHON} if it exists)")
    parser.add_argument("--ready-timeout", type=float, default=30.0, help="seconds to wait for the ports")
    arguments = parser.parse_args(argv)
    peer = PEERS[arguments.server]
    if peer.needs_redis and not arguments.redis:
        parser.error(f"{arguments.server} needs --redis URL")
    if arguments.redis and not peer.needs_redis:
        parser.error(f"{arguments.server} does not use Redis (did you mean channels-redis?)")
    if arguments.workers < 1:
        parser.error("--workers must be at least 1")
    return arguments


def server_environment(redis_url: str | None) -> dict[str, str]:
    environment = dict(os.environ)
    environment.pop("CHANNELS_REDIS_URL", None)
    if redis_url:
        environment["CHANNELS_REDIS_URL"] = redis_url
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


def is_listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def free_ports(count: int, host: str = "127.0.0.1") -> int:
    """Return the first of `count` consecutive ports that are free on `host` right now."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind((host, 0))
            first = probe.getsockname()[1]
        if first + count > 65535:
            continue
        sockets = []
        try:
            for port in range(first, first + count):
                candidate = socket.socket()
                sockets.append(candidate)
                candidate.bind((host, port))
            return first
        except OSError:
            continue
        finally:
            for candidate in sockets:
                candidate.close()
    raise RuntimeError(f"no {count} consecutive free ports")


def stop(processes: list[subprocess.Popen[bytes]], timeout: float = 10.0) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    peer = PEERS[arguments.server]
    python = arguments.python or (str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable)
    first = arguments.port or free_ports(arguments.workers, arguments.host)
    ports = [first + index for index in range(arguments.workers)]
    scheme_host = f"ws://{arguments.host}"

    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    processes: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            command = [python, "-m", peer.module, "--host", arguments.host, "--port", str(port)]
            # A new session so a Ctrl-C in the terminal reaches run.py only, which then stops the servers in order.
            process = subprocess.Popen(
                command, cwd=HERE, env=server_environment(arguments.redis), start_new_session=True
            )
            processes.append(process)
            print(f"pid {process.pid} port {port} url {scheme_host}:{port}{peer.path} protocol {peer.protocol}")
        sys.stdout.flush()

        deadline = time.monotonic() + arguments.ready_timeout
        waiting = set(ports)
        while waiting and not stopping:
            for process in processes:
                if process.poll() is not None:
                    print(f"error: server pid {process.pid} exited with {process.returncode}", file=sys.stderr)
                    return process.returncode or 1
            waiting = {port for port in waiting if not is_listening(arguments.host, port)}
            if waiting and time.monotonic() > deadline:
                missing = sorted(waiting)
                print(f"error: ports {missing} not listening after {arguments.ready_timeout} s", file=sys.stderr)
                return 1
            if waiting:
                time.sleep(0.05)
        if not stopping:
            print("ready", flush=True)

        while not stopping:
            for process in processes:
                if process.poll() is not None:
                    print(f"error: server pid {process.pid} exited with {process.returncode}", file=sys.stderr)
                    return process.returncode or 1
            time.sleep(0.1)
        return 0
    finally:
        stop(processes)


if __name__ == "__main__":
    sys.exit(main())
