"""plugin_manager.py: loading by entry point, hook validation, and the typed facade over every hook."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, cast

import pluggy
import pytest
import typer
from fastapi import APIRouter
from typer.testing import CliRunner

from hub import Channel, hookimpl, hookspecs
from hub.plugin_manager import PluginManager, UnknownPlugin, available_plugins
from hub.types import Identity

if TYPE_CHECKING:
    from hub.runtime import Hub

HUB = cast("Hub", object())  # the hooks under test only pass the hub through
ALICE = Identity(user="alice", name="Alice")


def manager_with(*plugins: tuple[str, object]) -> PluginManager:
    manager = PluginManager()
    for name, plugin in plugins:
        manager.register(plugin, name)
    manager.check()
    return manager


# ---- loading ----------------------------------------------------------------------------------------------


def test_chat_is_an_installed_entry_point() -> None:
    assert available_plugins()["chat"] == "plugins.chat"


def test_from_entry_points_loads_every_installed_plugin() -> None:
    manager = PluginManager.from_entry_points(None)
    assert "chat" in manager.names
    assert "hub_channels" in manager.hooks_of("chat")
    assert [(plugin, channel.namespace) for plugin, channel in manager.channels() if plugin == "chat"] == [
        ("chat", "chat")
    ]


def test_from_entry_points_loads_only_the_enabled_ones() -> None:
    assert PluginManager.from_entry_points(["chat", "chat"]).names == ["chat"]
    assert PluginManager.from_entry_points([]).names == []


def test_unknown_plugin_lists_the_available_ones() -> None:
    with pytest.raises(UnknownPlugin) as caught:
        PluginManager.from_entry_points(["chat", "nope"])
    assert caught.value.name == "nope"
    assert "chat" in caught.value.available
    assert "'nope'" in str(caught.value)
    assert "chat" in str(caught.value)


def test_unknown_plugin_with_nothing_installed() -> None:
    assert "none installed" in str(UnknownPlugin("x", []))


def test_misspelled_hook_fails_at_register() -> None:
    class Misspelled:
        @hookimpl
        def hub_chanels(self) -> list[Channel]:
            return []

    with pytest.raises(ValueError, match="'hub_chanels' is not a hub hook"):
        PluginManager().register(Misspelled(), "typo")


def test_misspelled_hook_fails_at_check_in_plain_pluggy_too() -> None:
    class Misspelled:
        @hookimpl
        def hub_chanels(self) -> list[Channel]:
            return []

    pm = pluggy.PluginManager("hub")
    pm.add_hookspecs(hookspecs)
    pm.register(Misspelled(), name="typo")
    with pytest.raises(pluggy.PluginValidationError, match="hub_chanels"):
        pm.check_pending()


def test_hook_without_hookimpl_marker_is_an_error() -> None:
    class Unmarked:
        def hub_channels(self) -> list[Channel]:
            return []

    with pytest.raises(ValueError, match="lacks @hookimpl"):
        PluginManager().register(Unmarked(), "unmarked")


def test_async_authorize_is_refused() -> None:
    class AsyncAuthorize:
        @hookimpl
        async def hub_authorize(self, identity, action, channel, message_type):  # type: ignore[no-untyped-def]
            return False

    manager = PluginManager()
    manager.register(AsyncAuthorize(), "async")
    with pytest.raises(TypeError, match="not async"):
        manager.authorize(Identity(user="u", name="u"), "subscribe", "chat:x", None)


def test_hook_with_an_unknown_argument_fails_at_register() -> None:
    class WrongArgs:
        @hookimpl
        def hub_startup(self, hub: Hub, extra: int) -> None:
            """Takes an argument the spec does not have."""

    with pytest.raises(pluggy.PluginValidationError, match="extra"):
        PluginManager().register(WrongArgs(), "wrong")


# ---- hub_channels -----------------------------------------------------------------------------------------


def test_channels_in_registration_order() -> None:
    a, b, c = Channel("a"), Channel("b"), Channel("c")

    class First:
        @hookimpl
        def hub_channels(self) -> list[Channel]:
            return [a, b]

    class Second:
        @hookimpl
        def hub_channels(self) -> tuple[Channel, ...]:
            return (c,)

    manager = manager_with(("first", First()), ("second", Second()))
    assert manager.channels() == [("first", a), ("first", b), ("second", c)]


@pytest.mark.parametrize("declared", [Channel("solo"), None, ["not a channel"]])
def test_channels_must_be_a_list_of_channels(declared: object) -> None:
    class Broken:
        @hookimpl
        def hub_channels(self) -> object:
            return declared

    with pytest.raises(TypeError, match="'broken'"):
        manager_with(("broken", Broken())).channels()


# ---- lifecycle --------------------------------------------------------------------------------------------


def lifecycle_plugin(name: str, log: list[str], *, awaitable: bool) -> object:
    class Plugin:
        if awaitable:

            @hookimpl
            async def hub_startup(self, hub: Hub) -> None:
                assert hub is HUB
                log.append(f"start {name}")
                await asyncio.sleep(0)  # the next plugin must not start while this one is suspended
                log.append(f"started {name}")

            @hookimpl
            async def hub_shutdown(self, hub: Hub) -> None:
                log.append(f"stop {name}")
                await asyncio.sleep(0)
                log.append(f"stopped {name}")

        else:

            @hookimpl
            def hub_startup(self, hub: Hub) -> None:
                assert hub is HUB
                log.append(f"start {name}")
                log.append(f"started {name}")

            @hookimpl
            def hub_shutdown(self, hub: Hub) -> None:
                log.append(f"stop {name}")
                log.append(f"stopped {name}")

    return Plugin()


async def test_startup_in_registration_order_and_shutdown_in_reverse() -> None:
    log: list[str] = []
    manager = manager_with(
        ("one", lifecycle_plugin("one", log, awaitable=True)),
        ("two", lifecycle_plugin("two", log, awaitable=False)),
        ("three", lifecycle_plugin("three", log, awaitable=True)),
    )
    await manager.startup(HUB)
    assert log == ["start one", "started one", "start two", "started two", "start three", "started three"]
    log.clear()
    await manager.shutdown(HUB)
    assert log == ["stop three", "stopped three", "stop two", "stopped two", "stop one", "stopped one"]


async def test_startup_hook_may_ignore_the_hub_argument() -> None:
    started: list[bool] = []

    class NoArgs:
        @hookimpl
        def hub_startup(self) -> None:
            started.append(True)

    await manager_with(("noargs", NoArgs())).startup(HUB)
    assert started == [True]


async def test_startup_failure_stops_the_later_plugins() -> None:
    log: list[str] = []

    class Failing:
        @hookimpl
        async def hub_startup(self, hub: Hub) -> None:
            raise RuntimeError("cannot start")

    manager = manager_with(("failing", Failing()), ("later", lifecycle_plugin("later", log, awaitable=True)))
    with pytest.raises(RuntimeError, match="cannot start"):
        await manager.startup(HUB)
    assert log == []


# ---- hub_authorize ----------------------------------------------------------------------------------------


def authorizer(answer: bool | None, calls: list[tuple[Any, ...]]) -> object:
    class Authorizer:
        @hookimpl
        def hub_authorize(self, identity: Identity, action: str, channel: str, message_type: str | None) -> bool | None:
            calls.append((identity, action, channel, message_type))
            return answer

    return Authorizer()


@pytest.mark.parametrize(
    ("answers", "allowed"),
    [
        ([], True),
        ([True], True),
        ([None], True),
        ([True, None], True),
        ([False], False),
        ([True, False], False),
        ([None, False, True], False),
    ],
)
def test_authorize_any_false_refuses(answers: list[bool | None], allowed: bool) -> None:
    calls: list[tuple[Any, ...]] = []
    manager = manager_with(*((f"p{i}", authorizer(answer, calls)) for i, answer in enumerate(answers)))
    assert manager.authorize(ALICE, "publish", "chat:lobby", "chat.send") is allowed
    assert calls == [(ALICE, "publish", "chat:lobby", "chat.send")] * len(answers)  # every one is asked


# ---- hub_http_routes / hub_cli_commands -------------------------------------------------------------------


def test_http_routes_collects_routers() -> None:
    first, second = APIRouter(), APIRouter()

    def routes(router: APIRouter | None) -> object:
        class Routes:
            @hookimpl
            def hub_http_routes(self, hub: Hub) -> APIRouter | None:
                assert hub is HUB
                return router

        return Routes()

    manager = manager_with(("a", routes(first)), ("none", routes(None)), ("b", routes(second)))
    collected = manager.http_routes(HUB)
    assert len(collected) == 2
    assert {id(router) for router in collected} == {id(first), id(second)}


def test_http_routes_without_plugins() -> None:
    assert PluginManager().http_routes(HUB) == []


def test_cli_commands_are_added() -> None:
    class Commands:
        @hookimpl
        def hub_cli_commands(self, cli: typer.Typer) -> None:
            @cli.command()
            def greet(name: str) -> None:
                typer.echo(f"hello {name}")

    app = typer.Typer()

    @app.command()
    def other() -> None:
        """Keeps this a multi-command app."""

    manager_with(("commands", Commands())).cli_commands(app)
    result = CliRunner().invoke(app, ["greet", "alice"])
    assert result.exit_code == 0, result.output
    assert result.output == "hello alice\n"
