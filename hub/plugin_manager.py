"""Plugin manager: finds plugins by entry point, enables the chosen ones, and is the one caller of pm.hook."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pluggy

from hub import hookspecs
from hub.channel import Channel

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter

    from hub.runtime import Hub
    from hub.types import Identity

ENTRY_POINT_GROUP = "hub.plugins"
log = logging.getLogger("hub.plugins")


class UnknownPlugin(Exception):
    def __init__(self, name: str, available: Iterable[str]) -> None:
        self.name = name
        self.available = sorted(available)
        listed = ", ".join(self.available) or "none installed"
        super().__init__(f"unknown plugin {name!r}; available: {listed}")


def _call(impl: pluggy.HookImpl, **kwargs: object) -> object:
    """Call one hook implementation with the arguments it names (pluggy lets it take a subset)."""
    return impl.function(*(kwargs[name] for name in impl.argnames))


def available_plugins() -> dict[str, str]:
    """Installed plugins: name -> module path, from the ``hub.plugins`` entry-point group."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


class PluginManager:
    """A typed facade over pluggy, so the type checker sees every hook call."""

    def __init__(self) -> None:
        self._pm = pluggy.PluginManager("hub")
        self._pm.add_hookspecs(hookspecs)

    @classmethod
    def from_entry_points(cls, enabled: Iterable[str] | None = None) -> PluginManager:
        """Load installed plugins; ``enabled`` is the list from ``--plugins`` (None: all of them)."""
        manager = cls()
        found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        names = sorted(found) if enabled is None else list(dict.fromkeys(enabled))
        for name in names:
            if name not in found:
                raise UnknownPlugin(name, found)
        for name in names:
            manager.register(found[name].load(), name)
        manager.check()
        return manager

    def register(self, plugin: ModuleType | object, name: str) -> None:
        self._pm.register(plugin, name=name)
        known = set(vars(hookspecs))
        for attr in dir(plugin):
            if not attr.startswith("hub_") or not callable(getattr(plugin, attr)):
                continue
            if attr not in known:
                raise ValueError(f"plugin {name!r}: {attr!r} is not a hub hook (see docs/hooks.md)")
            if self._pm.parse_hookimpl_opts(plugin, attr) is None:
                raise ValueError(f"plugin {name!r}: {attr!r} looks like a hook but lacks @hookimpl")

    def check(self) -> None:
        """Turn a misspelled hook implementation into an error at start-up."""
        self._pm.check_pending()

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self._pm.list_name_plugin() if name is not None]

    def static_dirs(self) -> dict[str, Path]:
        """plugin name -> its ``static/`` directory (next to the plugin module), for plugins that ship one.

        The hub serves it at ``/plugins/<name>/``; a ``panel.js`` in it is the plugin's panel in the demo app.
        """
        found: dict[str, Path] = {}
        for name in self.names:
            module_file = getattr(self._pm.get_plugin(name), "__file__", None)
            if module_file is None:
                continue
            static = Path(module_file).parent / "static"
            if static.is_dir():
                found[name] = static
        return found

    def hooks_of(self, name: str) -> list[str]:
        plugin = self._pm.get_plugin(name)
        return sorted(impl.name for impl in self._pm.get_hookcallers(plugin) or ())

    # ---- hooks -------------------------------------------------------------------------------------------

    def channels(self) -> list[tuple[str, Channel]]:
        """(plugin name, channel) for every channel of every enabled plugin, in registration order."""
        found: list[tuple[str, Channel]] = []
        for impl in self._pm.hook.hub_channels.get_hookimpls():
            declared = impl.function()
            if not isinstance(declared, list | tuple):
                raise TypeError(f"plugin {impl.plugin_name!r}: hub_channels must return a list of Channel")
            for channel in declared:
                if not isinstance(channel, Channel):
                    raise TypeError(f"plugin {impl.plugin_name!r} returned {channel!r} from hub_channels")
                found.append((impl.plugin_name, channel))
        return found

    def http_routes(self, hub: Hub) -> list[APIRouter]:
        return [router for router in self._pm.hook.hub_http_routes(hub=hub) if router is not None]

    def cli_commands(self, cli: typer.Typer) -> None:
        self._pm.hook.hub_cli_commands(cli=cli)

    async def startup(self, hub: Hub) -> None:
        # Called one by one (not through pm.hook) so each awaitable finishes before the next plugin starts.
        for impl in self._pm.hook.hub_startup.get_hookimpls():
            result = _call(impl, hub=hub)
            if inspect.isawaitable(result):
                await result

    async def shutdown(self, hub: Hub) -> None:
        for impl in reversed(self._pm.hook.hub_shutdown.get_hookimpls()):
            try:
                result = _call(impl, hub=hub)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # one plugin failing to stop must not keep the others (or the backends) open
                log.exception("plugin %r failed in hub_shutdown", impl.plugin_name)

    def authorize(self, identity: Identity, action: hookspecs.Action, channel: str, message_type: str | None) -> bool:
        results = self._pm.hook.hub_authorize(
            identity=identity, action=action, channel=channel, message_type=message_type
        )
        for result in results:
            if inspect.isawaitable(result):
                if inspect.iscoroutine(result):
                    result.close()
                raise TypeError("hub_authorize must be a plain function returning bool | None, not async")
        return all(result is not False for result in results)
