"""Meta-test: the plugin API is one list. ``hub.__all__``, docs/writing-plugins.md and docs/architecture.md name
the same exports, writing-plugins.md lists every member of :class:`hub.Hub`, and plugins import nothing else."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

import hub
from hub import Hub

ROOT = Path(__file__).resolve().parents[1]
DOCS = {name: ROOT / "docs" / name for name in ("writing-plugins.md", "architecture.md")}
PLUGIN_DIRS = [path for path in (ROOT / "plugins").iterdir() if path.is_dir() and (path / "__init__.py").is_file()]


def marked_block(path: Path, marker: str) -> str:
    text = path.read_text()
    found = re.search(rf"<!-- {marker} -->(.*?)<!-- /{marker} -->", text, re.DOTALL)
    assert found, f"{path.name} needs a '<!-- {marker} -->' ... '<!-- /{marker} -->' block"
    return found.group(1)


def test_all_is_sorted_and_importable() -> None:
    assert hub.__all__ == sorted(hub.__all__)
    for name in hub.__all__:
        assert hasattr(hub, name), name


@pytest.mark.parametrize("doc", sorted(DOCS))
def test_the_docs_list_exactly_the_exports(doc: str) -> None:
    listed = set(re.findall(r"`(\w+)`", marked_block(DOCS[doc], "public-api")))
    assert listed == set(hub.__all__), (
        f"{doc} lists {sorted(listed - set(hub.__all__))} that hub does not export and misses "
        f"{sorted(set(hub.__all__) - listed)}"
    )


def hub_members() -> set[str]:
    return {name for name, _ in inspect.getmembers(Hub) if not name.startswith("_")} | {"name", "metrics"}


def test_writing_plugins_lists_every_member_of_hub() -> None:
    listed = set(re.findall(r"`hub\.(\w+)", marked_block(DOCS["writing-plugins.md"], "hub-api")))
    assert listed == hub_members(), (
        f"listed but not on Hub: {sorted(listed - hub_members())}; on Hub but not listed: "
        f"{sorted(hub_members() - listed)}"
    )


def test_the_hub_a_plugin_gets_exposes_no_runtime() -> None:
    exposed = hub_members()
    for internal in ("broker", "router", "sessions", "fanout", "authenticator", "runtime", "store_for", "plugins"):
        assert internal not in exposed


@pytest.mark.parametrize("plugin", [path.name for path in PLUGIN_DIRS])
def test_plugins_import_only_the_public_api(plugin: str) -> None:
    for path in sorted((ROOT / "plugins" / plugin).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            modules: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            for module in modules:
                if module == "hub" or module.startswith("hub."):
                    assert module in ("hub", "hub.testing"), f"{path.relative_to(ROOT)} imports {module}"
