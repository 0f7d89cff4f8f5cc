"""docedit interop: the official Yjs library in Node (tests/node/*.mjs, run as subprocesses) and a Python
client (pycrdt over hub.testing.HubClient) edit the same document on a real hub at the same time and end
with the same text.

1. Yjs + y-protocols over /ws (the docedit protocol, raw `ws`) with pycrdt over /ws; a big paste goes in
   parts.
2. A stock y-websocket ``WebsocketProvider`` on /yjs/{doc} with pycrdt over /ws; a reader's y-websocket
   edits are refused.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Text

import hub_realtime_plugins.docedit
from hub.testing import HubClient, HubServer

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "tests" / "node"
TIMEOUT = 20.0  # seconds any one step may take

PY_TEXT = "pycrdt-typed-this-line;"
NODE_TEXT = "NODE-yjs-typed-this-one!"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def write_var_uint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def read_var_uint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def sync_message(kind: int, payload: bytes) -> bytes:
    """A y-protocols sync sub-message: varuint kind (0 step1, 1 step2, 2 update), varUint8Array payload."""
    return write_var_uint(kind) + write_var_uint(len(payload)) + payload


def read_sync_message(message: bytes) -> tuple[int, bytes]:
    kind, pos = read_var_uint(message, 0)
    length, pos = read_var_uint(message, pos)
    payload = message[pos : pos + length]
    assert len(payload) == length, "truncated sync message"
    return kind, payload


def awareness_states(update: bytes) -> dict[int, Any]:
    """An awareness update (count, then clientID, clock, JSON state per entry) as clientID -> state."""
    count, pos = read_var_uint(update, 0)
    states: dict[int, Any] = {}
    for _ in range(count):
        client_id, pos = read_var_uint(update, pos)
        _clock, pos = read_var_uint(update, pos)
        length, pos = read_var_uint(update, pos)
        states[client_id] = json.loads(update[pos : pos + length].decode())
        pos += length
    return states


class PyDoc:
    """A pycrdt document kept in sync with ``docedit:<doc>`` over a HubClient, as docs/docedit.md says."""

    def __init__(self, client: HubClient, doc_id: str) -> None:
        self.client = client
        self.channel = f"docedit:{doc_id}"
        self.doc: Doc[Any] = Doc()
        self.text = self.doc.get("content", type=Text)
        self.awareness: dict[int, Any] = {}
        self.awareness_senders: set[str] = set()
        self.seen_names: set[str] = set()  # every name an awareness state ever had
        self.snapshot: dict[str, Any] = {}
        self._pump: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()  # set after every event of the channel

    @classmethod
    async def open(cls, client: HubClient, doc_id: str) -> PyDoc:
        self = cls(client, doc_id)
        data = await client.sub(self.channel)
        self.snapshot = data["snapshot"]
        kind, server_vector = read_sync_message(unb64(self.snapshot["step1"]))
        assert kind == 0, "the snapshot's step1 is a sync step 1"
        if self.snapshot.get("awareness"):
            self.awareness.update(awareness_states(unb64(self.snapshot["awareness"])))
        self._pump = asyncio.create_task(self._events())
        reply = await client.pub(self.channel, "docedit.sync", {"m": b64(sync_message(0, self.doc.get_state()))})
        kind, update = read_sync_message(unb64(reply["m"]))
        assert kind == 1, "the reply to step 1 is a step 2"
        self.doc.apply_update(update)
        missing = self.doc.get_update(server_vector)
        if missing != b"\x00\x00":
            await client.pub(self.channel, "docedit.sync", {"m": b64(sync_message(1, missing))})
        return self

    async def _events(self) -> None:
        while True:
            frame = await self.client.events.get()
            if frame["ch"] != self.channel:
                continue
            data = frame["data"]
            if frame["type"] == "docedit.update" and data.get("client") != self.client.hello["client"]:
                kind, update = read_sync_message(unb64(data["m"]))
                assert kind == 2, f"docedit.update carries a sync update, got kind {kind}"
                self.doc.apply_update(update)
            elif frame["type"] == "docedit.awareness":
                self.awareness_senders.add(data["client"])
                for client_id, state in awareness_states(unb64(data["m"])).items():
                    self.awareness[client_id] = state
                    if state and "user" in state:
                        self.seen_names.add(state["user"]["name"])
            self._changed.set()

    async def insert(self, index: int, chars: str) -> dict[str, Any]:
        before = self.doc.get_state()
        self.text.insert(index, chars)
        update = self.doc.get_update(before)
        reply: dict[str, Any] = await self.client.pub(self.channel, "docedit.sync", {"m": b64(sync_message(2, update))})
        return reply

    async def type_prefix(self, chars: str, delay: float = 0.002) -> None:
        """Type ``chars`` at the very start, one character per update (its own region: [0, i))."""
        for index, char in enumerate(chars):
            assert (await self.insert(index, char)) == {"applied": True}
            await asyncio.sleep(delay)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        """Until ``predicate()`` holds, checked after every event of the channel."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def wait_contains(self, needle: str, timeout: float = TIMEOUT) -> str:
        await self.wait_for(lambda: needle in str(self.text), timeout)
        return str(self.text)

    def names(self) -> list[str]:
        return sorted(state["user"]["name"] for state in self.awareness.values() if state and "user" in state)

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump


class NodeScript:
    """``node tests/node/<script> --name value …`` as a subprocess that prints JSON lines."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []

    @classmethod
    async def start(cls, script: str, **options: str | int) -> NodeScript:
        node = shutil.which("node")
        if node is None:
            pytest.fail("the interop tests need Node.js (Debian package nodejs) and `npm ci`")
        argv = [str(part) for key, value in options.items() for part in (f"--{key}", value)]
        process = await asyncio.create_subprocess_exec(
            node,
            str(NODE_DIR / script),
            *argv,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def line(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not raw:
            stderr = await self.process.stderr.read() if self.process.stderr else b""
            raise AssertionError(f"the node script ended without output: {stderr.decode()[-2000:]}")
        line: dict[str, Any] = json.loads(raw)
        self.lines.append(line)
        if line.get("ok") is False:
            raise AssertionError(f"the node script failed: {line['error']}")
        return line

    async def ready(self) -> dict[str, Any]:
        line = await self.line()
        assert line.get("ready") is True, line
        return line

    async def result(self) -> dict[str, Any]:
        line = await self.line()
        assert line.get("ok") is True, line
        assert await asyncio.wait_for(self.process.wait(), TIMEOUT) == 0
        return line

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


@pytest.fixture
async def node_scripts() -> AsyncIterator[list[NodeScript]]:
    scripts: list[NodeScript] = []
    yield scripts
    for script in scripts:
        script.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(script.process.wait(), 5)


def docedit_server(hub_server: Any, **settings: Any) -> HubServer:
    server: HubServer = hub_server(plugins={"docedit": hub_realtime_plugins.docedit.Docedit}, **settings)
    return server


async def test_yjs_in_node_and_pycrdt_type_at_once_and_converge(hub_server, hub_client, node_scripts):
    server = docedit_server(hub_server)
    py = await PyDoc.open(await hub_client(server, user="alice"), "interop-yjs")
    assert py.snapshot["role"] == "owner"
    assert await py.insert(0, "|") == {"applied": True}  # Python types before it, Node after it

    node = await NodeScript.start(
        "yjs_over_hub.mjs",
        url=server.ws_url,
        token=server.token("bob", name="Bob"),
        doc="interop-yjs",
        text=NODE_TEXT,
        after="|",
        expect=PY_TEXT,
        paste=40000,
        name="Bob",
    )
    node_scripts.append(node)
    await node.ready()
    await asyncio.gather(py.type_prefix(PY_TEXT), py.wait_contains(NODE_TEXT))
    result = await node.result()
    final = await py.wait_contains("]")  # the big paste, sent in parts
    try:
        assert final == result["text"]
        assert final.startswith(PY_TEXT + "|" + NODE_TEXT + "[")
        assert len(final) == len(PY_TEXT) + 1 + len(NODE_TEXT) + 40002
        assert result["parts"] >= 2  # the paste went in parts (base64 > 32768 characters)
        assert result["remote_updates"] >= len(PY_TEXT)  # Node saw Python's keystrokes as docedit.update events
        # awareness: Python saw Node's state, relayed with Node's hub client id
        assert "Bob" in py.names()
    finally:
        await py.close()

    # a late joiner over /ws gets everything through its step 1 / step 2 exchange
    late = await PyDoc.open(await hub_client(server, user="carol"), "interop-yjs")
    assert str(late.text) == final
    await late.close()


async def test_stock_y_websocket_on_yjs_route_converges_with_a_ws_client(hub_server, hub_client, node_scripts):
    server = docedit_server(hub_server)
    py = await PyDoc.open(await hub_client(server, user="alice"), "interop-yws")
    assert await py.insert(0, "|") == {"applied": True}
    yjs_url = f"ws://127.0.0.1:{server.port}/yjs"

    node = await NodeScript.start(
        "ywebsocket_client.mjs",
        url=yjs_url,
        token=server.token("bob", name="Bob"),
        doc="interop-yws",
        text=NODE_TEXT,
        after="|",
        expect=PY_TEXT,
        name="Bob",
    )
    node_scripts.append(node)
    ready = await node.ready()
    assert ready["initial"] in ("", "|")
    await asyncio.gather(py.type_prefix(PY_TEXT), py.wait_contains(NODE_TEXT))
    result = await node.result()
    try:
        assert await py.wait_contains(PY_TEXT + "|" + NODE_TEXT) == result["text"]
        # the y-websocket client's awareness reached /ws clients, sent by a "yjs:<n>" client; when its socket
        # closed, its state was removed (an awareness update with a null state)
        assert "Bob" in py.seen_names
        assert any(sender.startswith("yjs:") for sender in py.awareness_senders)
        await py.wait_for(lambda: "Bob" not in py.names())
    finally:
        await py.close()

    # a reader on /yjs: its edits are refused (never applied), the text stays as it was
    share = await py.client.pub(py.channel, "docedit.share", {"editors": [], "readers": ["dave"], "public": "none"})
    assert share["readers"] == ["dave"]
    reader = await NodeScript.start(
        "ywebsocket_client.mjs",
        url=yjs_url,
        token=server.token("dave", name="Dave"),
        doc="interop-yws",
        text="XX",
        denied=1,
    )
    node_scripts.append(reader)
    assert (await reader.ready())["initial"] == result["text"]
    refused = await reader.result()
    assert refused["text"].count("XX") == 1  # its own copy has it, the hub said permission denied...
    assert refused["denials"], refused
    check = await PyDoc.open(await hub_client(server, user="alice"), "interop-yws")
    assert "XX" not in str(check.text)  # ...the hub's does not
    await check.close()

    # no role at all: the socket is closed with 4003
    stranger = await NodeScript.start(
        "ywebsocket_client.mjs", url=yjs_url, token=server.token("eve", name="Eve"), doc="interop-yws", text="!"
    )
    node_scripts.append(stranger)
    with pytest.raises(AssertionError, match="4003"):
        await stranger.line()
