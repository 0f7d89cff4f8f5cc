"""Every third-party module the installed code imports comes with the hub's declared runtime dependencies (or
theirs): an install without the dev extras must not leave a plugin broken. hub.testing, the plugin author's
test kit, may also use pytest (a plugin's tests run under it)."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import distribution, packages_distributions, requires
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OWN = {"hub", "hub_realtime_plugins"}
TEST_KIT_ONLY = {"pytest", "_pytest"}


def imported_top_level(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.partition(".")[0])
    return found


def runtime_closure() -> set[str]:
    """Normalized names of hub-realtime's runtime requirements, and theirs, recursively, with the extras each
    requirement asks for (``PyJWT[crypto]``) and none of the others."""
    seen: set[str] = set()
    pending: list[tuple[str, set[str]]] = [("hub-realtime", set())]
    while pending:
        name, extras = pending.pop()
        for requirement in requires(name) or []:
            wanted = re.search(r"""extra\s*==\s*["']([^"']+)["']""", requirement)
            if wanted is not None and wanted.group(1) not in extras:
                continue
            found = re.match(r"([A-Za-z0-9_.-]+)(?:\[([^\]]*)\])?", requirement)
            assert found is not None, requirement
            dependency = found.group(1)
            key = re.sub(r"[-_.]+", "-", dependency).lower()
            asked = {extra.strip() for extra in (found.group(2) or "").split(",") if extra.strip()}
            if key in seen and not asked:
                continue
            seen.add(key)
            try:
                distribution(dependency)
            except Exception:  # an optional dependency of a dependency that is not installed
                continue
            pending.append((dependency, asked))
    return seen


@pytest.mark.parametrize("folder", ["hub", "plugins"])
def test_every_import_is_a_declared_dependency(folder: str) -> None:
    closure = runtime_closure()
    owners = packages_distributions()
    missing: dict[str, str] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        for module in imported_top_level(path) - OWN - set(sys.stdlib_module_names):
            if path.name == "testing.py" and module in TEST_KIT_ONLY:
                continue
            dists = {re.sub(r"[-_.]+", "-", dist).lower() for dist in owners.get(module, [])}
            if not dists & closure:
                missing[module] = str(path.relative_to(ROOT))
    assert missing == {}, f"imported but not a runtime dependency (declare it in pyproject.toml): {missing}"
