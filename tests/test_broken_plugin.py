"""A third-party plugin whose import fails: reported by name and entry point, with how to leave it out; every
other command keeps working, and ``hub plugins`` lists it as broken. The plugin is a real distribution on the
path (a dist-info with its entry point), found by importlib.metadata as an installed one would be."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hub.plugin_catalog import BrokenPluginError, PluginCatalog

HUB = [sys.executable, "-c", "from hub.cli import main; main()"]


@pytest.fixture
def broken_site(tmp_path: Path) -> Path:
    dist = tmp_path / "broken_demo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-demo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[hub.plugins]\nbrokendemo = broken_demo_plugin:BrokenDemo\n")
    (tmp_path / "broken_demo_plugin.py").write_text("import a_module_that_is_not_installed  # noqa\n")
    return tmp_path


def hub_command(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "200"}
    return subprocess.run([*HUB, *args], capture_output=True, text=True, env=env, timeout=60, check=False)


def test_the_catalog_keeps_a_broken_plugin_apart(broken_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(broken_site))
    catalog = PluginCatalog.installed()
    broken = catalog.broken["brokendemo"]
    assert broken.entry_point == "broken_demo_plugin:BrokenDemo"
    assert "ModuleNotFoundError" in broken.error
    assert "a_module_that_is_not_installed" in broken.error
    assert "chat" in catalog.sources  # the others load
    with pytest.raises(BrokenPluginError, match=r"plugin 'brokendemo' \(entry point brokendemo = broken_demo_plugin"):
        PluginCatalog.from_entry_points(None)
    assert PluginCatalog.from_entry_points(["chat"]).names == ["chat"]  # leaving it out works


def test_every_other_command_keeps_working(broken_site: Path) -> None:
    result = hub_command(broken_site, "--help")
    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout
    assert "warning: plugin 'brokendemo' (entry point brokendemo = broken_demo_plugin:BrokenDemo)" in result.stderr
    assert "--plugins" in result.stderr  # how to leave it out
    assert "Traceback" not in result.stderr


def test_hub_plugins_lists_it_as_broken(broken_site: Path) -> None:
    result = hub_command(broken_site, "plugins")
    assert result.returncode == 0, result.stderr
    assert "chat:*" in result.stdout
    broken_lines = [line for line in result.stdout.splitlines() if line.startswith("brokendemo")]
    assert len(broken_lines) == 1
    assert "BROKEN" in broken_lines[0]
    assert "a_module_that_is_not_installed" in broken_lines[0]


@pytest.mark.parametrize("args", [["serve", "--plugins", "chat,brokendemo"], ["serve"], ["schema"]])
def test_commands_that_need_it_stop_with_one_line(broken_site: Path, args: list[str]) -> None:
    result = hub_command(broken_site, *args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "'brokendemo'" in errors[0]
    assert "broken_demo_plugin:BrokenDemo" in errors[0]
    assert "Traceback" not in result.stderr


def test_a_plugin_setting_that_does_not_validate_stops_serve_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "HUB_CHAT_SNAPSHOT_SIZE": "many", "HUB_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [*HUB, "serve", "--plugins", "chat", "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.strip().splitlines() == [
        "error: plugin 'chat': its settings are not valid: HUB_CHAT_SNAPSHOT_SIZE: Input should be a valid "
        "integer, unable to parse string as an integer"
    ]
