"""The ``hub bench`` command: options, the loopback check, ``--spawn``, and where the report goes."""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import sys
from typing import Annotated
from urllib.parse import urlsplit

import typer

from hub.bench.adapters import ADAPTERS
from hub.bench.client import BenchError
from hub.bench.report import Progress, Report, problems, table, to_json
from hub.bench.runner import FanoutConfig, IdleConfig, run_fanout, run_idle
from hub.bench.server import DEFAULT_LIMITS, LIFTED_LIMITS, SpawnedHub

DEFAULT_URL = "ws://127.0.0.1:8000/ws"


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def limits_advice() -> str:
    lifted = " ".join(f"{key}={value}" for key, value in LIFTED_LIMITS.items())
    defaults = ", ".join(f"{key}={value}" for key, value in DEFAULT_LIMITS.items())
    return (
        "note: a hub on its defaults (" + defaults + ") refuses a flood (rate_limited, then close 4008) or closes "
        "slow subscribers (4009). Start it with the limits lifted, e.g.\n  " + lifted + " hub serve --plugins chat\n"
        "or use --spawn. Errors and closes seen during the run are reported."
    )


def bench(
    url: Annotated[str, typer.Option(help="WebSocket URL of the server under test.")] = DEFAULT_URL,
    protocol: Annotated[str, typer.Option(help="Wire protocol: " + ", ".join(ADAPTERS) + ".")] = "hub",
    subscribers: Annotated[
        int, typer.Option(min=0, help="Subscriber connections; 0 publishes to rooms nobody follows.")
    ] = 10,
    rooms: Annotated[int, typer.Option(min=1, help="Rooms chat:bench-<r>; subscribers spread evenly.")] = 1,
    publishers: Annotated[int, typer.Option(min=1, help="Publisher connections (each round-robins the rooms).")] = 1,
    size: Annotated[int, typer.Option(min=1, max=2000, help="Message text size in bytes.")] = 64,
    rate: Annotated[
        float, typer.Option(min=0, help="Messages/s per publisher; 0 floods (each send waits for its reply).")
    ] = 0.0,
    messages: Annotated[
        int | None, typer.Option(min=1, help="Messages per publisher (default 100 unless --duration).")
    ] = None,
    duration: Annotated[float | None, typer.Option(min=0, help="Publish for this many seconds instead.")] = None,
    clients: Annotated[int, typer.Option(min=1, help="Load-generator worker processes.")] = 2,
    timeout: Annotated[float, typer.Option(min=1, help="Bound on each phase (connect, no progress), s.")] = 30.0,
    drain_idle: Annotated[
        float, typer.Option(help="After the last send, stop waiting once nothing arrived for this long, s.")
    ] = 2.0,
    pid: Annotated[
        list[int] | None, typer.Option(help="Server process to measure (CPU, RSS, with its children); repeatable.")
    ] = None,
    idle: Annotated[
        int | None, typer.Option(min=1, help="Idle mode: open this many connections, hold them, report RSS each.")
    ] = None,
    hold: Annotated[float, typer.Option(min=0, help="Idle mode: how long to hold the connections, s.")] = 5.0,
    idle_extra: Annotated[
        int, typer.Option(min=0, help="Publishing: also hold this many idle connections (in no room) open.")
    ] = 0,
    spawn: Annotated[bool, typer.Option(help="Start `hub serve --plugins chat` with the limits lifted.")] = False,
    workers: Annotated[int, typer.Option(min=1, help="--spawn: hub worker processes (needs --redis if > 1).")] = 1,
    redis: Annotated[str | None, typer.Option(help="--spawn: Redis URL for the spawned hub.")] = None,
    allow_remote: Annotated[bool, typer.Option(help="Allow a server URL that is not on a loopback address.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout.")] = False,
) -> None:
    """Measure a server: fan-out throughput, latency, loss and its CPU/RSS, or idle connections (--idle)."""
    if protocol not in ADAPTERS:
        raise typer.BadParameter(f"choose from {', '.join(ADAPTERS)}", param_hint="--protocol")
    if not spawn and not allow_remote and not is_loopback(url):
        raise typer.BadParameter("not a loopback address; pass --allow-remote to measure it", param_hint="--url")
    if spawn and protocol != "hub":
        raise typer.BadParameter("--spawn starts a hub: use --protocol hub", param_hint="--protocol")
    if workers > 1 and not redis:
        raise typer.BadParameter("more than one hub worker needs --redis", param_hint="--workers")
    if messages is not None and duration:
        raise typer.BadParameter("give --messages or --duration, not both", param_hint="--messages")
    if idle is not None and idle_extra:
        raise typer.BadParameter("--idle-extra is for publishing runs, not --idle", param_hint="--idle-extra")
    progress = Progress()
    if not spawn and protocol == "hub" and idle is None:
        typer.echo(limits_advice(), err=True)
    if spawn:
        progress.update("starting", 0, None, f"hub serve --plugins chat ({workers} worker(s)), waiting for /readyz")
    try:
        with SpawnedHub(workers, redis) if spawn else contextlib.nullcontext() as hub:
            target = hub.url if hub is not None else url
            pids = [hub.pid] if hub is not None else list(pid or [])
            report: Report
            if idle is not None:
                report = run_idle(IdleConfig(target, protocol, idle, hold, clients, timeout), pids, progress)
            else:
                count = messages if messages is not None else (0 if duration else 100)
                config = FanoutConfig(
                    (target,),
                    protocol,
                    subscribers,
                    rooms,
                    publishers,
                    size,
                    rate,
                    count,
                    duration or 0.0,
                    clients,
                    timeout,
                    drain_idle,
                    idle_extra,
                )
                report = run_fanout(config, pids, progress)
            if hub is not None:
                report.notes.extend(f"hub logged: {line}" for line in hub.log_lines())
                report = dataclasses.replace(report, settings_changed=dict(hub.settings), server_command=hub.command)
    except BenchError as exc:
        progress.done()
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=1) from None
    except KeyboardInterrupt:
        progress.done()
        typer.echo("interrupted; the client processes and any spawned hub were stopped", err=True)
        raise typer.Exit(code=130) from None
    if json_output:
        sys.stdout.write(to_json(report) + "\n")
    else:
        typer.echo(table(report))
    found = problems(report)
    if found:
        typer.secho("problems: " + "; ".join(found), err=True, fg=typer.colors.RED)
        raise typer.Exit(code=1)
