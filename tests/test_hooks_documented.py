"""Meta-test: every hook in hub.hookspecs is documented (docstring and docs/hooks.md) and tested."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from hub import hookspecs

TESTS = Path(__file__).resolve().parent
HOOKS_DOC = TESTS.parent / "docs" / "hooks.md"

HOOK_NAMES = sorted(name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("hub_"))


def test_hooks_are_found() -> None:
    # Guards the parametrized tests below against silently running over an empty list.
    assert {"hub_channels", "hub_startup", "hub_shutdown", "hub_authorize"} <= set(HOOK_NAMES)


@pytest.mark.parametrize("name", HOOK_NAMES)
def test_hook_is_a_hookspec(name: str) -> None:
    assert hasattr(getattr(hookspecs, name), "hub_spec"), f"{name} is not decorated with @hookspec"


@pytest.mark.parametrize("name", HOOK_NAMES)
def test_hook_docstring_has_the_standard_parts(name: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    assert doc.split("\n", 1)[0].strip(), f"{name} needs a one-line summary"
    assert ":return:" in doc or "All implementations" in doc, f"{name} must say what it returns or how results combine"
    assert "versionadded" in doc, f"{name} needs a '.. versionadded::' line"


@pytest.mark.parametrize("name", HOOK_NAMES)
def test_hook_has_a_section_in_docs(name: str) -> None:
    assert HOOKS_DOC.is_file(), f"{HOOKS_DOC} is missing"
    heading = re.compile(rf"^## {re.escape(name)}\b", re.MULTILINE)
    assert heading.search(HOOKS_DOC.read_text()), f"docs/hooks.md has no '## {name}' section"


@pytest.mark.parametrize("name", HOOK_NAMES)
def test_hook_is_used_in_a_test(name: str) -> None:
    me = Path(__file__).resolve()
    users = [path for path in TESTS.rglob("*.py") if path.resolve() != me and name in path.read_text()]
    assert users, f"no test under tests/ mentions {name}"
