"""The server API's commands: ``hub publish``, ``channels``, ``presence``, ``history``, ``clients``, ``disconnect``
and ``nodes``, each one call of :class:`hub.api_client.HubAPI` to a running hub (``--server``, ``HUB_URL``).

Failures are one line on stderr: exit 2 for a usage error (no credentials, DATA that is not JSON), 1 when the hub
refused or could not be reached.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, TypeVar

import orjson
import typer
from pydantic import BaseModel

from hub.api_client import HubAPI, HubAPIError
from hub.types import JSON

USAGE_ERROR = 2
FAILURE = 1
MAX_DATA_BYTES = 1024 * 1024  # DATA from stdin

T = TypeVar("T")

Server = Annotated[str, typer.Option("--server", envvar="HUB_URL", help="The hub's base URL (any node of a cluster).")]
ApiKey = Annotated[str | None, typer.Option(envvar="HUB_API_KEY", help="An API key from the hub's HUB_API_KEYS.")]
Token = Annotated[
    str | None,
    typer.Option(envvar="HUB_TOKEN", help="Or a JWT with the admin scope (publish: the publish scope is enough)."),
]
Timeout = Annotated[float, typer.Option(help="Seconds to wait for the hub.")]
Json = Annotated[bool, typer.Option("--json", help="Print the hub's JSON answer.")]
Limit = Annotated[int, typer.Option(min=1, max=1000, help="The most entries to list.")]

DEFAULT_SERVER = "http://127.0.0.1:8000"


def _fail(message: str, code: int) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=code)


def _call(
    server: str, api_key: str | None, token: str | None, timeout: float, call: Callable[[HubAPI], Awaitable[T]]
) -> T:
    """Run one call of the API; any failure is one line and an exit status."""
    if not api_key and not token:
        raise _fail("give --api-key (or HUB_API_KEY) or --token (or HUB_TOKEN)", USAGE_ERROR)
    if not server.startswith(("http://", "https://")):
        raise _fail(f"--server must be an http:// or https:// URL, not {server!r}", USAGE_ERROR)

    async def run() -> T:
        async with HubAPI(server, api_key=api_key or None, token=None if api_key else token, timeout=timeout) as api:
            return await call(api)

    try:
        return asyncio.run(run())
    except HubAPIError as exc:
        raise _fail(str(exc), FAILURE) from None


def _print_json(model: BaseModel) -> None:
    typer.echo(model.model_dump_json())


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _warn_missing(missing: Sequence[str]) -> None:
    if missing:
        typer.echo(f"warning: no answer from node(s) {', '.join(missing)}; their share is left out", err=True)


def _data(text: str | None) -> JSON:
    if text is None:
        return None
    if text == "-":
        text = sys.stdin.read(MAX_DATA_BYTES + 1)
        if len(text) > MAX_DATA_BYTES:
            raise _fail(f"DATA from stdin is larger than {MAX_DATA_BYTES} bytes", USAGE_ERROR)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise _fail(f"DATA is not JSON: {exc}", USAGE_ERROR) from None


def publish(
    channel: Annotated[str, typer.Argument(metavar="CHANNEL", help="The channel, <namespace>:<room> (chat:lobby).")],
    message_type: Annotated[str, typer.Argument(metavar="TYPE", help="The message type (chat.send).")],
    data: Annotated[
        str | None, typer.Argument(metavar="DATA", help="The message as JSON ('-': read it from stdin).")
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Makes a retry publish once (1..64 characters, like a socket pub's mid).")
    ] = None,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
    token: Token = None,
    timeout: Timeout = 10.0,
    json_output: Json = False,
) -> None:
    """Publish a message to any channel through a running hub, as a client's pub would be handled (the type's
    model, the channel's policies, the plugin's handler). Prints the handler's reply.

    Exit status: 0 published (or a repeated --idempotency-key), 1 the hub refused or could not be reached, 2 usage.
    """
    value = _data(data)
    result = _call(
        server,
        api_key,
        token,
        timeout,
        lambda api: api.publish(channel, message_type, value, idempotency_key=idempotency_key),
    )
    if json_output:
        _print_json(result)
    elif result.duplicate:
        typer.echo("duplicate: published before with this idempotency key, not again")
    else:
        typer.echo(orjson.dumps(result.data).decode())


def channels(
    prefix: Annotated[str, typer.Option(help="Only channels whose name starts with this (chat:).")] = "",
    limit: Limit = 100,
    cursor: Annotated[str | None, typer.Option(help="Start after this channel (a previous page's last).")] = None,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
    token: Token = None,
    timeout: Timeout = 10.0,
    json_output: Json = False,
) -> None:
    """List channels with subscribers, on every node of the hub, with their subscriber counts."""
    page = _call(server, api_key, token, timeout, lambda api: api.channels(prefix, limit=limit, cursor=cursor))
    if json_output:
        _print_json(page)
        return
    _warn_missing(page.missing_nodes)
    rows = [("CHANNEL", "SUBSCRIBERS", "NODES")]
    rows += [(info.channel, str(info.subscribers), str(info.nodes)) for info in page.channels]
    _table(rows)
    if page.cursor is not None:
        typer.echo(f"more: --cursor {page.cursor}", err=True)


def presence(
    channel: Annotated[str, typer.Argument(metavar="CHANNEL", help="A channel with presence (chat:lobby).")],
    limit: Annotated[int | None, typer.Option(min=1, help="Members per page (at most the hub's list limit).")] = None,
    cursor: Annotated[str | None, typer.Option(help="A previous page's cursor.")] = None,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
    token: Token = None,
    timeout: Timeout = 10.0,
    json_output: Json = False,
) -> None:
    """List who is in a channel (one page) and how many they are, on every node."""
    page = _call(server, api_key, token, timeout, lambda api: api.presence(channel, cursor=cursor, limit=limit))
    if json_output:
        _print_json(page)
        return
    rows = [("CLIENT", "USER", "NAME")] + [(m.client, m.user, m.name) for m in page.members]
    _table(rows)
    typer.echo(f"{page.count} member(s)")
    if page.cursor is not None:
        typer.echo(f"more: --cursor {page.cursor}", err=True)


def history(
    channel: Annotated[str, typer.Argument(metavar="CHANNEL", help="A recoverable channel (chat:lobby).")],
    since: Annotated[int | None, typer.Option(min=0, help="Events after this offset (default: the latest).")] = None,
    limit: Limit = 100,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
    token: Token = None,
    timeout: Timeout = 10.0,
    json_output: Json = False,
) -> None:
    """Print a channel's kept events (the history recovery serves): offset, type and data, one per line."""
    page = _call(server, api_key, token, timeout, lambda api: api.history(channel, since=since, limit=limit))
    if json_output:
        _print_json(page)
        return
    if page.truncated:
        typer.echo(f"warning: events after offset {since} are no longer kept (or are of another epoch)", err=True)
    for event in page.events:
        typer.echo(f"{event.offset}  {event.type}  {orjson.dumps(event.data).decode()}")
    typer.echo(f"epoch {page.epoch}, last offset {page.offset}", err=True)


def clients(
    user: Annotated[str | None, typer.Option(help="Only this user's connections.")] = None,
    limit: Limit = 100,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
    token: Token = None,
    timeout: Timeout = 10.0,
    json_output: Json = False,
) -> None:
    """List live connections on every node, oldest first."""
    page = _call(server, api_key, token, timeout, lambda api: api.clients(user=user, limit=limit))
    if json_output:
        _print_json(page)
        return
    _warn_missing(page.missing_nodes)
    rows = [("CLIENT", "USER", "NODE", "CONNECTED", "ADDRESS", "CHANNELS")]
    for info in page.clients:
        connected = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.connected_at))
        channels_text = ",".join(info.channels[:5]) + (f",+{len(info.channels) - 5}" if len(info.channels) > 5 else "")
        rows.append((info.client, info.user or "-", info.node, connected, info.address or "-", channels_text or "-"))
    _table(rows)
    typer.echo(f"{page.total} connection(s)")


def disconnect(
    user: Annotated[str | None, typer.Option(help="Close every connection of this user.")] = None,
    client: Annotated[str | None, typer.Option(help="Close this one connection (a client id).")] = None,
    code: Annotated[int, typer.Option(min=4000, max=4999, help="The close code.")] = 4011,
    reason: Annotated[
        str, typer.Option(help="The close reason (an English sentence).")
    ] = "Disconnected by the server.",
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
    token: Token = None,
    timeout: Timeout = 10.0,
    json_output: Json = False,
) -> None:
    """Disconnect a user (every connection) or one client, on every node of the hub."""
    if user is None and client is None:
        raise _fail("give --user or --client", USAGE_ERROR)
    result = _call(
        server,
        api_key,
        token,
        timeout,
        lambda api: api.disconnect(user=user, client=client, code=code, reason=reason),
    )
    if json_output:
        _print_json(result)
        return
    _warn_missing(result.missing_nodes)
    typer.echo(f"closed {result.closed} connection(s)")


def nodes(
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
    token: Token = None,
    timeout: Timeout = 10.0,
    json_output: Json = False,
) -> None:
    """List the hub's live nodes with their connections and subscriptions."""
    info = _call(server, api_key, token, timeout, lambda api: api.info())
    if json_output:
        _print_json(info)
        return
    rows = [("NODE", "HOST", "PID", "UP", "CONNECTIONS", "SUBSCRIPTIONS", "CHANNELS")]
    now = time.time()
    for node in info.nodes:
        up = _duration(now - node.started_at) + ("" if node.reachable else " (no answer)")
        counts = (str(node.connections), str(node.subscriptions), str(node.channels))
        rows.append((node.node + ("*" if node.node == info.node else ""), node.host, str(node.pid), up, *counts))
    _table(rows)


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    return f"{days}d{hours}h" if days else f"{hours}h{minutes}m" if hours else f"{minutes}m{seconds}s"


COMMANDS: tuple[tuple[Callable[..., None], str], ...] = (
    (publish, "Publish a message to any channel through a running hub."),
    (channels, "List channels with subscribers, cluster-wide."),
    (presence, "List who is in a channel, cluster-wide."),
    (history, "Print a recoverable channel's kept events."),
    (clients, "List live connections, cluster-wide."),
    (disconnect, "Disconnect a user or a client, cluster-wide."),
    (nodes, "List the live nodes of a hub."),
)


def register(cli: typer.Typer) -> None:
    """Add the server API's commands to the ``hub`` command line."""
    for command, summary in COMMANDS:
        cli.command(short_help=summary)(command)
