"""The ``hub`` command line: serve, config, plugins, schema, token, bench, version — and whatever commands plugins
add. Every failure a user can cause is one line on stderr (``error: ...``): exit 2 for usage and settings, 1 for
what the world did (a port in use, Redis down)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hub.bench.command import bench
from hub.cli_api import register as register_api_commands
from hub.cli_listen import listen
from hub.cli_output import RUNTIME, USAGE
from hub.cli_output import fail as _fail
from hub.cli_output import plugin_list as _plugin_list
from hub.cli_output import warn as _warn
from hub.cli_plugins import list_plugins, schema
from hub.config import ConfigError, Configuration, Flags
from hub.plugin_catalog import PluginCatalog

if TYPE_CHECKING:
    pass

cli = typer.Typer(
    name="hub",
    help="A real-time hub: one WebSocket, many live features.",
    no_args_is_help=True,
    rich_markup_mode=None,  # click's plain help: wrapped to the terminal (at most 80 columns), never cut off
    pretty_exceptions_show_locals=False,  # a bug's traceback must not print the settings (secrets) it held
    context_settings={"help_option_names": ["-h", "--help"]},
)
register_api_commands(cli)  # publish, channels, presence, history, clients, disconnect, nodes


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hub-realtime")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"hub {package_version()}")
        raise typer.Exit()


@cli.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_print_version, help="Print the version and exit."),
    ] = False,
) -> None:
    """The options of ``hub`` itself (before the command)."""


@cli.command(short_help="Print the version.")
def version() -> None:
    """Print the version of the installed hub (its package's metadata)."""
    typer.echo(f"hub {package_version()}")


# ---- the settings' flags, shared by serve and config ---------------------------------------------------------

ConfigFile = Annotated[
    Path | None, typer.Option("--config", "-c", metavar="FILE", help="TOML settings file (or HUB_CONFIG).")
]
Sets = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="NAME=VALUE",
        help="Any setting, written as its variable would be: --set rate_limit=100, --set chat.snapshot_size=20 "
        "(a plugin's). Repeatable.",
    ),
]
Plugins = Annotated[str | None, typer.Option(metavar="A,B", help="Plugins to enable (default: all installed).")]
Host = Annotated[str | None, typer.Option(metavar="HOST", help="Interface to listen on (default 127.0.0.1).")]
Port = Annotated[int | None, typer.Option(metavar="PORT", help="Port to listen on (default 8000).")]
Redis = Annotated[
    str | None,
    typer.Option(
        metavar="URL",
        help="Redis for both broker and store: redis://host:6379/0, or redis+cluster://host:port for a Cluster.",
    ),
]
Workers = Annotated[int, typer.Option(min=1, metavar="N", help="Processes sharing the port (needs --redis when > 1).")]
Broker = Annotated[str | None, typer.Option(metavar="URL", help="Broker: memory:// or redis://host:port/db.")]
Store = Annotated[
    str | None, typer.Option(metavar="URL", help="Store: sqlite:///relative/file or sqlite:////absolute/file.")
]
DataDir = Annotated[Path | None, typer.Option(metavar="DIR", help="Where the SQLite store and secret live.")]
Secret = Annotated[str | None, typer.Option(metavar="TEXT", help="HS256 secret for JWTs, 32 bytes or more.")]
Origins = Annotated[str | None, typer.Option(metavar="A,B", help="Origins allowed besides the hub's own; * for any.")]
Anonymous = Annotated[
    bool | None, typer.Option("--anonymous/--no-anonymous", help="Let clients without a token in as guests.")
]
LogLevel = Annotated[
    str | None, typer.Option(metavar="LEVEL", help="debug, info, warning, error or critical (default info).")
]
LogFormat = Annotated[str | None, typer.Option(metavar="FORMAT", help="text (default) or json: one object a line.")]

FLAG_NAMES = {
    "plugins": "--plugins",
    "host": "--host",
    "port": "--port",
    "redis_url": "--redis",
    "broker_url": "--broker",
    "store_url": "--store",
    "data_dir": "--data-dir",
    "secret": "--secret",
    "allowed_origins": "--allowed-origins",
    "anonymous": "--anonymous",
    "log_level": "--log-level",
    "log_format": "--log-format",
}


def _flags(config: Path | None, sets: list[str] | None, **values: Any) -> Flags:
    if "plugins" in values:
        values["plugins"] = _plugin_list(values["plugins"])
    return Flags(
        values=values,
        names={name: FLAG_NAMES.get(name, name) for name in values},
        sets=tuple(sets or ()),
        config=config,
    )


def _load(flags: Flags, *, code: int = USAGE) -> Configuration:
    from hub.config import load

    try:
        return load(flags)
    except ConfigError as exc:
        raise _fail(str(exc), code) from None


@cli.command(short_help="Run the hub.")
def serve(
    config: ConfigFile = None,
    set_: Sets = None,
    plugins: Plugins = None,
    host: Host = None,
    port: Port = None,
    redis: Redis = None,
    workers: Workers = 1,
    broker: Broker = None,
    store: Store = None,
    data_dir: DataDir = None,
    secret: Secret = None,
    allowed_origins: Origins = None,
    anonymous: Anonymous = None,
    log_level: LogLevel = None,
    log_format: LogFormat = None,
) -> None:
    """Run the hub.

    Settings come from a TOML file (--config or HUB_CONFIG), then HUB_*
    variables, then flags: a flag wins. `hub config` prints what is in effect
    and where each value came from.
    """
    from hub import preflight

    flags = _flags(
        config,
        set_,
        plugins=plugins,
        host=host,
        port=port,
        redis_url=redis,
        broker_url=broker,
        store_url=store,
        data_dir=data_dir,
        secret=secret,
        allowed_origins=allowed_origins,
        anonymous=anonymous,
        log_level=log_level,
        log_format=log_format,
    )
    configuration = _load(flags)
    settings = configuration.settings
    problem = (
        preflight.settings_problem(settings, workers)
        or preflight.store_problem(settings)
        or preflight.redis_problem(settings, configuration.origins)
    )
    if problem is not None:
        raise _fail(problem.message, problem.exit_code)
    from hub.server import serve as run_server
    from hub.startup import StartupError

    try:
        run_server(
            settings,
            workers=workers,
            plugins=configuration.plugins,
            warnings=[*configuration.unknown_variables, *configuration.notes],
        )
    except StartupError as exc:
        message = str(exc)
        if exc.setting is not None:
            message += f" ({exc.setting} from {preflight.origin_text(configuration.origins, exc.setting)})"
        raise _fail(message, RUNTIME) from None


@cli.command("config", short_help="Print or check the settings in effect.")
def config_command(
    config: ConfigFile = None,
    set_: Sets = None,
    plugins: Plugins = None,
    host: Host = None,
    port: Port = None,
    redis: Redis = None,
    workers: Workers = 1,
    broker: Broker = None,
    store: Store = None,
    data_dir: DataDir = None,
    secret: Secret = None,
    allowed_origins: Origins = None,
    anonymous: Anonymous = None,
    log_level: LogLevel = None,
    log_format: LogFormat = None,
    check: Annotated[
        bool, typer.Option("--check", help="Only validate: exit 1 on any problem, unknown HUB_* variables too.")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the settings as JSON.")] = False,
) -> None:
    """Print the settings `hub serve` would run with (the core's and every
    enabled plugin's), each with where it came from: default, file, env or
    flag. Secrets and credentials in URLs are masked. Takes the same flags as
    `hub serve`.
    """
    from hub import preflight
    from hub.config import report_json, report_text

    flags = _flags(
        config,
        set_,
        plugins=plugins,
        host=host,
        port=port,
        redis_url=redis,
        broker_url=broker,
        store_url=store,
        data_dir=data_dir,
        secret=secret,
        allowed_origins=allowed_origins,
        anonymous=anonymous,
        log_level=log_level,
        log_format=log_format,
    )
    configuration = _load(flags, code=RUNTIME if check else USAGE)
    problem = preflight.settings_problem(configuration.settings, workers, make_secret=False)
    if check:
        errors = ([problem.message] if problem else []) + configuration.unknown_variables
        for error in errors:
            typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        for note in configuration.notes:
            _warn(note)
        if errors:
            raise typer.Exit(code=RUNTIME)
        file = configuration.file
        enabled = ", ".join(configuration.catalog.names) or "none"
        typer.echo(f"ok: the settings are valid ({f'file {file.path}; ' if file else ''}plugins: {enabled})")
        return
    for warning in [*configuration.unknown_variables, *configuration.notes]:
        _warn(warning)
    if problem is not None:
        _warn(problem.message)
    if json_output:
        typer.echo(json.dumps(report_json(configuration), indent=2))
    else:
        typer.echo(report_text(configuration))


# ---- token -------------------------------------------------------------------------------------------------


@cli.command(short_help="Print a development JWT signed with the hub's secret.")
def token(
    user: Annotated[str, typer.Option(metavar="ID", help="The user id (the JWT 'sub').")],
    name: Annotated[str | None, typer.Option(metavar="NAME", help="Display name (default: the user id).")] = None,
    ttl: Annotated[float, typer.Option(min=1, metavar="SECONDS", help="Lifetime in seconds.")] = 3600.0,
    scope: Annotated[list[str] | None, typer.Option(metavar="SCOPE", help="A scope to grant; repeatable.")] = None,
    secret: Annotated[
        str | None, typer.Option(metavar="TEXT", help="HS256 secret (default: HUB_SECRET, else the data dir's).")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(metavar="DIR", help="The hub's data directory, holding its secret.")
    ] = None,
    config: ConfigFile = None,
) -> None:
    """Print a development JWT signed with the hub's secret (HS256; RS256 or
    ES256 tokens come from your identity provider), with HUB_JWT_AUDIENCE's
    first audience and HUB_JWT_ISSUER when they are set.

    The secret is --secret, else HUB_SECRET (or secret in the config file),
    else the file <data dir>/secret. stderr says which. If that file does not
    exist it is made, with a warning: a running hub with another secret
    refuses the token, so give the hub's --data-dir (or HUB_DATA_DIR).
    """
    from hub.auth import ALGORITHM, Authenticator
    from hub.config import load_core

    if not user.strip():
        raise _fail("--user must name a user (the token's 'sub'), not be empty")
    if any(not granted.strip() for granted in scope or ()):
        raise _fail("--scope must name a scope, not be empty")
    flags = _flags(config, None, secret=secret, data_dir=data_dir)
    try:
        settings, origins, _ = load_core(flags)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    secret_file = settings.data_dir / "secret"
    made = not settings.secret and not secret_file.exists()
    try:
        resolved = settings.resolved_secret()
    except OSError as exc:
        raise _fail(f"cannot make or read the secret {secret_file}: {exc.strerror or exc}", RUNTIME) from None
    except ValueError as exc:
        raise _fail(str(exc), RUNTIME) from None
    try:
        authenticator = Authenticator(resolved, audience=settings.jwt_audience, issuer=settings.jwt_issuer)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if settings.secret:
        typer.echo(f"signed with the secret from {origins['secret'][1]}", err=True)
    elif made:
        _warn(
            f"made a new secret in {secret_file}: a hub running with another secret refuses this token; "
            "give the hub's --data-dir (or HUB_DATA_DIR), or --secret"
        )
    else:
        typer.echo(f"signed with the secret in {secret_file}", err=True)
    if ALGORITHM not in settings.jwt_algorithms:
        _warn(f"HUB_JWT_ALGORITHMS does not list {ALGORITHM}, so the hub refuses this token")
    typer.echo(authenticator.issue(user, name=name, ttl=ttl, scopes=tuple(scope or ())))


cli.command(short_help="Measure a hub: fan-out throughput, latency, loss, CPU and memory.")(bench)
cli.command(short_help="Print a channel's events live, one line each.")(listen)
cli.command("plugins", short_help="List installed plugins and their channels.")(list_plugins)
cli.command(short_help="Print the JSON Schema of every channel.")(schema)


# ---- the program -------------------------------------------------------------------------------------------


def run(args: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status. A usage error (a bad option value, a missing option)
    is one line naming the command's help, instead of typer's usage block."""
    try:
        result = cli(args=list(args) if args is not None else None, prog_name="hub", standalone_mode=False)
    except typer.TyperException as exc:
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":  # `hub` alone: its help, as typer prints it
            typer.echo(exc.format_message(), err=True)
        else:
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            typer.secho(f"error: {exc.format_message()}{hint}", err=True, fg=typer.colors.RED)
        return exc.exit_code
    except typer.Abort:
        typer.echo("interrupted", err=True)
        return 130
    return result if isinstance(result, int) else 0


def main() -> None:
    catalog = PluginCatalog.installed()
    for broken in catalog.broken.values():  # every other command keeps working; `hub plugins` lists it too
        _warn(str(broken))
    catalog.cli_commands(cli)
    sys.exit(run())
