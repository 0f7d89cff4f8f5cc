"""docs/writing-plugins.md's example plugin and its test, extracted from the doc and run, so the doc cannot rot."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from hub import Channel
from hub.plugin_manager import PluginManager
from hub.testing import HubServerFactory

DOC = Path(__file__).resolve().parents[1] / "docs" / "writing-plugins.md"
PLUGIN_FILE = "poll_plugin.py"
TEST_FILE = "test_poll_plugin.py"
# A fenced python block whose first line names the file it is: "# poll_plugin.py".
_NAMED_BLOCK = re.compile(r"^```python\n(# ([\w.]+\.py)\n.*?)^```$", re.MULTILINE | re.DOTALL)
# What a plugin author puts in pyproject.toml, as writing-plugins.md tells them to.
_PYTEST_CONFIG = """\
[tool.pytest.ini_options]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "function"
filterwarnings = ["error"]
"""


def named_blocks() -> dict[str, str]:
    """The doc's named code blocks, by file name."""
    return {match.group(2): match.group(1) for match in _NAMED_BLOCK.finditer(DOC.read_text())}


def doc_test_names() -> list[str]:
    """Names of the test functions in the doc's test block (read at collection time, for parametrize)."""
    source = named_blocks().get(TEST_FILE, "")
    return [
        node.name
        for node in ast.parse(source).body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_")
    ]


def load_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def example_dir(tmp_path: Path) -> Path:
    """The two blocks written out as files, next to each other, as a plugin author would have them."""
    blocks = named_blocks()
    for name in (PLUGIN_FILE, TEST_FILE):
        (tmp_path / name).write_text(blocks[name])
    return tmp_path


@pytest.fixture
def poll_plugin(example_dir: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The example plugin, imported under the name its test imports it by (removed again afterwards)."""
    module = load_module("poll_plugin", example_dir / PLUGIN_FILE)
    monkeypatch.setitem(sys.modules, "poll_plugin", module)
    return module


def test_doc_has_the_plugin_and_its_test() -> None:
    blocks = named_blocks()
    assert PLUGIN_FILE in blocks, f"{DOC.name} needs a ```python block starting with '# {PLUGIN_FILE}'"
    assert TEST_FILE in blocks, f"{DOC.name} needs a ```python block starting with '# {TEST_FILE}'"
    assert doc_test_names(), f"the '# {TEST_FILE}' block defines no test function"
    assert 'pytest_plugins = ["hub.testing"]' in blocks[TEST_FILE]


def test_example_plugin_declares_its_channel_and_loads(poll_plugin: ModuleType) -> None:
    channels = poll_plugin.hub_channels()
    assert [channel.namespace for channel in channels] == ["poll"]
    (poll,) = channels
    assert isinstance(poll, Channel)
    assert set(poll.inbound) == {"poll.create", "poll.vote"}
    assert set(poll.events) == {"poll.created", "poll.voted"}
    assert poll.snapshot_provider is not None

    manager = PluginManager()
    manager.register(poll_plugin, "poll")
    manager.check()  # a misspelled hook would fail here, as it does when the hub starts
    assert manager.hooks_of("poll") == ["hub_channels"]


@pytest.mark.parametrize("name", doc_test_names())
async def test_example_test_passes(
    name: str, poll_plugin: ModuleType, example_dir: Path, hub_server: HubServerFactory, hub_client: Any
) -> None:
    doc_tests = load_module("docs_example_test_poll_plugin", example_dir / TEST_FILE)
    test = getattr(doc_tests, name)
    fixtures: dict[str, Any] = {"hub_server": hub_server, "hub_client": hub_client}
    wanted = list(inspect.signature(test).parameters)
    assert set(wanted) <= set(fixtures), f"{name} asks for fixtures this runner does not provide: {wanted}"
    await test(**{param: fixtures[param] for param in wanted})


def test_example_runs_standalone_like_a_plugin_project(example_dir: Path) -> None:
    """pytest in a directory holding only the two files and the documented config: no hub conftest helps."""
    (example_dir / "pyproject.toml").write_text(_PYTEST_CONFIG)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TEST_FILE],
        cwd=example_dir,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
