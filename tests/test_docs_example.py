"""docs/writing-plugins.md's example package, extracted from the doc and run, so the doc cannot rot.

The package's files are the doc's named code blocks (a fenced block whose first line names its file:
``# hub_poll/plugin.py``, ``# pyproject.toml``, ``// hub_poll/static/panel.js``). Here they are written out, the
plugin is built as the hub builds it, the example's own tests run against real servers, and then standalone with
pytest as a plugin author runs them. tests/test_plugin_package.py installs the same files as a real package.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from hub import Plugin
from hub.plugin_api import PluginSetupError
from hub.plugin_catalog import PluginCatalog
from hub.plugin_manager import PluginManager
from hub.testing import HubServerFactory

DOC = Path(__file__).resolve().parents[1] / "docs" / "writing-plugins.md"
PACKAGE = "hub_poll"
PACKAGE_FILES = (
    "pyproject.toml",
    "hub_poll/__init__.py",
    "hub_poll/messages.py",
    "hub_poll/plugin.py",
    "hub_poll/static/panel.js",
)
TEST_FILE = "tests/test_poll.py"
# A fenced block whose first line is a comment naming the file it is, relative to the package's project folder.
_NAMED_BLOCK = re.compile(
    r"^```(?:python|toml|javascript)\n((?:#|//) ([\w./-]+\.(?:py|toml|js))\n.*?)^```$", re.MULTILINE | re.DOTALL
)


def named_blocks() -> dict[str, str]:
    """The doc's named code blocks, by file path."""
    return {match.group(2): match.group(1) for match in _NAMED_BLOCK.finditer(DOC.read_text())}


def write_example(directory: Path) -> Path:
    """The doc's package project (pyproject.toml, hub_poll/, tests/) written under ``directory``."""
    blocks = named_blocks()
    for name in (*PACKAGE_FILES, TEST_FILE):
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(blocks[name])
    return directory


def doc_test_names() -> list[str]:
    """Names of the test functions in the doc's test block (read at collection time, for parametrize)."""
    source = named_blocks().get(TEST_FILE, "")
    return [
        node.name
        for node in ast.parse(source).body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_")
    ]


def environment_without_hub_settings() -> dict[str, str]:
    """This process's environment minus HUB_* (a developer's shell must not change what the example does)."""
    return {name: value for name, value in os.environ.items() if not name.startswith("HUB_") and name != "PYTHONPATH"}


@pytest.fixture
def example_dir(tmp_path: Path) -> Path:
    return write_example(tmp_path / "hub-poll")


@pytest.fixture
def hub_poll(example_dir: Path, monkeypatch: pytest.MonkeyPatch, clean_hub_environment: None) -> Iterator[ModuleType]:
    """The example package, importable as ``hub_poll`` from its project folder (forgotten again afterwards)."""
    monkeypatch.syspath_prepend(str(example_dir))
    yield importlib.import_module(PACKAGE)
    for name in [name for name in sys.modules if name == PACKAGE or name.startswith(PACKAGE + ".")]:
        del sys.modules[name]


def test_the_doc_holds_the_whole_package() -> None:
    blocks = named_blocks()
    assert set(blocks) == {*PACKAGE_FILES, TEST_FILE}, (
        f"{DOC.name}'s named blocks must be exactly the example package: {sorted(blocks)}"
    )
    project = tomllib.loads(blocks["pyproject.toml"])
    assert project["build-system"]["build-backend"] == "hatchling.build"
    assert project["project"]["name"] == "hub-poll"
    assert project["project"]["dependencies"] == ["hub-realtime"]
    assert project["project"]["entry-points"]["hub.plugins"] == {"poll": "hub_poll:Poll"}
    assert project["tool"]["pytest"]["ini_options"]["asyncio_mode"] == "auto"
    assert 'pytest_plugins = ["hub.testing"]' in blocks[TEST_FILE]
    assert doc_test_names(), f"the '# {TEST_FILE}' block defines no test function"
    assert "export default function mount(root, hub," in blocks["hub_poll/static/panel.js"]


def test_the_example_plugin_is_built_as_the_hub_builds_it(
    hub_poll: ModuleType, example_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    poll_class = hub_poll.Poll
    module, _, attribute = tomllib.loads(named_blocks()["pyproject.toml"])["project"]["entry-points"]["hub.plugins"][
        "poll"
    ].partition(":")
    assert getattr(importlib.import_module(module), attribute) is poll_class  # the entry point names the class
    assert issubclass(poll_class, Plugin)

    monkeypatch.setenv("HUB_POLL_TALLY_INTERVAL", "0.25")
    manager = PluginManager(PluginCatalog({"poll": poll_class}))  # for no hub, as `hub plugins` builds it
    plugin = manager.objects["poll"]
    assert isinstance(plugin, poll_class)
    assert plugin.settings.tally_interval == 0.25  # read when the object is built, from HUB_POLL_*
    assert manager.hooks_of("poll") == ["hub_channels", "hub_shutdown", "hub_startup"]
    [(owner, channel)] = manager.channels()
    assert (owner, channel.namespace) == ("poll", "poll")
    assert set(channel.inbound) == {"poll.create", "poll.vote"}
    assert set(channel.events) == {"poll.created", "poll.tallied"}
    assert channel.snapshot_provider is not None
    assert manager.static_dirs() == {"poll": example_dir / "hub_poll" / "static"}  # found through the package

    monkeypatch.setenv("HUB_POLL_TALLY_INTERVAL", "0")
    with pytest.raises(PluginSetupError) as refused:
        PluginManager(PluginCatalog({"poll": poll_class}))
    assert str(refused.value) in DOC.read_text()  # the doc quotes the sentence `hub serve` prints


@pytest.mark.parametrize("name", doc_test_names())
async def test_example_test_passes(
    name: str, hub_poll: ModuleType, example_dir: Path, hub_server: HubServerFactory, hub_client: Any
) -> None:
    path = example_dir / TEST_FILE
    spec = importlib.util.spec_from_file_location("docs_example_test_poll", path)
    assert spec is not None
    assert spec.loader is not None
    doc_tests = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(doc_tests)
    test = getattr(doc_tests, name)
    fixtures: dict[str, Any] = {"hub_server": hub_server, "hub_client": hub_client}
    wanted = list(inspect.signature(test).parameters)
    assert set(wanted) <= set(fixtures), f"{name} asks for fixtures this runner does not provide: {wanted}"
    await test(**{param: fixtures[param] for param in wanted})


def test_example_runs_standalone_like_a_plugin_project(example_dir: Path) -> None:
    """pytest in the project folder, configured by the doc's pyproject.toml only: no conftest of the hub's helps."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error", "tests"],
        cwd=example_dir,
        env=environment_without_hub_settings(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(doc_test_names())} passed" in result.stdout


def test_example_panel_is_a_valid_module(tmp_path: Path) -> None:
    node = shutil.which("node")
    # scripts/setup (the README's test command) needs Node.js for the panels, so it is always there: fail, never skip
    assert node is not None, "Node.js is not installed (scripts/setup needs it; .ci/run installs it)"
    panel = tmp_path / "panel.mjs"  # .mjs: checked as an ES module
    panel.write_text(named_blocks()["hub_poll/static/panel.js"])
    result = subprocess.run([node, "--check", str(panel)], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
