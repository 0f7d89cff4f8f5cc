"""Where a plugin's ``static/`` folder comes from: declared, or found in its own package through
importlib.resources; never next to a lone module (which would be ``site-packages/static``, shared)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.plugin_catalog import PluginCatalog, static_dir
from hub.plugin_manager import PluginManager

PLUGIN_CLASS = """
from hub import Channel, Hub, Plugin, hookimpl

class Thing(Plugin):
    {static}
    def __init__(self, hub: Hub) -> None:
        super().__init__(hub)
        self.channel = Channel("thing")

    @hookimpl
    def hub_channels(self) -> list[Channel]:
        return [self.channel]
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on sys.path, as site-packages is, with a ``static/`` of its own at the top."""
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "panel.js").write_text("// not any plugin's\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [name for name in sys.modules if name.startswith(("lone_", "pkg_"))]:
        del sys.modules[name]


def test_a_package_plugin_finds_static_in_its_package(site: Path) -> None:
    (site / "pkg_thing" / "static").mkdir(parents=True)
    (site / "pkg_thing" / "__init__.py").write_text(PLUGIN_CLASS.format(static=""))
    thing = importlib.import_module("pkg_thing").Thing
    assert static_dir(thing, "thing") == site / "pkg_thing" / "static"
    assert PluginManager(PluginCatalog({"thing": thing})).static_dirs() == {"thing": site / "pkg_thing" / "static"}
    # a factory's object is looked up by its class, wherever the factory is written
    factory = PluginCatalog({"thing": lambda hub: thing(hub)})
    assert PluginManager(factory).static_dirs() == {"thing": site / "pkg_thing" / "static"}


def test_a_module_in_a_package_uses_its_package(site: Path) -> None:
    (site / "pkg_inner" / "static").mkdir(parents=True)
    (site / "pkg_inner" / "__init__.py").write_text("")
    (site / "pkg_inner" / "plugin.py").write_text(PLUGIN_CLASS.format(static=""))
    thing = importlib.import_module("pkg_inner.plugin").Thing
    assert static_dir(thing, "thing") == site / "pkg_inner" / "static"


def test_a_lone_module_never_gets_the_shared_top_level_static(site: Path) -> None:
    (site / "lone_thing.py").write_text(PLUGIN_CLASS.format(static=""))
    thing = importlib.import_module("lone_thing").Thing
    assert static_dir(thing, "thing") is None


def test_a_lone_module_may_declare_an_absolute_folder(site: Path, tmp_path: Path) -> None:
    panel = tmp_path / "elsewhere"
    panel.mkdir()
    (site / "lone_declared.py").write_text(PLUGIN_CLASS.format(static=f"static = {str(panel)!r}"))
    thing = importlib.import_module("lone_declared").Thing
    assert static_dir(thing, "thing") == panel


def test_a_declared_folder_that_is_missing_is_an_error(site: Path) -> None:
    (site / "pkg_missing").mkdir()
    (site / "pkg_missing" / "__init__.py").write_text(PLUGIN_CLASS.format(static='static = "web"'))
    thing = importlib.import_module("pkg_missing").Thing
    with pytest.raises(ValueError, match=r"its static folder .*pkg_missing/web.* does not exist"):
        static_dir(thing, "thing")


def test_none_means_no_static(site: Path) -> None:
    (site / "pkg_none" / "static").mkdir(parents=True)
    (site / "pkg_none" / "__init__.py").write_text(PLUGIN_CLASS.format(static="static = None"))
    assert static_dir(importlib.import_module("pkg_none").Thing, "thing") is None


def test_the_built_in_plugins_serve_their_panels() -> None:
    found = PluginManager(PluginCatalog.from_entry_points(["chat"])).static_dirs()
    assert (found["chat"] / "panel.js").is_file()
