"""``hub listen`` as a real subprocess against a real hub: it prints the events another client publishes, one line
each, goes on through a restart of the hub, resumes from ``--since``, stops on Ctrl-C or SIGTERM with status 0 and
no traceback, and says in one line why it cannot go on (1) or was misused (2)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from hub.client import Client
from tests.client_helpers import CHAT

HUB = Path(sys.executable).with_name("hub")
CLEAN_ENV = {key: value for key, value in os.environ.items() if not key.upper().startswith("HUB_")}


class Listening:
    """A running ``hub listen``: its stdout and stderr read line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.errors: list[str] = []

    async def line(self, timeout: float = 15.0) -> str:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        assert raw, f"hub listen ended: {await self.rest_of_stderr()}"
        return raw.decode().rstrip("\n")

    async def json(self, skip: Callable[[dict[str, Any]], bool] = lambda frame: False) -> dict[str, Any]:
        """The next JSON line, after those ``skip`` is true for."""
        while True:
            frame: dict[str, Any] = json.loads(await self.line())
            if not skip(frame):
                return frame

    async def note(self, predicate: Callable[[str], bool], timeout: float = 15.0) -> str:
        """The first stderr line for which ``predicate`` holds."""
        assert self.process.stderr is not None
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.process.stderr.readline()
                assert raw, f"hub listen ended; it said: {self.errors}"
                self.errors.append(raw.decode().rstrip("\n"))
                if predicate(self.errors[-1]):
                    return self.errors[-1]

    async def rest_of_stderr(self) -> str:
        assert self.process.stderr is not None
        return "\n".join(self.errors) + (await self.process.stderr.read()).decode()

    async def stop(self, sig: signal.Signals = signal.SIGINT) -> tuple[int, str]:
        self.process.send_signal(sig)
        status = await asyncio.wait_for(self.process.wait(), 15)
        return status, await self.rest_of_stderr()


@pytest.fixture
async def listen() -> AsyncIterator[Callable[..., Any]]:
    started: list[Listening] = []

    async def start(*args: str) -> Listening:
        process = await asyncio.create_subprocess_exec(
            str(HUB), "listen", *args, env=CLEAN_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        started.append(Listening(process))
        return started[-1]

    yield start
    for listening in started:
        if listening.process.returncode is None:
            listening.process.kill()
            await listening.process.wait()


def presence(frame: dict[str, Any]) -> bool:
    return frame.get("type") in ("chat.joined", "chat.left")


def run_listen(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HUB), "listen", *args], capture_output=True, text=True, env=CLEAN_ENV, timeout=60)


async def test_prints_each_event_another_client_publishes_and_stops_on_ctrl_c(hub_server: Any, listen: Any) -> None:
    server = hub_server(plugins=CHAT)
    listening = await listen("chat:lobby", "--server", server.ws_url)
    said = await listening.note(lambda line: line.startswith("following chat:lobby"))
    assert re.fullmatch(r"following chat:lobby at \w+:0", said)
    assert any(line.startswith(f"connected to {server.ws_url} as ") for line in listening.errors)
    async with Client(server.ws_url, token=server.token("alice", name="Alice")) as alice:
        await alice.publish("chat:lobby", "chat.send", {"text": "hello, listener"})
        line = await listening.line()
        stamp, kind, offset, data = line.split(" ", 3)
        assert re.fullmatch(r"\d\d:\d\d:\d\d", stamp)
        assert (kind, offset) == ("chat.posted", "#1")
        assert json.loads(data)["text"] == "hello, listener"
        assert json.loads(data)["author"] == {"user": "alice", "name": "Alice"}
        await alice.subscribe("chat:lobby").ready()
        assert (await listening.line()).split(" ")[1] == "chat.joined"  # presence events too, without an offset
    status, errors = await listening.stop(signal.SIGINT)
    assert status == 0
    assert "Traceback" not in errors
    assert "error" not in errors


async def test_json_lines_go_on_through_a_restart_and_since_resumes_from_a_position(
    hub_server: Any, listen: Any
) -> None:
    server = hub_server(plugins=CHAT)
    listening = await listen("chat:room", "--server", server.ws_url, "--json")
    first = await listening.json()
    assert (first["op"], first["ch"], first["offset"], first["reset"]) == ("subscribed", "chat:room", 0, False)
    assert first["snapshot"] == {"messages": []}
    async with Client(server.ws_url) as publisher:
        posted = [await publisher.publish("chat:room", "chat.send", {"text": f"m{n}"}) for n in range(3)]
        for n in range(3):
            assert await listening.json() == {
                "op": "ev", "ch": "chat:room", "type": "chat.posted", "data": posted[n], "offset": n + 1,
            }  # fmt: skip

        later = await listen("chat:room", "--server", server.ws_url, "--json", "--since", f"{first['epoch']}:1")
        resumed = await later.json()
        assert (resumed["recovered"], resumed["missed"], resumed["offset"]) == (True, 2, 3)
        assert "snapshot" not in resumed
        assert [(await later.json())["data"]["text"] for _ in range(2)] == ["m1", "m2"]
        assert (await later.stop(signal.SIGTERM))[0] == 0

        await asyncio.to_thread(server.restart)  # memory://: the stream starts again under a new epoch
        await listening.note(lambda line: line.startswith(f"no connection to {server.ws_url}"))
        again = await listening.json(skip=presence)  # the later listener came and went meanwhile
        assert (again["op"], again["recovered"], again["reset"]) == ("subscribed", False, True)
        assert again["epoch"] != first["epoch"]
        assert [m["text"] for m in again["snapshot"]["messages"]] == ["m0", "m1", "m2"]  # from the store
        await publisher.wait_open()
        await publisher.publish("chat:room", "chat.send", {"text": "after the restart"})
        event = await listening.json(skip=presence)
        assert (event["data"]["text"], event["offset"]) == ("after the restart", 1)
    status, errors = await listening.stop(signal.SIGTERM)
    assert status == 0
    assert "Traceback" not in errors


async def test_a_refused_channel_or_token_is_one_line_and_status_1(hub_server: Any) -> None:
    server = hub_server(plugins=CHAT)
    refused, forged = await asyncio.gather(
        asyncio.to_thread(run_listen, "nope:room", "--server", server.ws_url),
        asyncio.to_thread(run_listen, "chat:room", "--server", server.ws_url, "--token", "forged"),
    )
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[-1].startswith("error: the hub refused nope:room: unknown_channel: ")
    assert "Traceback" not in refused.stderr
    assert refused.stdout == ""
    assert forged.returncode == 1
    assert forged.stderr.splitlines() == [
        "error: the hub refused the connection (4001: Invalid token: Not enough segments.)"
    ]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["chat lobby"], "error: 'chat lobby' is not a channel: use <namespace>:<room>, such as chat:lobby"),
        (["chat:x", "--since", "41"], "error: --since '41': use EPOCH:OFFSET, as the 'subscribed' line of --json"),
        (["chat:x", "--server", "ftp://hub"], "error: 'ftp://hub' is not a hub URL: use ws://host:port/ws"),
        ([], "error: Missing argument 'CHANNEL'."),
    ],
)
@pytest.mark.usefixtures("clean_hub_environment")
def test_usage_errors_are_one_line_and_status_2(capsys: pytest.CaptureFixture[str], args: list[str], says: str) -> None:
    from hub.cli import run

    assert run(["listen", *args]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith(says)


@pytest.mark.usefixtures("clean_hub_environment")
def test_the_help_is_readable_at_80_columns(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from hub.cli import run

    monkeypatch.setenv("COLUMNS", "80")
    assert run(["listen", "--help"]) == 0
    text = capsys.readouterr().out
    assert max(len(line) for line in text.splitlines()) <= 80
    for flag in ("--server URL", "--token JWT", "--since EPOCH:OFFSET", "--json"):
        assert flag in text
