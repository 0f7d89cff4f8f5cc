"""``hub plugins`` and ``hub schema``: the installed plugins, their channels, and the schema of what they carry
(JSON Schema, TypeScript declarations or AsyncAPI), built for no hub."""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from hub.cli_output import fail, plugin_list
from hub.plugin_catalog import BrokenPluginError, PluginCatalog, UnknownPlugin

if TYPE_CHECKING:
    from hub.plugin_manager import PluginManager


def plugin_setup_problem(catalog: PluginCatalog) -> str | None:
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
        problem = plugin_setup_problem(PluginCatalog({name: source}))
        if problem is None:
            usable.add(name, source)
        else:
            problems[name] = problem
    return PluginManager(usable), problems


def _listing(plugins: Sequence[dict[str, Any]], width: int) -> list[str]:
    """One block per channel: the plugin and channel, then its inbound message types and its events, each list
    wrapped at ``width``."""
    lines: list[str] = []
    for plugin in plugins:
        if plugin["broken"] is not None:
            continue
        for channel in plugin["channels"] or [{"channel": "(no channels)", "messages": [], "events": []}]:
            lines.append(f"{plugin['name']}  {channel['channel']}")
            for label, names in (("in: ", channel["messages"]), ("out:", channel["events"])):
                lines += textwrap.wrap(
                    ", ".join(names) or "-",
                    max(30, width - 1),
                    initial_indent=f"  {label} ",
                    subsequent_indent="       ",
                    break_long_words=False,
                    break_on_hyphens=False,
                )
    return lines


def list_plugins(
    json_output: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """List installed plugins: each channel with its message types (in) and
    events (out), wrapped at the terminal's width; then the broken ones."""
    from hub.router import Router

    manager, problems = _described(PluginCatalog.installed())
    router = Router(manager.channels(), max_channel_length=1024)
    described: list[dict[str, Any]] = []
    for name in manager.names:
        channels = [
            {"channel": f"{namespace}:*", "messages": sorted(channel.inbound), "events": sorted(channel.events)}
            for namespace, channel in router.channels.items()
            if router.owner(namespace) == name
        ]
        described.append({"name": name, "channels": channels, "broken": None})
    described += [{"name": name, "channels": [], "broken": problem} for name, problem in sorted(problems.items())]
    if json_output:
        typer.echo(json.dumps({"plugins": described}, indent=2))
        return
    for line in _listing(described, shutil.get_terminal_size().columns):
        typer.echo(line)
    for name, problem in sorted(problems.items()):
        typer.echo(f"{name}  BROKEN: {problem}")  # one line, as every error is


def schema(
    plugins: Annotated[str | None, typer.Option(metavar="A,B", help="Plugins (default: all installed).")] = None,
    output_format: Annotated[
        Literal["json", "typescript", "asyncapi"],
        typer.Option(
            "--format",
            help="json: one JSON Schema document; typescript: a .d.ts of every channel's types for "
            "connect<HubChannels>() of the npm package (docs/client.md); asyncapi: the whole wire protocol as "
            "an AsyncAPI 3.0.0 document (docs/protocol.md).",
        ),
    ] = "json",
) -> None:
    """Print the JSON Schema of every channel's messages, events and snapshot, as one JSON document (or, with
    --format typescript, the same as TypeScript declarations; with --format asyncapi, the whole protocol as an
    AsyncAPI 3.0.0 document)."""
    from hub.plugin_manager import PluginManager
    from hub.router import Router
    from hub.schema import hub_schema

    try:
        manager = PluginManager(PluginCatalog.from_entry_points(plugin_list(plugins)))
    except (UnknownPlugin, BrokenPluginError) as exc:
        raise fail(str(exc)) from None
    router = Router(manager.channels(), max_channel_length=1024)
    if output_format == "asyncapi":
        from hub.asyncapi import asyncapi_document

        typer.echo(json.dumps(asyncapi_document(router), indent=2))
        return
    document = hub_schema(router)
    if output_format == "typescript":
        from hub.schema_typescript import typescript_declarations

        typer.echo(typescript_declarations(document), nl=False)
        return
    typer.echo(json.dumps(document, indent=2))
