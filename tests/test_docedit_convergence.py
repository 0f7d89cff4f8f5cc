"""Convergence under random histories (Hypothesis): replicas edit concurrently, the server's messages reach
them in any order, connections drop (losing what was in flight) and come back with offline edits; in the end
every replica, the server and what the server stored hold the same text and state.

Two levels: a model of the server built from docedit's own server-side pieces (the sync handling of
handlers.py, the fold of compaction, the load of documents.py) with full control over delivery order; and a
real hub with Python providers over real sockets."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Text

from hub.testing import HubClient, HubServer, test_settings
from hub_realtime_plugins.docedit import Docedit, DoceditSettings
from hub_realtime_plugins.docedit.store import fold, is_update
from hub_realtime_plugins.docedit.yprotocol import (
    EMPTY_UPDATE,
    SyncKind,
    b64decode,
    b64encode,
    parse_sync,
    step1,
    step2,
    update_message,
)
from tests.e2e.docedit_provider import DocProvider, wait_until

# ---- a model server made of docedit's server-side logic ---------------------------------------------------------


class ModelServer:
    """Holds the document as the plugin does: an in-memory Doc, an append-only update log, a snapshot that
    compaction folds the log into, and a reload (restart) from snapshot + log. Messages are base64 envelopes."""

    def __init__(self) -> None:
        self.snapshot: bytes | None = None
        self.log: list[bytes] = []
        self.doc = self._load()

    def _load(self) -> Doc[Any]:
        doc: Doc[Any] = Doc()
        for record in ([self.snapshot] if self.snapshot else []) + self.log:
            doc.apply_update(record)
        return doc

    def handle(self, m: str) -> tuple[str | None, str | None]:
        """A docedit.sync: returns (reply m for a step 1, or None; the docedit.update event m, or None)."""
        message = parse_sync(b64decode(m))
        if message.kind is SyncKind.STEP1:
            return b64encode(step2(self.doc.get_update(message.payload))), None
        if message.payload == EMPTY_UPDATE:
            return None, None
        assert is_update(message.payload)
        self.log.append(message.payload)  # stored first, then applied, then published
        self.doc.apply_update(message.payload)
        return None, b64encode(update_message(message.payload))

    def step1(self) -> str:
        return b64encode(step1(self.doc.get_state()))

    def compact(self, keep_last: int) -> None:
        """Fold all but the last ``keep_last`` records (those arrived "during" the compaction)."""
        cut = len(self.log) - keep_last
        self.snapshot, self.log = fold(self.snapshot, self.log[:cut]), self.log[cut:]

    def restart(self) -> None:
        self.doc = self._load()

    def text(self) -> str:
        return str(self.doc.get("content", type=Text))


class ModelReplica:
    def __init__(self, server: ModelServer) -> None:
        self.server = server
        self.doc: Doc[Any] = Doc()
        self.text = self.doc.get("content", type=Text)
        self.online = False
        self.outbox: list[str] = []  # sync messages sent, not yet received by the server (in order)
        self.inbox: list[str] = []  # update events the server sent, not yet received (any order)
        self._remote = False
        self.doc.observe(self._on_change)

    def _on_change(self, event: Any) -> None:
        if self.online and not self._remote:
            self.outbox.append(b64encode(update_message(event.update)))

    def receive(self, m: str) -> None:
        self._remote = True
        try:
            self.doc.apply_update(parse_sync(b64decode(m)).payload)
        finally:
            self._remote = False

    def connect(self) -> None:
        """sub (snapshot step 1), our step 1 -> step 2, then our step 2 with what the server lacks."""
        self.online = True
        server_state = parse_sync(b64decode(self.server.step1())).payload
        reply, _event = self.server.handle(b64encode(step1(self.doc.get_state())))
        assert reply is not None
        self.receive(reply)
        missing = self.doc.get_update(server_state)
        if missing != EMPTY_UPDATE:
            self.outbox.append(b64encode(step2(missing)))

    def disconnect(self) -> None:
        self.online = False
        self.outbox.clear()  # in flight: lost with the connection
        self.inbox.clear()

    def content(self) -> str:
        return str(self.text)


def deliver_one(replicas: list[ModelReplica], sender: ModelReplica) -> None:
    _reply, event = sender.server.handle(sender.outbox.pop(0))
    if event is not None:
        for replica in replicas:
            if replica.online:
                replica.inbox.append(event)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("edit"), st.integers(0, 3), st.floats(0, 1), st.text("abcxyz ", min_size=1, max_size=4)),
        st.tuples(st.just("delete"), st.integers(0, 3), st.floats(0, 1), st.integers(1, 3)),
        st.tuples(st.just("send"), st.integers(0, 3)),
        st.tuples(st.just("receive"), st.integers(0, 3), st.integers(0, 50)),
        st.tuples(st.just("toggle"), st.integers(0, 3)),
        st.tuples(st.just("compact"), st.integers(0, 3)),
        st.tuples(
            st.just("restart"),
        ),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_replicas_converge_whatever_the_order_and_the_outages(ops: list[tuple[Any, ...]]) -> None:
    server = ModelServer()
    replicas = [ModelReplica(server) for _ in range(4)]
    for replica in replicas[:2]:
        replica.connect()
    for op in ops:
        kind = op[0]
        if kind in ("edit", "delete"):
            replica = replicas[op[1]]
            at = int(op[2] * len(replica.text))
            with replica.doc.transaction():
                if kind == "edit":
                    replica.text.insert(at, op[3])
                elif len(replica.text):
                    at = min(at, len(replica.text) - 1)
                    del replica.text[at : min(len(replica.text), at + op[3])]
        elif kind == "send" and replicas[op[1]].outbox:
            deliver_one(replicas, replicas[op[1]])
        elif kind == "receive" and replicas[op[1]].inbox:
            replica = replicas[op[1]]
            replica.receive(replica.inbox.pop(op[2] % len(replica.inbox)))  # any pending event, any order
        elif kind == "toggle":
            replica = replicas[op[1]]
            replica.disconnect() if replica.online else replica.connect()
        elif kind == "compact":
            server.compact(keep_last=min(op[1], len(server.log)))
        elif kind == "restart":
            server.restart()

    for replica in replicas:  # everyone comes back and everything in flight arrives
        if not replica.online:
            replica.connect()
    while any(replica.outbox for replica in replicas):
        for replica in replicas:
            while replica.outbox:
                deliver_one(replicas, replica)
    for replica in replicas:
        while replica.inbox:
            replica.receive(replica.inbox.pop())
    expected = server.text()
    assert [replica.content() for replica in replicas] == [expected] * len(replicas)
    server.compact(keep_last=0)
    server.restart()
    assert server.text() == expected  # what the store holds is the same document


# ---- a real hub ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    data_dir: Path = tmp_path_factory.mktemp("docedit-convergence")
    settings = DoceditSettings(compact_every=5, idle_check_interval=0.05, idle_timeout=0.1)
    plugin = {"docedit": lambda hub: Docedit(hub, settings=settings)}
    server = HubServer(test_settings(data_dir, rate_limit=5000.0, rate_burst=5000), plugins=plugin).start()
    yield server
    server.stop()


async def run_history(server: HubServer, ops: list[tuple[int, str, float, str]]) -> None:
    doc_id = f"h{uuid.uuid4().hex[:12]}"
    replicas = [DocProvider(doc_id) for _ in range(3)]
    for index, replica in enumerate(replicas):
        await replica.attach(await HubClient.connect(server.ws_url, token=server.token(f"u{index}")))
    try:
        for who, kind, where, value in ops:
            replica = replicas[who]
            if kind == "toggle":
                if replica.client is None:
                    await replica.attach(await HubClient.connect(server.ws_url, token=server.token(f"u{who}")))
                else:
                    await replica.detach()
                continue
            at = int(where * len(replica.text))
            with replica.ydoc.transaction():
                if kind == "insert":
                    replica.text.insert(at, value)
                elif len(replica.text):
                    at = min(at, len(replica.text) - 1)
                    del replica.text[at : at + 1]
            if kind != "burst":  # a burst's updates wait, and go out together with the next edit's
                await asyncio.gather(*(r.flush() for r in replicas if r is replica))
        for index, replica in enumerate(replicas):
            if replica.client is None:
                await replica.attach(await HubClient.connect(server.ws_url, token=server.token(f"u{index}")))
            await replica.flush()
        await wait_until(lambda: len({r.content for r in replicas}) == 1)
        late = DocProvider(doc_id)
        await late.attach(await HubClient.connect(server.ws_url, token=server.token("late")))
        assert late.content == replicas[0].content
        await late.detach()
    finally:
        for replica in replicas:
            await replica.detach()


real_ops = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.sampled_from(["insert", "insert", "delete", "burst", "toggle"]),
        st.floats(0, 1),
        st.text("pqrs", min_size=1, max_size=3),
    ),
    max_size=25,
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(real_ops)
def test_replicas_on_a_real_hub_converge_through_disconnects(live_hub: HubServer, ops: Any) -> None:
    asyncio.run(run_history(live_hub, ops))
