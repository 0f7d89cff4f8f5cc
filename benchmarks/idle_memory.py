#!/usr/bin/env python3
"""Where an idle connection's memory goes: tracemalloc in a hub process while N idle sockets are open.

    .venv/bin/python benchmarks/idle_memory.py                  # 1,000 connections, top 25 allocation sites
    .venv/bin/python benchmarks/idle_memory.py --connections 3000 --top 40 --group filename

The hub runs in this process (hub.testing.HubServer: uvicorn in a thread, the chat plugin, limits lifted), with
tracemalloc started before it. A snapshot is taken once the server is up, then `hub bench --idle N` opens N
connections from its own processes; once the hub counts N sessions a second snapshot is taken, and the
difference is printed per connection, grouped by allocation site (the innermost frame, or the file). This
counts Python allocations only; RSS per connection (`hub bench --spawn --idle N`) adds allocator overhead.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--top", type=int, default=25, help="allocation sites to print")
    parser.add_argument("--group", choices=("lineno", "filename"), default="lineno")
    parser.add_argument("--timeout", type=float, default=120.0, help="bound on opening the connections, s")
    args = parser.parse_args()

    tracemalloc.start(1)
    from hub.bench.server import LIFTED_LIMITS, hub_command
    from hub.session import Session
    from hub.settings import HubSettings
    from hub.testing import HubServer

    os.environ.update(LIFTED_LIMITS)
    with tempfile.TemporaryDirectory() as data_dir:
        settings = HubSettings(data_dir=Path(data_dir), plugins=["chat"], log_level="warning")
        with HubServer(settings) as server:
            sessions = server.app.state.hub.sessions
            time.sleep(0.5)
            gc.collect()
            before = tracemalloc.take_snapshot()
            hold = args.timeout + 30
            argv = ["bench", "--url", server.ws_url, "--idle", str(args.connections), "--hold", str(hold)]
            argv += ["--timeout", str(args.timeout), "--json"]
            bench = subprocess.Popen([*hub_command(), *argv], stdout=subprocess.DEVNULL)
            try:
                deadline = time.monotonic() + args.timeout
                while len(sessions) < args.connections:
                    if bench.poll() is not None or time.monotonic() > deadline:
                        print(f"only {len(sessions)} connections opened", file=sys.stderr)
                        return 1
                    time.sleep(0.2)
                time.sleep(1.0)
                gc.collect()
                after = tracemalloc.take_snapshot()
                count = sum(1 for obj in gc.get_objects() if type(obj) is Session)
            finally:
                bench.terminate()
                bench.wait()
    stats = after.compare_to(before, args.group)
    total = sum(stat.size_diff for stat in stats)
    print(f"{count} sessions; Python allocations per connection: {total / count:,.0f} bytes")
    print(f"{'bytes/conn':>10} {'blocks/conn':>11}  site")
    for stat in stats[: args.top]:
        frame = stat.traceback[0]
        site = frame.filename if args.group == "filename" else f"{frame.filename}:{frame.lineno}"
        print(f"{stat.size_diff / count:10,.0f} {stat.count_diff / count:11.2f}  {site}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
