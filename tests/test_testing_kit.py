"""hub.testing is the plugin author's kit only: a real server, a real client, pytest fixtures. Redis and Redis
Cluster process control is this repo's own (tests/rigs/redis.py) and stays out of the installed package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import hub.testing

KIT = {"HubServer", "HubClient", "ReplyError", "hub_server", "hub_client", "test_settings", "wait_until", "TEST_SECRET"}


def test_the_kit_offers_server_client_and_fixtures() -> None:
    assert set(vars(hub.testing)) >= KIT


def test_the_kit_has_no_redis_process_control() -> None:
    leaked = [name for name in vars(hub.testing) if "redis" in name.lower() or "cluster" in name.lower()]
    assert leaked == []
    assert not hasattr(hub.testing, "subprocess"), "hub.testing starts no processes"


def test_importing_the_kit_loads_no_rig(tmp_path: Path) -> None:
    """In a fresh interpreter, as a plugin's test suite would import it: no module of this repo's tests comes
    with it."""
    script = "import sys, hub.testing; print(sorted(name for name in sys.modules if name.split('.')[0] == 'tests'))"
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
