"""plugin_catalog.py and plugin_manager.py: loading by entry point, one plugin object per hub, hook validation,
and the typed facade over every hook."""

from __future__ import annotations

import asyncio
from typing import Any

import pluggy
import pytest
import typer
from fastapi import APIRouter
from typer.testing import CliRunner

from hub import Channel, Hub, Plugin, hookimpl, hookspecs
from hub.plugin_api import HubNotRunning, PluginSetupError
from hub.plugin_catalog import PluginCatalog, UnknownPlugin
from hub.plugin_manager import PluginManager
from hub.types import Identity

ALICE = Identity(user="alice", name="Alice")


def manager_with(*plugins: tuple[str, object]) -> PluginManager:
    return PluginManager(PluginCatalog(dict(plugins)))


# ---- loading ----------------------------------------------------------------------------------------------


def test_chat_is_an_installed_entry_point_naming_its_class() -> None:
    from hub_realtime_plugins.chat import Chat

    assert PluginCatalog.installed().sources["chat"] is Chat


def test_from_entry_points_loads_every_installed_plugin() -> None:
    manager = PluginManager(PluginCatalog.from_entry_points(None))
    assert "chat" in manager.names
    assert "hub_channels" in manager.hooks_of("chat")
    assert [(plugin, channel.namespace) for plugin, channel in manager.channels() if plugin == "chat"] == [
        ("chat", "chat")
    ]


def test_from_entry_points_loads_only_the_enabled_ones() -> None:
    assert PluginCatalog.from_entry_points(["chat", "chat"]).names == ["chat"]
    assert PluginCatalog.from_entry_points([]).names == []


def test_unknown_plugin_lists_the_available_ones() -> None:
    with pytest.raises(UnknownPlugin) as caught:
        PluginCatalog.from_entry_points(["chat", "nope"])
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
        PluginCatalog({"typo": Misspelled})


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
        PluginCatalog({"unmarked": Unmarked()})


def test_a_factory_is_checked_once_it_built_the_object() -> None:
    class Unmarked:
        def hub_channels(self) -> list[Channel]:
            return []

    catalog = PluginCatalog({"unmarked": lambda hub: Unmarked()})
    with pytest.raises(ValueError, match="lacks @hookimpl"):
        PluginManager(catalog)


def test_async_authorize_is_refused() -> None:
    class AsyncAuthorize:
        @hookimpl
        async def hub_authorize(self, identity, action, channel, message_type):  # type: ignore[no-untyped-def]
            return False

    manager = manager_with(("async", AsyncAuthorize()))
    with pytest.raises(TypeError, match="not async"):
        manager.authorize(Identity(user="u", name="u"), "subscribe", "chat:x", None)


def test_hook_with_an_unknown_argument_fails_at_register() -> None:
    class WrongArgs:
        @hookimpl
        def hub_startup(self, hub: Hub, extra: int) -> None:
            """Takes an argument the spec does not have."""

    with pytest.raises(pluggy.PluginValidationError, match="extra"):
        manager_with(("wrong", WrongArgs()))


def test_a_module_without_hooks_names_the_plugin_class_it_holds() -> None:
    import hub_realtime_plugins.chat

    with pytest.raises(
        TypeError, match=r"module hub_realtime_plugins\.chat implements no hub hook.*hub_realtime_plugins\.chat:Chat"
    ):
        PluginCatalog({"chat": hub_realtime_plugins.chat})


# ---- one object per hub -----------------------------------------------------------------------------------


class Counter(Plugin):
    """A plugin with state of its own: the count lives on the object, so each hub has its own."""

    built: list[Counter] = []

    def __init__(self, hub: Hub) -> None:
        super().__init__(hub)
        self.started = 0
        self.channel = Channel("counter")
        Counter.built.append(self)

    @hookimpl
    def hub_channels(self) -> list[Channel]:
        return [self.channel]

    @hookimpl
    def hub_startup(self) -> None:
        self.started += 1


async def test_a_class_is_built_once_for_each_hub_with_its_own_hub() -> None:
    Counter.built.clear()
    catalog = PluginCatalog({"counter": Counter})
    first, second = PluginManager(catalog), PluginManager(catalog)
    assert len(Counter.built) == 2
    one, two = Counter.built
    assert one is not two
    assert one.channel is not two.channel
    assert one.hub is first.apis["counter"]
    assert two.hub is second.apis["counter"]
    assert one.hub.name == "counter"
    await first.startup()
    assert (one.started, two.started) == (1, 0)


def test_a_factory_that_returns_nothing_is_an_error() -> None:
    with pytest.raises(PluginSetupError, match="'nothing': its factory returned None"):
        manager_with(("nothing", lambda hub: None))


def test_a_constructor_that_fails_is_reported_by_plugin_name() -> None:
    def explode(hub: Hub) -> object:
        raise KeyError("missing")

    with pytest.raises(PluginSetupError, match="plugin 'explode': building it failed: KeyError"):
        manager_with(("explode", explode))


async def test_an_object_already_built_runs_in_one_hub_at_a_time() -> None:
    counter = Counter(Hub(None, "counter"))
    first, second = manager_with(("counter", counter)), manager_with(("counter", counter))
    await first.startup()
    with pytest.raises(PluginSetupError, match="already runs in another hub"):
        await second.startup()
    await first.shutdown()
    await second.startup()  # free again once the first hub stopped
    await second.shutdown()


def test_a_hub_built_for_no_hub_refuses_to_act() -> None:
    Counter.built.clear()
    manager_with(("counter", Counter))
    hub = Counter.built[0].hub
    with pytest.raises(HubNotRunning, match="hub schema"):
        _ = hub.store
    with pytest.raises(HubNotRunning):
        hub.metrics.counter("hub_counter_x_total", "x", lambda: 0)


def test_plugin_settings_errors_name_the_plugin_and_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from hub_realtime_plugins.chat import Chat

    monkeypatch.setenv("HUB_CHAT_SNAPSHOT_SIZE", "many")
    with pytest.raises(PluginSetupError, match=r"plugin 'chat': its settings are not valid: HUB_CHAT_SNAPSHOT_SIZE"):
        manager_with(("chat", Chat))


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
    class Lifecycle:
        if awaitable:

            @hookimpl
            async def hub_startup(self, hub: Hub) -> None:
                assert hub.name == name
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
                assert hub.name == name
                log.append(f"start {name}")
                log.append(f"started {name}")

            @hookimpl
            def hub_shutdown(self, hub: Hub) -> None:
                log.append(f"stop {name}")
                log.append(f"stopped {name}")

    return Lifecycle()


async def test_startup_in_registration_order_and_shutdown_in_reverse() -> None:
    log: list[str] = []
    manager = manager_with(
        ("one", lifecycle_plugin("one", log, awaitable=True)),
        ("two", lifecycle_plugin("two", log, awaitable=False)),
        ("three", lifecycle_plugin("three", log, awaitable=True)),
    )
    await manager.startup()
    assert log == ["start one", "started one", "start two", "started two", "start three", "started three"]
    log.clear()
    await manager.shutdown()
    assert log == ["stop three", "stopped three", "stop two", "stopped two", "stop one", "stopped one"]


async def test_startup_hook_may_ignore_the_hub_argument() -> None:
    started: list[bool] = []

    class NoArgs:
        @hookimpl
        def hub_startup(self) -> None:
            started.append(True)

    await manager_with(("noargs", NoArgs())).startup()
    assert started == [True]


async def test_startup_failure_stops_the_later_plugins() -> None:
    log: list[str] = []

    class Failing:
        @hookimpl
        async def hub_startup(self, hub: Hub) -> None:
            raise RuntimeError("cannot start")

    manager = manager_with(("failing", Failing()), ("later", lifecycle_plugin("later", log, awaitable=True)))
    with pytest.raises(RuntimeError, match="cannot start"):
        await manager.startup()
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
                assert hub.name in ("a", "none", "b")
                return router

        return Routes()

    manager = manager_with(("a", routes(first)), ("none", routes(None)), ("b", routes(second)))
    collected = manager.http_routes()
    assert len(collected) == 2
    assert {id(router) for router in collected} == {id(first), id(second)}


def test_http_routes_without_plugins() -> None:
    assert PluginManager().http_routes() == []


def test_cli_commands_are_added() -> None:
    class Commands:
        @staticmethod
        @hookimpl
        def hub_cli_commands(cli: typer.Typer) -> None:
            @cli.command()
            def greet(name: str) -> None:
                typer.echo(f"hello {name}")

    app = typer.Typer()

    @app.command()
    def other() -> None:
        """Keeps this a multi-command app."""

    PluginCatalog({"commands": Commands}).cli_commands(app)
    result = CliRunner().invoke(app, ["greet", "alice"])
    assert result.exit_code == 0, result.output
    assert result.output == "hello alice\n"


def test_cli_commands_on_a_plugin_class_must_be_static() -> None:
    class Commands:
        @hookimpl
        def hub_cli_commands(self, cli: typer.Typer) -> None:
            """Would need an object, and none exists before a hub runs."""

    with pytest.raises(TypeError, match="must be a @staticmethod"):
        PluginCatalog({"commands": Commands})
