"""PluginManager: one hub's plugins — built from a catalog, one object per plugin per hub — and the one caller
of their hooks."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, cast

import pluggy

from hub import hookspecs
from hub.channel import Channel
from hub.plugin_api import Hub, PluginSetupError
from hub.plugin_catalog import PluginCatalog, check_hooks, static_dir

if TYPE_CHECKING:
    from fastapi import APIRouter

    from hub.node import Node
    from hub.types import Identity

log = logging.getLogger("hub.plugins")


def _call(impl: pluggy.HookImpl, **kwargs: object) -> object:
    """Call one hook implementation with the arguments it names (pluggy lets it take a subset)."""
    return impl.function(*(kwargs[name] for name in impl.argnames))


_running_objects: dict[int, str] = {}
"""id -> name of the plugin objects given already built (not by a factory) that a started hub runs now."""


def build_plugin(name: str, source: object, hub: Hub) -> object:
    """The plugin object of ``source`` for one hub: the module itself, ``source(hub)`` for a class or factory,
    or the object itself when it was given already built."""
    if isinstance(source, ModuleType) or not (inspect.isclass(source) or inspect.isroutine(source)):
        return source
    factory = cast("Callable[[Hub], object]", source)
    try:
        plugin = factory(hub)
    except PluginSetupError:
        raise
    except Exception as exc:
        raise PluginSetupError(f"plugin {name!r}: building it failed: {type(exc).__name__}: {exc}") from exc
    if plugin is None or isinstance(plugin, ModuleType | type):
        raise PluginSetupError(f"plugin {name!r}: its factory returned {plugin!r}, not a plugin object")
    check_hooks(plugin, name)
    return plugin


class PluginManager:
    """The plugins of one hub (``runtime``), or of none (None: built only to describe their channels, for
    ``hub schema`` and ``hub plugins``; their :class:`hub.Hub` refuses to act). A typed facade over pluggy."""

    def __init__(self, catalog: PluginCatalog | None = None, runtime: Node | None = None) -> None:
        self.catalog = catalog or PluginCatalog()
        self._pm = pluggy.PluginManager("hub")
        self._pm.add_hookspecs(hookspecs)
        self.apis: dict[str, Hub] = {}
        """plugin name -> the :class:`hub.Hub` its object and hooks get."""
        self.objects: dict[str, object] = {}
        for name, source in self.catalog.sources.items():
            api = Hub(runtime, name)
            plugin = build_plugin(name, source, api)
            self._pm.register(plugin, name=name)
            self.apis[name] = api
            self.objects[name] = plugin
        self._pm.check_pending()  # a misspelled hook implementation is an error at start-up
        # Plugins are registered once, above: with no hub_authorize anywhere, a request skips the hook call.
        self._authorizers = bool(self._pm.hook.hub_authorize.get_hookimpls())

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self._pm.list_name_plugin() if name is not None]

    def static_dirs(self) -> dict[str, Path]:
        """plugin name -> the folder served at ``/plugins/<name>/`` (a ``panel.js`` there is its demo panel), from
        each plugin's module or object (:func:`hub.plugin_catalog.static_dir`)."""
        found = {name: static_dir(plugin, name) for name, plugin in self.objects.items()}
        return {name: path for name, path in found.items() if path is not None}

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

    def http_routes(self) -> list[APIRouter]:
        routers: list[APIRouter] = []
        for impl in self._pm.hook.hub_http_routes.get_hookimpls():
            router = _call(impl, hub=self.apis[impl.plugin_name])
            if router is not None:
                routers.append(router)  # type: ignore[arg-type]  # the hookspec says APIRouter | None
        return routers

    def _claim_prebuilt(self) -> None:
        for name, source in self.catalog.sources.items():
            if self.objects[name] is source and not isinstance(source, ModuleType):
                if id(source) in _running_objects:
                    raise PluginSetupError(
                        f"plugin {name!r}: this object already runs in another hub; a plugin object keeps one hub's "
                        f"state, so give each hub its own (pass the class or a factory)"
                    )
                _running_objects[id(source)] = name

    def _release_prebuilt(self) -> None:
        for name, source in self.catalog.sources.items():
            if self.objects[name] is source and _running_objects.get(id(source)) == name:
                del _running_objects[id(source)]

    async def startup(self) -> None:
        self._claim_prebuilt()
        try:
            # One by one (not through pm.hook) so each awaitable finishes before the next plugin starts.
            for impl in self._pm.hook.hub_startup.get_hookimpls():
                result = _call(impl, hub=self.apis[impl.plugin_name])
                if inspect.isawaitable(result):
                    await result
        except BaseException:
            self._release_prebuilt()
            raise

    async def shutdown(self) -> None:
        for impl in reversed(self._pm.hook.hub_shutdown.get_hookimpls()):
            try:
                result = _call(impl, hub=self.apis[impl.plugin_name])
                if inspect.isawaitable(result):
                    await result
            except Exception:  # one plugin failing to stop must not keep the others (or the backends) open
                log.exception("plugin %r failed in hub_shutdown", impl.plugin_name)
        self._release_prebuilt()

    def authorize(self, identity: Identity, action: hookspecs.Action, channel: str, message_type: str | None) -> bool:
        if not self._authorizers:
            return True
        results = self._pm.hook.hub_authorize(
            identity=identity, action=action, channel=channel, message_type=message_type
        )
        for result in results:
            if inspect.isawaitable(result):
                if inspect.iscoroutine(result):
                    result.close()
                raise TypeError("hub_authorize must be a plain function returning bool | None, not async")
        return all(result is not False for result in results)
