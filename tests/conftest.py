"""Shared fixtures: hub.testing's real-server fixtures, used exactly as a plugin author would, the Redis and
Redis Cluster fixtures of tests/rigs/redis.py, and a clean env."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest_plugins = ["hub.testing", "tests.rigs.redis"]


@pytest.fixture
def clean_hub_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No HUB_* variable from the developer's shell, and a working directory (so a .hub data dir) of our own."""
    for name in list(os.environ):
        if name.startswith("HUB_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "hub", "hub.access")


@pytest.fixture
def server_logs(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[..., pytest.LogCaptureFixture]]:
    """``server_logs(level)`` after the server started (its uvicorn config resets the levels) -> caplog, which then
    holds the running server's records too."""
    attached: list[logging.Logger] = []

    def capture(level: int = logging.INFO) -> pytest.LogCaptureFixture:
        for name in SERVER_LOGGERS:
            caplog.set_level(level, logger=name)
            logger = logging.getLogger(name)
            # uvicorn's logging config (and `hub serve`'s) gives some loggers their own handlers and stops
            # propagation to the root logger, where caplog listens: listen on those loggers directly.
            if not logger.propagate and caplog.handler not in logger.handlers:
                logger.addHandler(caplog.handler)
                attached.append(logger)
        return caplog

    yield capture
    for logger in attached:
        logger.removeHandler(caplog.handler)
