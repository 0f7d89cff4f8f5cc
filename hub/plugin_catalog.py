"""PluginCatalog: the plugins a process knows — by entry point or given directly — before any hub runs them.

A plugin's *source* is what its entry point names: a module of hook functions (a stateless plugin), or a class
or factory that each hub calls with its :class:`hub.Hub` to build the plugin object it runs. Tests may also
give an object already built, which then serves one running hub at a time. An entry point
that fails to import is kept as a :class:`BrokenPlugin`, so every command that does not need it still works.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from importlib.resources import files
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from hub import hookspecs
from hub.plugin_api import Plugin

if TYPE_CHECKING:
    import typer

ENTRY_POINT_GROUP = "hub.plugins"
HOOK_NAMES = frozenset(name for name in vars(hookspecs) if name.startswith("hub_"))


class UnknownPlugin(Exception):
    def __init__(self, name: str, available: Iterable[str]) -> None:
        self.name = name
        self.available = sorted(available)
        listed = ", ".join(self.available) or "none installed"
        super().__init__(f"unknown plugin {name!r}; available: {listed}")


@dataclass(frozen=True, slots=True)
class BrokenPlugin:
    """An installed plugin whose entry point failed to load."""

    name: str
    entry_point: str
    error: str

    def __str__(self) -> str:
        return (
            f"plugin {self.name!r} (entry point {self.name} = {self.entry_point}) failed to import: {self.error}. "
            f"Fix or uninstall the package that provides it, or leave it out with --plugins (or HUB_PLUGINS)"
        )


class BrokenPluginError(Exception):
    """A plugin that was asked for cannot be loaded."""

    def __init__(self, broken: BrokenPlugin) -> None:
        self.broken = broken
        super().__init__(str(broken))


def check_hooks(plugin: object, name: str) -> None:
    """Every ``hub_*`` attribute of ``plugin`` is a known hook carrying ``@hookimpl``: a typo is an error now."""
    for attr in dir(plugin):
        if not attr.startswith("hub_") or not callable(getattr(plugin, attr)):
            continue
        if attr not in HOOK_NAMES:
            raise ValueError(f"plugin {name!r}: {attr!r} is not a hub hook (see docs/hooks.md)")
        if not hasattr(getattr(plugin, attr), "hub_impl"):
            raise ValueError(f"plugin {name!r}: {attr!r} looks like a hook but lacks @hookimpl")


def _defines_hooks(cls: type) -> bool:
    return any(attr in HOOK_NAMES for attr in dir(cls))


def check_source(source: object, name: str) -> None:
    """A source is a module of hooks, a class or factory the hub calls with its Hub, or an object already built
    (tests build one with their own arguments; it may serve one running hub at a time)."""
    if isinstance(source, ModuleType):
        check_hooks(source, name)
        if not any(attr in HOOK_NAMES for attr in vars(source)):
            classes = [attr for attr, value in vars(source).items() if inspect.isclass(value) and _defines_hooks(value)]
            hint = f"; name its plugin class instead: {source.__name__}:{classes[0]}" if classes else ""
            raise TypeError(f"plugin {name!r}: module {source.__name__} implements no hub hook{hint}")
        return
    if not callable(source) or not (inspect.isclass(source) or inspect.isroutine(source)):
        check_hooks(source, name)  # an object already built: used as is, by one running hub at a time
        return
    if inspect.isclass(source):
        check_hooks(source, name)
        cli_hook = inspect.getattr_static(source, "hub_cli_commands", None)
        if cli_hook is not None and not isinstance(cli_hook, staticmethod | classmethod):
            raise TypeError(
                f"plugin {name!r}: hub_cli_commands on a plugin class must be a @staticmethod (it runs before any "
                f"hub exists)"
            )


def _package_of(source: object) -> str | None:
    module = source if isinstance(source, ModuleType) else sys.modules.get(getattr(source, "__module__", ""))
    if module is None:
        return None
    if hasattr(module, "__path__"):  # a package: its own __init__
        return module.__name__
    return module.__package__ or None  # a module in a package, or None for a lone top-level module


def _declares_static(source: object) -> bool:
    """Whether the module, or the class itself (not the ``hub.Plugin`` default), says where its static is."""
    if inspect.isclass(source):
        return any("static" in vars(klass) for klass in source.__mro__ if klass is not Plugin and klass is not object)
    return hasattr(source, "static")


def static_dir(source: object, name: str) -> Path | None:
    """The folder the hub serves at ``/plugins/<name>/``: the ``static`` attribute of the module or class (a
    folder of its package, or an absolute path; None for none), else ``static/`` in the source's package when
    there is one. A lone top-level module has none unless it declares an absolute path."""
    if not isinstance(source, ModuleType) and not inspect.isclass(source):
        source = type(source)  # a plugin object: its class says, and its class's package holds the folder
    declared = getattr(source, "static", "static")
    if declared is None:
        return None
    if not isinstance(declared, str | Path):
        raise TypeError(f"plugin {name!r}: 'static' must be a folder name or path, not {declared!r}")
    explicit = _declares_static(source)
    if Path(declared).is_absolute():
        path = Path(declared)
    else:
        package = _package_of(source)
        if package is None:
            if explicit:
                raise ValueError(f"plugin {name!r}: a module outside a package needs an absolute 'static' path")
            return None
        path = Path(str(files(package) / str(declared)))
    if path.is_dir():
        return path
    if explicit and declared != "static":
        raise ValueError(f"plugin {name!r}: its static folder {str(path)!r} does not exist")
    return None


class PluginCatalog:
    """The sources of the plugins to run, by name, and the installed ones that failed to load."""

    def __init__(self, sources: Mapping[str, object] | None = None) -> None:
        self.sources: dict[str, object] = {}
        self.broken: dict[str, BrokenPlugin] = {}
        for name, source in (sources or {}).items():
            self.add(name, source)

    def add(self, name: str, source: object) -> None:
        check_source(source, name)
        self.sources[name] = source

    @classmethod
    def installed(cls) -> PluginCatalog:
        """Every installed plugin; one that fails to import is kept in ``broken`` instead."""
        catalog = cls()
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
            if ep.name in catalog.sources or ep.name in catalog.broken:
                continue
            try:
                source = ep.load()
                check_source(source, ep.name)
            except Exception as exc:  # a third-party import can fail in any way; report it by name
                catalog.broken[ep.name] = BrokenPlugin(ep.name, ep.value, f"{type(exc).__name__}: {exc}")
                continue
            catalog.sources[ep.name] = source
        return catalog

    @classmethod
    def from_entry_points(cls, enabled: Iterable[str] | None = None) -> PluginCatalog:
        """The installed plugins ``enabled`` names (``--plugins``; None: every one). An unknown name raises
        :class:`UnknownPlugin`, a broken one :class:`BrokenPluginError`."""
        installed = cls.installed()
        known = set(installed.sources) | set(installed.broken)
        names = sorted(known) if enabled is None else list(dict.fromkeys(enabled))
        for name in names:
            if name not in known:
                raise UnknownPlugin(name, known)
        for name in names:
            if name in installed.broken:
                raise BrokenPluginError(installed.broken[name])
        return cls({name: installed.sources[name] for name in names})

    @property
    def names(self) -> list[str]:
        return list(self.sources)

    def cli_commands(self, cli: typer.Typer) -> None:
        """Run every plugin's ``hub_cli_commands`` (a module function, or a static method of a plugin class)."""
        for source in self.sources.values():
            hook = getattr(source, "hub_cli_commands", None)
            if hook is not None and (isinstance(source, ModuleType) or inspect.isclass(source)):
                hook(cli=cli)
