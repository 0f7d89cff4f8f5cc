"""``hub listen CHANNEL``: a channel's events printed live, one line each, until Ctrl-C, through outages.

Built on :class:`hub.client.Client`: events on stdout, the connection's story (connected, reconnecting, recovered
or reset) on stderr. Exit status: 0 after Ctrl-C or SIGTERM, 1 when the hub refuses the credentials or the
channel, 2 for a usage error; every failure is one line on stderr.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from typing import Annotated, Any

import orjson
import typer

from hub.client import Client, ClientError, Event, StateChange, SubscriptionInfo
from hub.protocol import NAMESPACE_RE, ROOM_RE

DEFAULT_SERVER = "ws://127.0.0.1:8000/ws"
MAX_CHANNEL = 1024  # the envelope's bound on `ch` (docs/protocol.md §14)


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=code)


def _channel(value: str) -> str:
    namespace, sep, room = value.partition(":")
    if len(value) > MAX_CHANNEL or not sep or not NAMESPACE_RE.fullmatch(namespace) or not ROOM_RE.fullmatch(room):
        raise _fail(f"{value!r} is not a channel: use <namespace>:<room>, such as chat:lobby", 2)
    return value


def _since(value: str | None) -> tuple[str, int] | None:
    if value is None:
        return None
    epoch, sep, offset = value.rpartition(":")
    if not sep or not epoch or len(epoch) > 64 or not offset.isdigit() or int(offset) > 2**53:
        raise _fail(f"--since {value!r}: use EPOCH:OFFSET, as the 'subscribed' line of --json gives them", 2)
    return epoch, int(offset)


def listen(
    channel: Annotated[
        str, typer.Argument(metavar="CHANNEL", help="The channel to follow, <namespace>:<room> (chat:lobby).")
    ],
    server: Annotated[
        list[str] | None,
        typer.Option(
            metavar="URL", help=f"The hub's socket URL (default {DEFAULT_SERVER}); repeat it for several nodes."
        ),
    ] = None,
    token: Annotated[
        str | None, typer.Option(metavar="JWT", help="A token (hub token --user alice); without one, a guest.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(metavar="EPOCH:OFFSET", help="Start after this position, with the events missed since then."),
    ] = None,
    json_lines: Annotated[
        bool, typer.Option("--json", help="Print each event as its JSON ev frame, and each sub reply.")
    ] = False,
) -> None:
    """Print a channel's events live, one line each, until Ctrl-C; reconnects (and recovers) through outages."""
    followed = _channel(channel)
    position = _since(since)
    try:
        client = Client(server or [DEFAULT_SERVER], token=token)
    except ValueError as exc:
        raise _fail(str(exc), 2) from None
    try:
        status = asyncio.run(Listener(client, followed, json_lines).run(position))
    except KeyboardInterrupt:  # Ctrl-C before the loop took the signal over
        status = 0
    if status:
        raise typer.Exit(code=status)


class Listener:
    """One run of ``hub listen``: the client's callbacks print, and the first reason to stop ends the run."""

    def __init__(self, client: Client, channel: str, json_lines: bool) -> None:
        self.client = client
        self.channel = channel
        self.json_lines = json_lines
        self.done: asyncio.Future[int] | None = None

    async def run(self, since: tuple[str, int] | None) -> int:
        loop = asyncio.get_running_loop()
        self.done = loop.create_future()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.finish, 0)
        client = self.client
        client.on("open", self.opened)
        client.on("reconnecting", self.reconnecting)
        client.on("closed", self.closed)
        client.subscribe(
            self.channel, on_event=self.event, on_subscribed=self.subscribed, on_error=self.refused, since=since
        )
        try:
            async with client:
                return await self.done
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    def finish(self, status: int, message: str | None = None) -> None:
        if self.done is not None and not self.done.done():
            if message is not None:
                typer.echo(f"error: {message}", err=True)
            self.done.set_result(status)

    @staticmethod
    def note(text: str) -> None:
        typer.echo(text, err=True)

    def out(self, line: str) -> None:
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            # The reader went away (`hub listen … | head`): stop quietly, and keep the exit's flush from failing.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            self.finish(0)

    # ---- the client's callbacks --------------------------------------------------------------------------

    def event(self, event: Event) -> None:
        if self.json_lines:
            self.out(orjson.dumps(event.as_frame()).decode())
            return
        offset = f" #{event.offset}" if event.offset is not None else ""
        data = orjson.dumps(event.data).decode()
        self.out(f"{time.strftime('%H:%M:%S')} {event.type}{offset} {data}")

    def subscribed(self, info: SubscriptionInfo) -> None:
        if self.json_lines:
            line: dict[str, Any] = {
                "op": "subscribed", "ch": info.channel, "epoch": info.epoch, "offset": info.offset,
                "recovered": info.recovered, "reset": info.reset, "missed": info.missed,
            }  # fmt: skip
            if info.has_snapshot:
                line["snapshot"] = info.snapshot
            self.out(orjson.dumps(line).decode())
        position = f" at {info.epoch}:{info.offset}" if info.epoch is not None else ""
        if info.recovered:
            self.note(f"following {info.channel}{position}: {info.missed} missed events recovered")
        elif info.reset:
            self.note(f"following {info.channel}{position}: the missed events are gone, starting again from now")
        else:
            self.note(f"following {info.channel}{position}")

    def refused(self, error: ClientError) -> None:
        if error.retrying:
            self.note(f"the hub refused {self.channel} for now ({error}); trying again")
        elif error.revoked:
            self.finish(1, f"the hub ended the subscription to {self.channel}: {error}")
        else:
            self.finish(1, f"the hub refused {self.channel}: {error}")

    def opened(self, change: StateChange) -> None:
        me = change.me
        who = "without an identity" if me is None else f"as {me.name}" + (" (a guest)" if me.anonymous else "")
        self.note(f"connected to {change.url} {who}")

    def reconnecting(self, change: StateChange) -> None:
        code = f"code {change.code}" if change.code is not None else change.cause
        why = f"{code}: {change.reason}" if change.reason else str(code)
        self.note(f"no connection to {change.url} ({why}); trying again in {change.delay or 0:.1f} s")

    def closed(self, change: StateChange) -> None:
        if change.cause == "client":
            return
        if change.cause == "error":
            self.finish(1, f"cannot connect: {change.reason}")
            return
        code = f"{change.code}: " if change.code is not None else ""
        self.finish(1, f"the hub refused the connection ({code}{change.reason})")
