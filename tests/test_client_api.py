"""hub.client's public surface is one list, and its docs run: docs/client.md ("Python client") names exactly
``hub.client.__all__``, every public member of ``Client`` and ``Subscription``, and its bot example works against a
real hub."""

from __future__ import annotations

import asyncio
import inspect
import re
import signal
import sys
from pathlib import Path
from typing import Any

import hub.client
from hub.client import Client, Event
from tests.client_helpers import CHAT, Calls

DOC = Path(__file__).resolve().parents[1] / "docs" / "client.md"


def section() -> str:
    text = DOC.read_text()
    start = text.index("## Python client: `hub.client`")
    return text[start : text.index("\n## ", start + 1)]


def public(cls: type) -> set[str]:
    return {name for name, _ in inspect.getmembers(cls) if not name.startswith("_")}


def test_all_is_sorted_and_importable() -> None:
    assert hub.client.__all__ == sorted(hub.client.__all__)
    for name in hub.client.__all__:
        assert hasattr(hub.client, name), name


def test_the_docs_list_exactly_the_exports() -> None:
    block = re.search(r"<!-- client-api -->(.*?)<!-- /client-api -->", section(), re.DOTALL)
    assert block is not None
    assert set(re.findall(r"`(\w+)`", block.group(1))) == set(hub.client.__all__)


def test_the_docs_name_every_member_of_client_and_subscription() -> None:
    text = section()
    client = Client("ws://127.0.0.1:9/ws")
    for prefix, instance in (("client", client), ("sub", client.subscribe("chat:lobby"))):
        cls = type(instance)
        documented = set(re.findall(rf"`(?:await )?{prefix}\.(\w+)", text))
        assert documented >= public(cls), f"{cls.__name__} members missing: {sorted(public(cls) - documented)}"
        attributes = {name for name in dir(instance) if not name.startswith("_")}
        assert documented == attributes, f"{cls.__name__}: {sorted(documented ^ attributes)}"


async def test_the_bot_of_the_docs_answers_in_the_chat(hub_server: Any, tmp_path: Path) -> None:
    block = re.search(r"```python\n(# bot\.py\n.*?)```", section(), re.DOTALL)
    assert block is not None
    script = tmp_path / "bot.py"
    script.write_text(block.group(1))
    server = hub_server(plugins=CHAT)
    bot = await asyncio.create_subprocess_exec(
        sys.executable, str(script), server.ws_url, stderr=asyncio.subprocess.PIPE
    )
    calls = Calls()
    try:
        async with Client(server.ws_url, token=server.token("alice")) as alice:
            presence = Calls()
            sub = alice.subscribe(
                "chat:lobby", events={"chat.posted": calls.record("posted")}, on_presence=presence.record("presence")
            )
            await sub.ready()
            await presence.until("presence", lambda call: call[1].type == "joined", timeout=30)  # the bot is in
            await alice.publish("chat:lobby", "chat.send", {"text": "!time"})
            answer: Event = await calls.until("posted", lambda event: event.data["text"].startswith("It is "))
            assert re.fullmatch(r"It is \d\d:\d\d:\d\d\.", answer.data["text"])
            assert answer.data["author"]["user"].startswith("guest-")
    finally:
        bot.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(bot.wait(), 30) == 0
    assert bot.stderr is not None
    said = (await bot.stderr.read()).decode()
    assert said.splitlines()[0] == f"open {server.ws_url}"
    assert "Traceback" not in said
