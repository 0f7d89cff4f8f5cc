"""Every hook a plugin can implement, grouped by lifecycle phase. plugin_manager.py is the only caller."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Literal

import pluggy

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter

    from hub.channel import Channel
    from hub.plugin_api import Hub
    from hub.types import Identity

hookspec = pluggy.HookspecMarker("hub")
hookimpl = pluggy.HookimplMarker("hub")

Action = Literal["subscribe", "publish"]

# ---- registration (called once, while the hub is built) ----------------------------------------------------


@hookspec
def hub_channels() -> list[Channel]:  # type: ignore[empty-body]  # a spec: pluggy never runs its body
    """Declare the channel families this plugin owns.

    :return: the plugin's :class:`hub.Channel` objects. Every namespace must be unique across all enabled
        plugins; a duplicate stops the hub at start-up.

    All implementations are called; the results are concatenated.

    .. versionadded:: 0.1
    """


@hookspec
def hub_http_routes(hub: Hub) -> APIRouter | None:
    """Add HTTP endpoints (a publish API, an export) next to the socket.

    :param hub: the plugin's :class:`hub.Hub` (a plugin object has it already; the parameter may be left out).
    :return: a FastAPI ``APIRouter`` to include in the app, or None.

    All implementations are called; every router is included.

    .. versionadded:: 0.1
    """


@hookspec
def hub_cli_commands(cli: typer.Typer) -> None:
    """Add sub-commands to the ``hub`` command line.

    :param cli: the root Typer app; register commands on it with ``@cli.command()``.

    All implementations are called.

    .. versionadded:: 0.1
    """


# ---- lifecycle -------------------------------------------------------------------------------------------


@hookspec
def hub_startup(hub: Hub) -> Awaitable[None] | None:
    """The hub's backends are up and it is about to accept connections; start background tasks here.

    :param hub: the plugin's :class:`hub.Hub` (a plugin object has it already; the parameter may be left out).
    :return: None, or an awaitable the hub awaits before it serves.

    All implementations are called, in registration order.

    .. versionadded:: 0.1
    """


@hookspec
def hub_shutdown(hub: Hub) -> Awaitable[None] | None:
    """The hub is stopping; stop background tasks and flush state. Backends are still open.

    :param hub: the plugin's :class:`hub.Hub` (the parameter may be left out).
    :return: None, or an awaitable the hub awaits before it closes the backends.

    All implementations are called, in reverse registration order.

    .. versionadded:: 0.1
    """


# ---- per request -----------------------------------------------------------------------------------------


@hookspec
def hub_authorize(identity: Identity, action: Action, channel: str, message_type: str | None) -> bool | None:
    """Decide whether ``identity`` may subscribe to or publish on ``channel``.

    Called after the channel's own ``can_subscribe`` / ``can_publish`` policy allowed the request.

    :param identity: who asks.
    :param action: ``"subscribe"`` or ``"publish"``.
    :param channel: the full channel name, ``"<namespace>:<room>"``.
    :param message_type: the message type for ``"publish"``, None for ``"subscribe"``.
    :return: False to refuse (the client gets ``forbidden``), True or None to allow.

    All implementations are called; any False refuses.

    .. versionadded:: 0.1
    """
