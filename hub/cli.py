"""The ``hub`` command line: serve, plugins, schema, token, bench — and whatever commands plugins add."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hub.bench.command import bench
from hub.cli_api import register as register_api_commands
from hub.plugin_catalog import BrokenPluginError, PluginCatalog, UnknownPlugin
from hub.settings import HubSettings

if TYPE_CHECKING:
    from hub.plugin_manager import PluginManager

cli = typer.Typer(name="hub", help="A real-time hub: one WebSocket, many live features.", no_args_is_help=True)
cli.command()(bench)
register_api_commands(cli)  # publish, channels, presence, history, clients, disconnect, nodes


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


def _plugin_list(value: str | None) -> list[str] | None:
    return None if value is None else [name.strip() for name in value.split(",") if name.strip()]


@cli.command()
def serve(
    plugins: Annotated[str | None, typer.Option(help="Comma-separated plugins to enable (default: all).")] = None,
    host: Annotated[str | None, typer.Option(help="Interface to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind (default 8000).")] = None,
    redis: Annotated[
        str | None,
        typer.Option(
            help="Redis URL for both broker and store: redis://127.0.0.1:6379/0, or redis+cluster://host:port for a "
            "Redis Cluster."
        ),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Processes sharing the port (needs --redis when > 1).")] = 1,
    broker: Annotated[str | None, typer.Option(help="Broker URL: memory:// or redis://host:port/db.")] = None,
    store: Annotated[
        str | None, typer.Option(help="Store URL: sqlite:///relative/file or sqlite:////absolute/file.")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Where the SQLite store and secret live.")] = None,
    secret: Annotated[str | None, typer.Option(help="HS256 secret for JWTs (or HUB_SECRET).")] = None,
    allowed_origins: Annotated[
        str | None, typer.Option(help="Comma-separated origins allowed besides the hub's own; * for any.")
    ] = None,
    anonymous: Annotated[
        bool | None,
        typer.Option("--anonymous/--no-anonymous", help="Let clients without a token in as guests."),
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning, error.")] = None,
) -> None:
    """Run the hub. Settings come from HUB_* environment variables; these flags override them."""
    overrides: dict[str, Any] = {
        "plugins": _plugin_list(plugins),
        "host": host,
        "port": port,
        "redis_url": redis,
        "broker_url": broker,
        "store_url": store,
        "data_dir": data_dir,
        "secret": secret,
        "allowed_origins": allowed_origins,
        "anonymous": anonymous,
        "log_level": log_level,
    }
    settings = HubSettings(**{key: value for key, value in overrides.items() if value is not None})
    try:
        catalog = PluginCatalog.from_entry_points(settings.plugins)
    except (UnknownPlugin, BrokenPluginError) as exc:
        raise _fail(str(exc)) from None
    problem = _plugin_setup_problem(catalog)
    if problem is not None:
        raise _fail(problem)
    if workers > 1 and settings.resolved_broker_url().startswith("memory:"):
        raise _fail("--workers > 1 needs a shared broker: add --redis redis://host:port/db")
    if settings.loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        raise _fail("HUB_LOOP=uvloop needs the uvloop package: pip install uvloop")
    from hub.auth import Authenticator

    try:
        Authenticator.from_settings(settings)  # the token settings (algorithms, keys, JWKS URL) before anything runs
    except ValueError as exc:
        raise _fail(f"the token settings are not usable: {exc}") from None
    from hub.store import check_before_start as check_store_before_start

    store_problem = check_store_before_start(settings.resolved_store_url())
    if store_problem is not None:
        raise _fail(f"the store cannot be used: {store_problem}")
    from hub.server import serve as run_server

    run_server(settings, workers=workers)


def _plugin_setup_problem(catalog: PluginCatalog) -> str | None:
    """Why the plugins cannot be built (a setting of theirs does not validate), checked before anything runs."""
    from hub.plugin_api import PluginSetupError
    from hub.plugin_manager import PluginManager

    try:
        PluginManager(catalog)  # built for no hub: only their settings and channels
    except (PluginSetupError, TypeError, ValueError) as exc:
        return str(exc)
    return None


def _described(catalog: PluginCatalog) -> tuple[PluginManager, dict[str, str]]:
    """The plugins built for no hub (to list their channels), and name -> why, for those that cannot be."""
    from hub.plugin_manager import PluginManager

    problems = {name: str(broken) for name, broken in catalog.broken.items()}
    usable = PluginCatalog()
    for name, source in catalog.sources.items():
        problem = _plugin_setup_problem(PluginCatalog({name: source}))
        if problem is None:
            usable.add(name, source)
        else:
            problems[name] = problem
    return PluginManager(usable), problems


@cli.command("plugins")
def list_plugins() -> None:
    """List installed plugins with their channels and message types, and those that are broken."""
    from hub.router import Router

    manager, problems = _described(PluginCatalog.installed())
    router = Router(manager.channels(), max_channel_length=1024)
    rows = [("PLUGIN", "CHANNELS", "MESSAGE TYPES (in)", "EVENTS (out)")]
    for name in manager.names:
        for namespace, channel in router.channels.items():
            if router.owner(namespace) != name:
                continue
            rows.append(
                (
                    name,
                    f"{namespace}:*",
                    ", ".join(sorted(channel.inbound)),
                    ", ".join(sorted(channel.events)),
                )
            )
        if not any(router.owner(ns) == name for ns in router.channels):
            rows.append((name, "-", "-", "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        typer.echo("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
    for name, problem in sorted(problems.items()):
        typer.echo(f"{name}  BROKEN: {problem}")


@cli.command()
def schema(
    plugins: Annotated[str | None, typer.Option(help="Comma-separated plugins (default: all installed).")] = None,
) -> None:
    """Print the JSON Schema of every channel's messages, events and snapshot, as one JSON document."""
    import json

    from hub.plugin_manager import PluginManager
    from hub.router import Router
    from hub.schema import hub_schema

    try:
        manager = PluginManager(PluginCatalog.from_entry_points(_plugin_list(plugins)))
    except (UnknownPlugin, BrokenPluginError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(json.dumps(hub_schema(Router(manager.channels(), max_channel_length=1024)), indent=2))


@cli.command()
def token(
    user: Annotated[str, typer.Option(help="The user id (the JWT 'sub').")],
    name: Annotated[str | None, typer.Option(help="Display name (default: the user id).")] = None,
    ttl: Annotated[float, typer.Option(help="Lifetime in seconds.")] = 3600.0,
    scope: Annotated[list[str] | None, typer.Option(help="Scopes to grant; repeat for several.")] = None,
    secret: Annotated[str | None, typer.Option(help="HS256 secret (default: HUB_SECRET or the data dir's).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory holding the generated secret.")] = None,
) -> None:
    """Print a development JWT signed with the hub's secret (HS256; RS256/ES256 tokens come from your identity
    provider). It carries HUB_JWT_AUDIENCE's first audience and HUB_JWT_ISSUER when they are set."""
    from hub.auth import ALGORITHM, Authenticator

    overrides: dict[str, Any] = {"secret": secret, "data_dir": data_dir}
    settings = HubSettings(**{key: value for key, value in overrides.items() if value is not None})
    try:
        authenticator = Authenticator(
            settings.resolved_secret(), audience=settings.jwt_audience, issuer=settings.jwt_issuer
        )
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if ALGORITHM not in settings.jwt_algorithms:
        typer.echo(f"warning: HUB_JWT_ALGORITHMS does not list {ALGORITHM}, so the hub refuses this token", err=True)
    typer.echo(authenticator.issue(user, name=name, ttl=ttl, scopes=tuple(scope or ())))


def main() -> None:
    catalog = PluginCatalog.installed()
    for broken in catalog.broken.values():  # every other command keeps working; `hub plugins` lists it too
        typer.secho(f"warning: {broken}", err=True, fg=typer.colors.YELLOW)
    catalog.cli_commands(cli)
    cli()
