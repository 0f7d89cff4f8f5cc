"""``hub bench`` tells a terminal what it is doing (a live line on stderr naming each phase), and writes nothing
but its report when its output goes to a pipe."""

from __future__ import annotations

import os
import pty
import subprocess
import threading

import pytest

from hub.bench.server import hub_command

pytestmark = pytest.mark.usefixtures("clean_hub_environment")

ARGS = ["bench", "--spawn", "--clients", "1", "--subscribers", "2", "--messages", "20", "--timeout", "20"]
PHASES = ("starting", "connecting", "waiting", "publishing", "finishing")


def test_a_terminal_sees_every_phase() -> None:
    leader, follower = pty.openpty()
    process = subprocess.Popen([*hub_command(), *ARGS], stdout=subprocess.PIPE, stderr=follower)
    os.close(follower)
    seen = bytearray()

    def drain() -> None:  # a full terminal buffer would stop the command
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the other end closed
                return
            if not chunk:
                return
            seen.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    stdout, _ = process.communicate(timeout=120)
    reader.join(timeout=10)
    os.close(leader)
    assert process.returncode == 0, (stdout, bytes(seen))
    text = seen.decode(errors="replace")
    for phase in PHASES:
        assert f"\r{phase} " in text, (phase, text)
    assert text.rstrip(" ").endswith("\n")  # the live line is ended before the report
    assert b"deliveries / expected" in stdout


def test_a_pipe_gets_only_the_report() -> None:
    done = subprocess.run([*hub_command(), *ARGS], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "deliveries / expected" in done.stdout
