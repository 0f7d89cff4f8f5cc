"""Shared fixtures: hub.testing's real-server fixtures, used exactly as a plugin author would, and a clean env."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["hub.testing"]


@pytest.fixture
def clean_hub_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No HUB_* variable from the developer's shell, and a working directory (so a .hub data dir) of our own."""
    for name in list(os.environ):
        if name.startswith("HUB_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
