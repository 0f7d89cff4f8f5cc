"""scripts/system-deps, the first step of the README's test command: on a machine that lacks what the tests need
and may not install it, it stops at once with the exact command to run; with everything there it says nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "system-deps"
BASH = shutil.which("bash") or "/bin/bash"


def run(path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [BASH, str(SCRIPT)],
        env={"PATH": str(path), "HOME": os.environ.get("HOME", "/root"), **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done, time.monotonic() - started


def tools(tmp_path: Path, *names: str) -> Path:
    """A PATH of one directory holding only ``names`` (stand-ins: the script only looks them up)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in names:
        tool = bin_dir / name
        tool.write_text("#!/bin/sh\nexit 0\n")
        tool.chmod(0o755)
    return bin_dir


def test_everything_there_is_silent(tmp_path: Path) -> None:
    chromium = tools(tmp_path, "node", "npm", "redis-server") / "chromium"
    chromium.write_text("#!/bin/sh\n")
    chromium.chmod(0o755)
    done, _ = run(chromium.parent, HUB_CHROMIUM=str(chromium))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_missing_packages_without_a_package_manager_stop_at_once_naming_them(tmp_path: Path) -> None:
    done, took = run(tools(tmp_path, "node", "npm"), HUB_CHROMIUM="")
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr
    assert lines[0].startswith("error: the tests need ")
    assert "redis-server" in lines[0]
    assert "Debian/Ubuntu names:" in lines[1]
    assert "redis-server" in lines[1]
    assert "Traceback" not in done.stderr
    assert took < 1.0


def test_missing_packages_not_allowed_to_install_print_the_apt_command(tmp_path: Path) -> None:
    path = tools(tmp_path, "node", "apt-get")  # apt-get is there, but installing is refused by the setting
    done, took = run(path, HUB_CHROMIUM="", HUB_INSTALL_SYSTEM_PACKAGES="0")
    assert done.returncode == 1
    command = done.stderr.splitlines()[-1]
    assert command.startswith("run: ")
    assert "apt-get update && " in command
    assert command.endswith("apt-get install -y npm redis-server") or command.endswith(
        "apt-get install -y npm redis-server chromium"
    ), command
    assert took < 1.0


def test_a_wrong_hub_chromium_is_named(tmp_path: Path) -> None:
    done, _ = run(tools(tmp_path, "node", "npm", "redis-server"), HUB_CHROMIUM=str(tmp_path / "nowhere"))
    assert done.returncode == 1
    assert "HUB_CHROMIUM=" in done.stderr
    assert "not an executable file" in done.stderr


def test_allowed_install_runs_apt_get_with_the_missing_packages(tmp_path: Path) -> None:
    path = tools(tmp_path, "node", "npm")
    log = tmp_path / "apt.log"
    apt = path / "apt-get"  # records its arguments instead of installing: what is checked is what it is asked
    apt.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    apt.chmod(0o755)
    sudo = path / "sudo"  # when the test runs as a user, the script uses sudo -n: let it through
    sudo.write_text('#!/bin/sh\n[ "$1" = "-n" ] && shift\nexec "$@"\n')
    sudo.chmod(0o755)
    done, _ = run(path, HUB_CHROMIUM="", HUB_INSTALL_SYSTEM_PACKAGES="auto")
    assert done.returncode == 0, done.stderr
    assert "installing what the tests need: redis-server" in done.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == "update -qq"
    assert calls[1].startswith("install -y -qq --no-install-recommends redis-server")
