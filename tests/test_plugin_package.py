"""A plugin written from docs/writing-plugins.md works as a real package: the doc's example is built as a wheel
outside the repository, installed next to a real (non-editable) install of the hub in a fresh virtualenv, served by
that virtualenv's ``hub serve --plugins chat,poll``, and driven by two WebSocket clients.

Offline and quick: the virtualenv reaches the third-party packages of the environment running the tests through a
folder of links that leaves out the hub's own install, so pip builds both wheels with ``--no-deps
--no-build-isolation --no-index`` (hatchling comes from the dev extra), and nothing is downloaded.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.auth import Authenticator
from hub.testing import TEST_SECRET, HubClient
from tests.test_docs_example import environment_without_hub_settings, named_blocks, write_example

REPO = Path(__file__).resolve().parents[1]
HUB_OWN_NAMES = {"hub", "hub_realtime_plugins", "plugins", "__pycache__"}
START_TIMEOUT = 20.0


@dataclass(frozen=True)
class Installed:
    """A virtualenv with the hub and the example plugin installed in it."""

    venv: Path
    site_packages: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def hub_command(self) -> Path:
        return self.venv / "bin" / "hub"


def is_the_hubs_own(name: str) -> bool:
    """An entry of site-packages that belongs to the hub's install (editable or not), or a .pth file."""
    return name in HUB_OWN_NAMES or name.endswith(".pth") or name.startswith(("hub_realtime-", "__editable__"))


def run(command: list[str | Path], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=120, check=False, **kwargs
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("plugin-package")
    assert REPO not in root.parents, "the package must be built outside the repository"
    project = write_example(root / "hub-poll")
    venv = root / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    site_packages = Path(
        run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip()
    )
    # The test environment's third-party packages (pip, hatchling, fastapi, ...) without the hub itself.
    dependencies = root / "dependencies"
    dependencies.mkdir()
    for entry in Path(sysconfig.get_path("purelib")).iterdir():
        if not is_the_hubs_own(entry.name):
            (dependencies / entry.name).symlink_to(entry)
    (site_packages / "_test_dependencies.pth").write_text(f"{dependencies}\n")
    pip: list[str | Path] = [venv / "bin" / "python", "-m", "pip", "install", "--isolated", "--quiet"]
    pip += ["--no-cache-dir", "--no-deps", "--no-build-isolation", "--no-index"]  # offline, from what is here
    env = {**environment_without_hub_settings(), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    run([*pip, REPO], cwd=root, env=env)  # the hub, as a wheel, as `pip install hub-realtime` would
    run([*pip, project], cwd=root, env=env)  # then the plugin, as its author installs it
    return Installed(venv, site_packages)


INSPECT = """
import importlib.metadata as metadata, importlib.util, json
import hub, hub_poll
dist = metadata.distribution("hub-realtime")
try:
    metadata.distribution("hub")
    other_hub = True
except metadata.PackageNotFoundError:
    other_hub = False
print(json.dumps({
    "hub": hub.__file__,
    "hub_poll": hub_poll.__file__,
    "name": dist.metadata["Name"],
    "top_level": sorted({file.parts[0] for file in dist.files}),
    "direct_url": json.loads(dist.read_text("direct_url.json")),
    "plugins_importable": importlib.util.find_spec("plugins") is not None,
    "other_hub": other_hub,
    "entry_points": sorted(f"{ep.name} = {ep.value}" for ep in metadata.entry_points(group="hub.plugins")),
    "requires": metadata.requires("hub-poll"),
}))
"""


def test_the_hub_and_the_plugin_are_real_installs(installed: Installed) -> None:
    # -I: no current directory, no PYTHON* variables: only what is installed in the virtualenv.
    found = json.loads(run([installed.python, "-I", "-c", INSPECT], cwd=installed.venv).stdout)
    assert Path(found["hub"]).is_relative_to(installed.site_packages)
    assert Path(found["hub_poll"]).is_relative_to(installed.site_packages)
    assert found["name"] == "hub-realtime"
    assert not found["direct_url"].get("dir_info", {}).get("editable", False)
    assert {"hub", "hub_realtime_plugins"} <= set(found["top_level"])
    assert "plugins" not in found["top_level"]  # no generic top-level package in the wheel
    assert not found["plugins_importable"]
    assert not found["other_hub"]
    assert "chat = hub_realtime_plugins.chat:Chat" in found["entry_points"]
    assert "poll = hub_poll:Poll" in found["entry_points"]
    assert [req for req in found["requires"] if "extra ==" not in req] == ["hub-realtime"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(installed: Installed, tmp_path: Path) -> Iterator[str]:
    """``hub serve --plugins chat,poll`` of the virtualenv, running; its base URL."""
    port = free_port()
    env = {
        **environment_without_hub_settings(),
        "HUB_DATA_DIR": str(tmp_path / "data"),
        "HUB_SECRET": TEST_SECRET,
        "HUB_POLL_TALLY_INTERVAL": "0.1",  # the plugin's own setting, read by Poll(hub) from the environment
        "HUB_LOG_LEVEL": "info",
    }
    log_path = tmp_path / "hub.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(installed.hub_command), "serve", "--plugins", "chat,poll", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None, f"hub serve exited with {process.returncode}:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"hub serve was not ready in {START_TIMEOUT} s:\n{log_path.read_text()}"
            try:
                if httpx.get(f"{base}/readyz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    log_text = log_path.read_text()
    # uvicorn shuts down gracefully on SIGTERM (the lifespan runs every hub_shutdown), then re-raises the signal.
    assert process.returncode in (0, -signal.SIGTERM), f"hub serve did not stop cleanly:\n{log_text}"
    assert "Application shutdown complete" in log_text, log_text
    assert "Traceback" not in log_text, log_text


async def test_hub_serve_runs_the_installed_plugin_for_two_clients(served: str) -> None:
    async with httpx.AsyncClient(base_url=served) as http:
        info = (await http.get("/api/info")).json()
        assert info["plugins"] == ["chat", "poll"]
        assert info["panels"]["poll"] == "/plugins/poll/panel.js"
        assert info["channels"]["poll"]["plugin"] == "poll"
        panel = await http.get("/plugins/poll/panel.js")  # served from the installed package's static/
        assert panel.status_code == 200
        assert "javascript" in panel.headers["content-type"]
        assert panel.text == named_blocks()["hub_poll/static/panel.js"]

    ws_url = served.replace("http://", "ws://") + "/ws"
    tokens = Authenticator(TEST_SECRET)
    alice = await HubClient.connect(ws_url, token=tokens.issue("alice"))
    bob = await HubClient.connect(ws_url, token=tokens.issue("bob"))
    try:
        await alice.sub("poll:lunch")
        assert (await bob.sub("poll:lunch"))["snapshot"] is None
        question = {"question": "Lunch?", "options": ["pizza", "salad"]}
        created = await alice.pub("poll:lunch", "poll.create", question)
        assert (await bob.next_event("poll:lunch", "poll.created"))["data"] == created
        assert (await bob.pub("poll:lunch", "poll.vote", {"option": 1}))["votes"] == [0, 1]
        tallied = await alice.next_event("poll:lunch", "poll.tallied")  # from the plugin's background task
        assert tallied["data"] == {**question, "votes": [0, 1], "voters": 1}

        await alice.sub("chat:lobby")  # the built-in chat, served by the same installed hub
        await bob.sub("chat:lobby")
        posted = await bob.pub("chat:lobby", "chat.send", {"text": "voted"})
        assert (await alice.next_event("chat:lobby", "chat.posted"))["data"] == posted
    finally:
        await alice.close()
        await bob.close()
